package apigw_test

import (
	"context"
	"fmt"
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/workorders/notify/internal/metrics"
)

// throttled returns the Throttled count of r (-1 when it was never set).
func throttled(r *metrics.Record) float64 {
	for _, v := range r.Values() {
		if v.Name == metrics.Throttled {
			return v.Value
		}
	}
	return -1
}

// Throttled counts the 429 answers that were retried, in the record of the
// call's context: not a 429 on the last attempt, not other retried errors.
func TestThrottledCountsRetried429s(t *testing.T) {
	eachPath(t, func(t *testing.T, newSender newSenderFunc) {
		for _, tc := range []struct {
			name    string
			answers []int // status of each attempt; 200 from then on
			want    float64
		}{
			{"first try", nil, 0},
			{"two 429s then OK", []int{429, 429}, 2},
			{"429 without error type", []int{-429}, 1},
			{"429 on every attempt", []int{429, 429, 429, 429}, 3}, // the 4th is not retried
			{"5xx are not throttling", []int{500, 503}, 0},
			{"mixed", []int{500, 429, 502}, 1},
			{"gone", []int{410}, 0},
		} {
			t.Run(tc.name, func(t *testing.T) {
				var mu sync.Mutex
				attempt := 0
				srv := newServer(t, func(w http.ResponseWriter, r *http.Request) {
					mu.Lock()
					defer mu.Unlock()
					if attempt < len(tc.answers) {
						switch status := tc.answers[attempt]; {
						case status == -429:
							writeError(w, 429, "")
						case status == 429:
							writeError(w, 429, "LimitExceededException")
						case status == 410:
							writeError(w, 410, "GoneException")
						default:
							writeError(w, status, "InternalServerErrorException")
						}
					}
					attempt++
				})
				opts := fast(srv.URL)
				opts.MaxAttempts = 4
				rec := metrics.NewRecord("PublishFunction", time.Now())
				rec.Count(metrics.Throttled, 0)
				_ = newSender(StaticConfig(), opts).Send(metrics.NewContext(context.Background(), rec), "c1", []byte("x"))
				if got := throttled(rec); got != tc.want {
					t.Errorf("Throttled %v, want %v", got, tc.want)
				}
			})
		}
	})
}

// Concurrent posts of one invocation add to the one record; Close counts
// too; a call without a record in its context is unaffected.
func TestThrottledConcurrentAndClose(t *testing.T) {
	eachPath(t, func(t *testing.T, newSender newSenderFunc) {
		srv := newServer(t, throttleOnce())
		s := newSender(StaticConfig(), fast(srv.URL))
		rec := metrics.NewRecord("PublishFunction", time.Now())
		ctx := metrics.NewContext(context.Background(), rec)
		var wg sync.WaitGroup
		for i := range 40 {
			wg.Go(func() {
				if err := s.Send(ctx, fmt.Sprintf("conn-%d", i), []byte("x")); err != nil {
					t.Error(err)
				}
			})
		}
		wg.Wait()
		if got := throttled(rec); got != 40 {
			t.Errorf("Throttled %v after 40 posts throttled once each, want 40", got)
		}
		if err := s.Close(ctx, "closing"); err != nil {
			t.Fatal(err)
		}
		if got := throttled(rec); got != 41 {
			t.Errorf("Throttled %v after a throttled close, want 41", got)
		}
		if err := s.Send(context.Background(), "no-record", []byte("x")); err != nil {
			t.Fatal(err)
		}
		if got := throttled(rec); got != 41 {
			t.Errorf("Throttled %v: a call without the record counted in it", got)
		}
	})
}

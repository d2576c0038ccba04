package apigw_test

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/workorders/notify/internal/apigw"
	"github.com/workorders/notify/internal/memory"
	"github.com/workorders/notify/internal/metrics"
	"github.com/workorders/notify/internal/notify"
)

// TestPublishFanOutThroughManagementAPI runs the whole publish path — the
// service, the in-memory stores and this package's Sender with the SDK's
// real client — against a loopback server that answers like the Management
// API: most connections 200, some 410 (gone), some 429 once (retried), some
// 429 forever (failed), some slowly.
func TestPublishFanOutThroughManagementAPI(t *testing.T) {
	eachPath(t, func(t *testing.T, newSender newSenderFunc) {
		const total = 300
		kind := func(id string) string { return id[:strings.IndexByte(id, '-')] }
		var throttledOnce sync.Map
		var inFlight, maxInFlight atomic.Int64
		received := make(map[string]int)
		var mu sync.Mutex
		srv := newServer(t, func(w http.ResponseWriter, r *http.Request) {
			n := inFlight.Add(1)
			defer inFlight.Add(-1)
			for m := maxInFlight.Load(); n > m && !maxInFlight.CompareAndSwap(m, n); m = maxInFlight.Load() {
			}
			raw := strings.TrimPrefix(r.URL.EscapedPath(), "/prod/@connections/")
			id, _ := url.PathUnescape(raw)
			switch kind(id) {
			case "gone", "fresh":
				writeError(w, http.StatusGone, "GoneException")
				return
			case "throttled":
				if _, again := throttledOnce.LoadOrStore(id, true); !again {
					writeError(w, http.StatusTooManyRequests, "LimitExceededException")
					return
				}
			case "overloaded":
				writeError(w, http.StatusTooManyRequests, "LimitExceededException")
				return
			case "slow":
				time.Sleep(20 * time.Millisecond)
			}
			mu.Lock()
			received[id]++
			mu.Unlock()
		})

		store := memory.New()
		ctx := context.Background()
		old := time.Now().Add(-time.Minute)
		kinds := []string{"ok", "ok", "ok", "gone", "throttled", "slow", "overloaded", "fresh"}
		want := map[string]int{}
		for i := range total {
			k := kinds[i%len(kinds)]
			connectedAt := old
			if k == "fresh" {
				connectedAt = time.Now() // still inside $connect: 410 must not remove it
			}
			id := fmt.Sprintf("%s-%d=", k, i)
			if err := store.SaveConnection(ctx, notify.Connection{
				ID: id, UserID: "u" + fmt.Sprint(i%50), Groups: []string{"plant-3"},
				ConnectedAt: connectedAt, ExpiresAt: time.Now().Add(time.Hour),
			}); err != nil {
				t.Fatal(err)
			}
			want[k]++
		}
		opts := fast(srv.URL + "/prod")
		opts.Concurrency = 16
		svc := &notify.Service{Connections: store, Inbox: store, Concurrency: 16, Sender: newSender(StaticConfig(), opts)}
		req, err := notify.DecodePublishRequest([]byte(`{"groups":["plant-3"],"users":["u1","nobody"],"notification":{"type":"workorder.assigned"}}`))
		if err != nil {
			t.Fatal(err)
		}
		// The failed sends are logged; keep them out of the test output. The
		// invocation's metrics record counts the retried 429s.
		rec := metrics.NewRecord("PublishFunction", time.Now())
		res, err := svc.Publish(metrics.NewContext(notify.WithLogger(ctx, slog.New(slog.DiscardHandler)), rec), req)
		if err != nil {
			t.Fatal(err)
		}
		// Each "throttled" post is retried once; each "overloaded" one on every
		// attempt but its last.
		if got, want := throttled(rec), float64(want["throttled"]+want["overloaded"]*(opts.MaxAttempts-1)); got != want {
			t.Errorf("Throttled %v, want %v", got, want)
		}
		if res.StoreLatency <= 0 {
			t.Errorf("StoreLatency %v, want the inbox write's duration", res.StoreLatency)
		}

		delivered := want["ok"] + want["throttled"] + want["slow"]
		if res.Connections != total || res.Delivered != delivered || res.Gone != want["gone"]+want["fresh"] || res.Failed != want["overloaded"] {
			t.Errorf("result %+v, want %d connections = %d delivered + %d gone + %d failed",
				res, total, delivered, want["gone"]+want["fresh"], want["overloaded"])
		}
		if strings.Join(res.OfflineUsers, ",") != "nobody" {
			t.Errorf("offlineUsers = %v, want [nobody]", res.OfflineUsers)
		}
		mu.Lock()
		for id, n := range received {
			if n != 1 {
				t.Errorf("%s received %d copies", id, n)
			}
		}
		if len(received) != delivered {
			t.Errorf("%d connections received the frame, want %d", len(received), delivered)
		}
		mu.Unlock()
		if m := maxInFlight.Load(); m > 16 {
			t.Errorf("%d posts in flight at once, the bound is 16", m)
		}
		// 410 removed the old gone connections only.
		for i := range total {
			k := kinds[i%len(kinds)]
			_, err := store.GetConnection(ctx, fmt.Sprintf("%s-%d=", k, i))
			if gone := notify.ErrorCode(err) == notify.ENOTFOUND; gone != (k == "gone") {
				t.Errorf("%s-%d: removed=%v", k, i, gone)
			}
		}
	})
}

// BenchmarkPublishFanOut measures the publish loop (store walk, frame
// marshalled once, signing, HTTP post) for 1,000 connections against a
// loopback Management API.
func BenchmarkPublishFanOut(b *testing.B) {
	svc, req := fanOutBench(b)
	ctx := context.Background()
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		if res, err := svc.Publish(ctx, req); err != nil || res.Delivered != 1000 {
			b.Fatalf("%+v %v", res, err)
		}
	}
	b.ReportMetric(float64(b.N*1000)/b.Elapsed().Seconds(), "deliveries/s")
}

// BenchmarkPublishFanOutWithMetrics is BenchmarkPublishFanOut plus what
// PublishFunction's handler adds for its EMF object: a metrics.Record in the
// context (where the retryer would count 429s), the counts and latencies
// set, the object encoded and written (to io.Discard).
func BenchmarkPublishFanOutWithMetrics(b *testing.B) {
	svc, req := fanOutBench(b)
	emitter := metrics.NewEmitter("", "PublishFunction", io.Discard)
	log := slog.New(slog.DiscardHandler)
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		start := time.Now()
		rec := emitter.Start(start)
		for _, name := range []string{metrics.Publishes, metrics.Deliveries, metrics.Gone, metrics.Failed,
			metrics.Throttled, metrics.Duplicates, metrics.FanoutConnections} {
			rec.Count(name, 0)
		}
		ctx := metrics.NewContext(context.Background(), rec)
		res, err := svc.Publish(ctx, req)
		if err != nil || res.Delivered != 1000 {
			b.Fatalf("%+v %v", res, err)
		}
		rec.Duration(metrics.PublishLatency, time.Since(start))
		rec.Duration(metrics.StoreLatency, res.StoreLatency)
		rec.Count(metrics.Publishes, 1)
		rec.Count(metrics.Deliveries, res.Delivered)
		rec.Count(metrics.Gone, res.Gone)
		rec.Count(metrics.Failed, res.Failed)
		rec.Count(metrics.FanoutConnections, res.Connections)
		emitter.Emit(ctx, log, rec)
	}
	b.ReportMetric(float64(b.N*1000)/b.Elapsed().Seconds(), "deliveries/s")
}

func fanOutBench(b *testing.B) (*notify.Service, notify.PublishRequest) {
	srv := newServer(b, func(w http.ResponseWriter, r *http.Request) {})
	store := memory.New()
	ctx := context.Background()
	for i := range 1000 {
		_ = store.SaveConnection(ctx, notify.Connection{ID: fmt.Sprintf("c%d=", i), UserID: "u", Groups: []string{"g"},
			ConnectedAt: time.Now().Add(-time.Minute), ExpiresAt: time.Now().Add(time.Hour)})
	}
	svc := &notify.Service{Connections: store, Inbox: store, Concurrency: 64,
		Sender: apigw.New(StaticConfig(), apigw.Options{Endpoint: srv.URL, Concurrency: 64})}
	req, _ := notify.DecodePublishRequest([]byte(`{"groups":["g"],"notification":{"type":"workorder.assigned","title":"WO-1042","data":{"workOrderId":"WO-1042"}}}`))
	return svc, req
}

package apigw_test

import (
	"context"
	"errors"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"

	"github.com/workorders/notify/internal/apigw"
	"github.com/workorders/notify/internal/notify"
)

// A call's attempts share one Amz-Sdk-Invocation-Id and number themselves
// in Amz-Sdk-Request, as the SDK's do.
func TestRetriesKeepInvocationID(t *testing.T) {
	eachPath(t, func(t *testing.T, newSender newSenderFunc) {
		var mu sync.Mutex
		var ids, attempts []string
		srv := newServer(t, func(w http.ResponseWriter, r *http.Request) {
			mu.Lock()
			defer mu.Unlock()
			ids = append(ids, r.Header.Get("Amz-Sdk-Invocation-Id"))
			attempts = append(attempts, r.Header.Get("Amz-Sdk-Request"))
			if len(ids) < 3 {
				writeError(w, 429, "LimitExceededException")
			}
		})
		if err := newSender(StaticConfig(), fast(srv.URL)).Send(context.Background(), "c1", []byte("x")); err != nil {
			t.Fatal(err)
		}
		mu.Lock()
		defer mu.Unlock()
		if len(ids) != 3 || ids[0] == "" || ids[1] != ids[0] || ids[2] != ids[0] {
			t.Errorf("invocation ids %q, want one id for the 3 attempts", ids)
		}
		if want := []string{"attempt=1; max=5", "attempt=2; max=5", "attempt=3; max=5"}; strings.Join(attempts, "|") != strings.Join(want, "|") {
			t.Errorf("Amz-Sdk-Request %q, want %q", attempts, want)
		}
	})
}

// A dropped connection is retried (a connection error, as the SDK
// classifies it).
func TestSendRetriesConnectionErrors(t *testing.T) {
	eachPath(t, func(t *testing.T, newSender newSenderFunc) {
		srv := newServer(t, nil)
		srv.Config.Handler = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if srv.hits.Add(1) == 1 {
				conn, _, err := http.NewResponseController(w).Hijack()
				if err == nil {
					conn.Close() // no answer at all
				}
			}
		})
		if err := newSender(StaticConfig(), fast(srv.URL)).Send(context.Background(), "c1", []byte("x")); err != nil {
			t.Fatal(err)
		}
		if n := srv.hits.Load(); n != 2 {
			t.Errorf("hits %d, want 2", n)
		}
	})
}

// A context that has ended makes no request; one that ends during a
// backoff ends the call at once. Either way the cause is in the chain.
func TestSendCancellation(t *testing.T) {
	eachPath(t, func(t *testing.T, newSender newSenderFunc) {
		srv := newServer(t, func(w http.ResponseWriter, r *http.Request) { writeError(w, 429, "LimitExceededException") })

		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		err := newSender(StaticConfig(), fast(srv.URL)).Send(ctx, "c1", []byte("x"))
		if notify.ErrorCode(err) != notify.EINTERNAL || !errors.Is(err, context.Canceled) {
			t.Errorf("canceled: %v", err)
		}
		if n := srv.hits.Load(); n != 0 {
			t.Errorf("canceled: %d requests made", n)
		}

		opts := fast(srv.URL)
		opts.MaxBackoff = 10 * time.Second // throttling backoffs start at up to 1 s
		opts.MaxAttempts = 20
		ctx, cancel = context.WithTimeout(context.Background(), 100*time.Millisecond)
		defer cancel()
		start := time.Now()
		err = newSender(StaticConfig(), opts).Send(ctx, "c1", []byte("x"))
		if notify.ErrorCode(err) != notify.EINTERNAL || !errors.Is(err, context.DeadlineExceeded) {
			t.Errorf("deadline during backoff: %v", err)
		}
		if d := time.Since(start); d > 2*time.Second {
			t.Errorf("deadline during backoff: returned after %v", d)
		}
	})
}

// Anonymous credentials send unsigned requests, as the SDK does.
func TestSendAnonymous(t *testing.T) {
	eachPath(t, func(t *testing.T, newSender newSenderFunc) {
		auth := make(chan string, 1)
		srv := newServer(t, func(w http.ResponseWriter, r *http.Request) { auth <- r.Header.Get("Authorization") })
		cfg := aws.Config{Region: "eu-west-1", Credentials: aws.AnonymousCredentials{}}
		if err := newSender(cfg, fast(srv.URL)).Send(context.Background(), "c1", []byte("x")); err != nil {
			t.Fatal(err)
		}
		if a := <-auth; a != "" {
			t.Errorf("Authorization %q, want none", a)
		}
	})
}

// An endpoint that is not a URL fails every post with EINTERNAL, naming it.
func TestSendBadEndpoint(t *testing.T) {
	eachPath(t, func(t *testing.T, newSender newSenderFunc) {
		err := newSender(StaticConfig(), apigw.Options{Endpoint: "://nope"}).Send(context.Background(), "c1", []byte("x"))
		if notify.ErrorCode(err) != notify.EINTERNAL || !strings.Contains(err.Error(), "connection c1") {
			t.Errorf("%v", err)
		}
	})
}

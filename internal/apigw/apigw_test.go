package apigw_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/aws/retry"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/apigatewaymanagementapi"
	"github.com/aws/aws-sdk-go-v2/service/apigatewaymanagementapi/types"

	"github.com/workorders/notify/internal/apigw"
	"github.com/workorders/notify/internal/notify"
)

func TestMain(m *testing.M) {
	// Belt and braces: the config below never consults the credential
	// chain, and nothing may try the instance metadata service anyway.
	os.Setenv("AWS_EC2_METADATA_DISABLED", "true")
	if os.Getenv(serverProcessEnv) != "" {
		runServerProcess() // a benchmark's server (startServerProcess)
		return
	}
	os.Exit(m.Run())
}

// StaticConfig returns an aws.Config with dummy static credentials and a
// region, built by hand so that the SDK never looks for credentials anywhere
// (no environment, no shared files, no network).
func StaticConfig() aws.Config {
	return aws.Config{
		Region:      "eu-west-1",
		Credentials: credentials.NewStaticCredentialsProvider("AKIDTEST", "SECRETTEST", ""),
	}
}

// fast are Options for tests: tiny backoffs.
func fast(endpoint string) apigw.Options {
	return apigw.Options{Endpoint: endpoint, Concurrency: 8, MaxAttempts: 5, MaxBackoff: 2 * time.Millisecond}
}

// newSenderFunc builds a Sender: apigw.New (the lean post path) or
// apigw.NewSDK (posts through the service client).
type newSenderFunc func(aws.Config, apigw.Options) *apigw.Sender

// postPaths are the Sender's two post paths. Every contract test runs
// against both: they must be indistinguishable to the caller.
var postPaths = []struct {
	name string
	new  newSenderFunc
}{
	{"lean", apigw.New},
	{"sdk-client", apigw.NewSDK},
}

// eachPath runs test once per post path, as a subtest.
func eachPath(t *testing.T, test func(t *testing.T, newSender newSenderFunc)) {
	t.Helper()
	for _, p := range postPaths {
		t.Run(p.name, func(t *testing.T) { test(t, p.new) })
	}
}

// writeError answers like the Management API (restjson1): status,
// x-amzn-ErrorType naming the exception, JSON body with a message.
func writeError(w http.ResponseWriter, status int, code string) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("x-amzn-RequestId", "req-1")
	if code != "" {
		w.Header().Set("x-amzn-ErrorType", code)
	}
	w.WriteHeader(status)
	io.WriteString(w, `{"message":"`+code+`"}`)
}

// server is a loopback Management API with a hit counter and a count of new
// TCP connections.
type server struct {
	*httptest.Server
	hits  atomic.Int64
	conns atomic.Int64
}

func newServer(t testing.TB, h http.HandlerFunc) *server {
	t.Helper()
	s := &server{}
	s.Server = httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.hits.Add(1)
		h(w, r)
	}))
	s.Config.ConnState = func(_ net.Conn, st http.ConnState) {
		if st == http.StateNew {
			s.conns.Add(1)
		}
	}
	s.Start()
	t.Cleanup(s.Close)
	return s
}

func TestSendDeliversExactBytes(t *testing.T) {
	eachPath(t, func(t *testing.T, newSender newSenderFunc) {
		data := []byte{0, 1, 2, 0xff, 0xfe, '{', '"', '}', '\n'}
		for _, tc := range []struct{ name, stage string }{
			{"stage", "/prod"},
			{"stage with trailing slash", "/prod/"},
		} {
			t.Run(tc.name, func(t *testing.T) {
				type req struct {
					method, path, rawPath, auth, ctype string
					body                               []byte
				}
				got := make(chan req, 1)
				srv := newServer(t, func(w http.ResponseWriter, r *http.Request) {
					b, _ := io.ReadAll(r.Body)
					got <- req{r.Method, r.URL.Path, r.URL.EscapedPath(), r.Header.Get("Authorization"), r.Header.Get("Content-Type"), b}
				})
				s := newSender(StaticConfig(), fast(srv.URL+tc.stage))
				if err := s.Send(context.Background(), "L0SM9cOFvHcCIhw=", data); err != nil {
					t.Fatal(err)
				}
				r := <-got
				if r.method != http.MethodPost {
					t.Errorf("method %s", r.method)
				}
				if r.path != "/prod/@connections/L0SM9cOFvHcCIhw=" {
					t.Errorf("path %q", r.path)
				}
				if r.rawPath != "/prod/@connections/L0SM9cOFvHcCIhw%3D" {
					t.Errorf("escaped path %q", r.rawPath)
				}
				if !bytes.Equal(r.body, data) {
					t.Errorf("body %q, want %q", r.body, data)
				}
				if !strings.Contains(r.auth, "/eu-west-1/execute-api/aws4_request") {
					t.Errorf("not SigV4-signed for execute-api: %q", r.auth)
				}
				if r.ctype != "application/octet-stream" {
					t.Errorf("content type %q", r.ctype)
				}
			})
		}
	})
}

func TestSendWebSocketURLAccepted(t *testing.T) {
	eachPath(t, func(t *testing.T, newSender newSenderFunc) {
		var path atomic.Value
		srv := newServer(t, func(w http.ResponseWriter, r *http.Request) { path.Store(r.URL.Path) })
		s := newSender(StaticConfig(), fast("ws://"+strings.TrimPrefix(srv.URL, "http://")+"/dev"))
		if err := s.Send(context.Background(), "abc", []byte("x")); err != nil {
			t.Fatal(err)
		}
		if p := path.Load(); p != "/dev/@connections/abc" {
			t.Errorf("path %v", p)
		}
	})
}

func TestSendGoneIsNotRetried(t *testing.T) {
	eachPath(t, func(t *testing.T, newSender newSenderFunc) {
		for _, tc := range []struct {
			name string
			h    http.HandlerFunc
		}{
			{"modeled", func(w http.ResponseWriter, r *http.Request) { writeError(w, 410, "GoneException") }},
			{"coral suffix", func(w http.ResponseWriter, r *http.Request) {
				writeError(w, 410, "GoneException:http://internal.amazon.com/coral/com.amazonaws.gateway/")
			}},
			{"empty body", func(w http.ResponseWriter, r *http.Request) {
				w.Header().Set("x-amzn-ErrorType", "GoneException")
				w.WriteHeader(410)
			}},
			{"status only", func(w http.ResponseWriter, r *http.Request) { writeError(w, 410, "") }},
			{"non-JSON body", func(w http.ResponseWriter, r *http.Request) {
				w.WriteHeader(410)
				io.WriteString(w, "<html>Gone</html>")
			}},
		} {
			t.Run(tc.name, func(t *testing.T) {
				srv := newServer(t, tc.h)
				s := newSender(StaticConfig(), fast(srv.URL+"/prod"))
				err := s.Send(context.Background(), "c1", []byte("hi"))
				if code := notify.ErrorCode(err); code != notify.EGONE {
					t.Fatalf("code %q, err %v", code, err)
				}
				if !errors.Is(err, notify.ErrGone) {
					t.Errorf("does not wrap notify.ErrGone: %v", err)
				}
				if n := srv.hits.Load(); n != 1 {
					t.Errorf("hits %d, want 1 (410 must not be retried)", n)
				}
			})
		}
		t.Run("SDK error kept", func(t *testing.T) {
			srv := newServer(t, func(w http.ResponseWriter, r *http.Request) { writeError(w, 410, "GoneException") })
			err := newSender(StaticConfig(), fast(srv.URL)).Send(context.Background(), "c1", []byte("x"))
			var g *types.GoneException
			if !errors.As(err, &g) {
				t.Errorf("GoneException not in chain: %v", err)
			}
		})
	})
}

func TestSendPayloadTooLarge(t *testing.T) {
	eachPath(t, func(t *testing.T, newSender newSenderFunc) {
		srv := newServer(t, func(w http.ResponseWriter, r *http.Request) { writeError(w, 413, "PayloadTooLargeException") })
		s := newSender(StaticConfig(), fast(srv.URL+"/prod"))
		err := s.Send(context.Background(), "c1", make([]byte, 1000))
		if code := notify.ErrorCode(err); code != notify.EINVALID {
			t.Fatalf("code %q, err %v", code, err)
		}
		if msg := notify.ErrorMessage(err); !strings.Contains(msg, "post to connection c1") || !strings.Contains(msg, "413") {
			t.Errorf("message %q does not say which post failed and why", msg)
		}
		if n := srv.hits.Load(); n != 1 {
			t.Errorf("hits %d, want 1", n)
		}
	})
}

func TestSendRefusesEmptyAndOversizedFrames(t *testing.T) {
	eachPath(t, func(t *testing.T, newSender newSenderFunc) {
		srv := newServer(t, func(w http.ResponseWriter, r *http.Request) {})
		s := newSender(StaticConfig(), fast(srv.URL))
		for _, data := range [][]byte{nil, {}, make([]byte, notify.MaxFrameBytes+1)} {
			err := s.Send(context.Background(), "c1", data)
			if notify.ErrorCode(err) != notify.EINVALID {
				t.Errorf("%d bytes: %v", len(data), err)
			} else if msg := err.Error(); !strings.Contains(msg, "connection c1") || !strings.Contains(msg, fmt.Sprintf("frame of %d bytes", len(data))) {
				t.Errorf("%d bytes: message %q does not name the connection and the size", len(data), msg)
			}
		}
		if err := s.Send(context.Background(), "c1", make([]byte, notify.MaxFrameBytes)); err != nil {
			t.Errorf("max size: %v", err)
		}
		if n := srv.hits.Load(); n != 1 {
			t.Errorf("hits %d, want 1", n)
		}
	})
}

func TestSendForbiddenIsInternalAndNotRetried(t *testing.T) {
	eachPath(t, func(t *testing.T, newSender newSenderFunc) {
		srv := newServer(t, func(w http.ResponseWriter, r *http.Request) { writeError(w, 403, "ForbiddenException") })
		err := newSender(StaticConfig(), fast(srv.URL)).Send(context.Background(), "c1", []byte("x"))
		if code := notify.ErrorCode(err); code != notify.EINTERNAL {
			t.Fatalf("code %q, err %v", code, err)
		}
		var f *types.ForbiddenException
		if !errors.As(err, &f) {
			t.Errorf("cause lost: %v", err)
		}
		if n := srv.hits.Load(); n != 1 {
			t.Errorf("hits %d, want 1", n)
		}
	})
}

func TestSendThrottledThenOK(t *testing.T) {
	eachPath(t, func(t *testing.T, newSender newSenderFunc) {
		for _, tc := range []struct{ name, code string }{
			{"LimitExceededException", "LimitExceededException"},
			{"unmodeled 429", ""},
		} {
			t.Run(tc.name, func(t *testing.T) {
				srv := newServer(t, nil)
				srv.Config.Handler = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
					if srv.hits.Add(1) <= 2 {
						writeError(w, 429, tc.code)
					}
				})
				s := newSender(StaticConfig(), fast(srv.URL+"/prod"))
				if err := s.Send(context.Background(), "c1", []byte("hi")); err != nil {
					t.Fatal(err)
				}
				if n := srv.hits.Load(); n != 3 {
					t.Errorf("hits %d, want 3", n)
				}
			})
		}
	})
}

func TestSendThrottledForever(t *testing.T) {
	eachPath(t, func(t *testing.T, newSender newSenderFunc) {
		srv := newServer(t, func(w http.ResponseWriter, r *http.Request) { writeError(w, 429, "LimitExceededException") })
		opts := fast(srv.URL + "/prod")
		opts.MaxAttempts = 4
		err := newSender(StaticConfig(), opts).Send(context.Background(), "c1", []byte("hi"))
		if code := notify.ErrorCode(err); code != notify.EINTERNAL {
			t.Fatalf("code %q, err %v", code, err)
		}
		var le *types.LimitExceededException
		if !errors.As(err, &le) {
			t.Errorf("cause lost: %v", err)
		}
		if n := srv.hits.Load(); n != 4 {
			t.Errorf("hits %d, want MaxAttempts = 4", n)
		}
	})
}

func TestMaxAttemptsNotOverriddenByConfig(t *testing.T) {
	eachPath(t, func(t *testing.T, newSender newSenderFunc) {
		srv := newServer(t, func(w http.ResponseWriter, r *http.Request) { writeError(w, 429, "LimitExceededException") })
		cfg := StaticConfig()
		cfg.RetryMaxAttempts = 2 // what AWS_MAX_ATTEMPTS=2 would load
		opts := fast(srv.URL)
		opts.MaxAttempts = 3
		_ = newSender(cfg, opts).Send(context.Background(), "c1", []byte("x"))
		if n := srv.hits.Load(); n != 3 {
			t.Errorf("hits %d, want Options.MaxAttempts = 3", n)
		}
	})
}

func TestDefaultMaxAttempts(t *testing.T) {
	eachPath(t, func(t *testing.T, newSender newSenderFunc) {
		srv := newServer(t, func(w http.ResponseWriter, r *http.Request) { writeError(w, 429, "LimitExceededException") })
		_ = newSender(StaticConfig(), apigw.Options{Endpoint: srv.URL, MaxBackoff: time.Millisecond}).
			Send(context.Background(), "c1", []byte("x"))
		if n := srv.hits.Load(); n != int64(apigw.DefaultMaxAttempts) {
			t.Errorf("hits %d, want %d", n, apigw.DefaultMaxAttempts)
		}
	})
}

// throttleOnce answers 429 to the first post to each connection, then 200.
func throttleOnce() http.HandlerFunc {
	var seen sync.Map
	return func(w http.ResponseWriter, r *http.Request) {
		if _, again := seen.LoadOrStore(r.URL.Path, true); !again {
			writeError(w, 429, "LimitExceededException")
		}
	}
}

func sendAll(s *apigw.Sender, n int) (failed int64, firstErr error) {
	var wg sync.WaitGroup
	var mu sync.Mutex
	var nfail atomic.Int64
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			id := "conn-" + fmtInt(i)
			if err := s.Send(context.Background(), id, []byte("frame")); err != nil {
				nfail.Add(1)
				mu.Lock()
				if firstErr == nil {
					firstErr = err
				}
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	return nfail.Load(), firstErr
}

func fmtInt(i int) string {
	if i == 0 {
		return "0"
	}
	var b []byte
	for ; i > 0; i /= 10 {
		b = append([]byte{byte('0' + i%10)}, b...)
	}
	return string(b)
}

// With the SDK's default quota (500 tokens, 5 per throttling retry), 500
// simultaneous throttled posts would need 2,500 tokens at once: most would
// fail with "retry quota exceeded". The Sender's retryer has no shared quota.
func TestConcurrentThrottlingDoesNotDrainRetryQuota(t *testing.T) {
	eachPath(t, func(t *testing.T, newSender newSenderFunc) {
		srv := newServer(t, throttleOnce())
		s := newSender(StaticConfig(), apigw.Options{
			Endpoint: srv.URL + "/prod", Concurrency: 64, MaxAttempts: 3,
			// Long enough that all first attempts fail before any retry
			// succeeds (the worst case for a shared quota), short for a test.
			MaxBackoff: 50 * time.Millisecond,
		})
		start := time.Now()
		failed, err := sendAll(s, 500)
		t.Logf("500 sends in %v over %d TCP connections", time.Since(start), srv.conns.Load())
		if failed != 0 {
			t.Fatalf("%d of 500 sends failed, first: %v", failed, err)
		}
		if n := srv.hits.Load(); n != 1000 {
			t.Errorf("hits %d, want 1000", n)
		}
	})

	// Control, logged only (timing-dependent): the same load through a
	// client with the SDK's default retryer. Typically most posts fail with
	// "retry quota exceeded, 0 available, 5 requested".
	t.Run("control: SDK default retry quota", func(t *testing.T) {
		if testing.Short() {
			t.Skip("control only")
		}
		srv := newServer(t, throttleOnce())
		c := apigatewaymanagementapi.NewFromConfig(StaticConfig(), func(o *apigatewaymanagementapi.Options) {
			o.BaseEndpoint = aws.String(srv.URL + "/prod")
			o.Retryer = retry.NewStandard(func(o *retry.StandardOptions) { o.MaxBackoff = 50 * time.Millisecond })
		})
		var wg sync.WaitGroup
		var failed atomic.Int64
		for i := range 500 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				_, err := c.PostToConnection(context.Background(), &apigatewaymanagementapi.PostToConnectionInput{
					ConnectionId: aws.String("c" + fmtInt(i)), Data: []byte("frame"),
				})
				if err != nil {
					failed.Add(1)
				}
			}()
		}
		wg.Wait()
		t.Logf("SDK default retryer: %d of 500 sends failed", failed.Load())
	})
}

func TestTransportReusesConnections(t *testing.T) {
	eachPath(t, func(t *testing.T, newSender newSenderFunc) {
		const workers, sends = 32, 2000
		srv := newServer(t, func(w http.ResponseWriter, r *http.Request) { io.Copy(io.Discard, r.Body) })
		s := newSender(StaticConfig(), apigw.Options{Endpoint: srv.URL + "/prod", Concurrency: workers})
		jobs := make(chan int)
		var wg sync.WaitGroup
		var failed atomic.Int64
		for range workers {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i := range jobs {
					if err := s.Send(context.Background(), "c"+fmtInt(i), []byte("frame")); err != nil {
						failed.Add(1)
					}
				}
			}()
		}
		for i := range sends {
			jobs <- i
		}
		close(jobs)
		wg.Wait()
		if failed.Load() != 0 {
			t.Fatalf("%d sends failed", failed.Load())
		}
		// The SDK's default (10 idle per host) closes and re-dials the other 22
		// connections over and over: hundreds for 2,000 sends. A few more than
		// `workers` can happen: a worker may ask for a connection just before
		// the previous response's connection is back in the idle pool; net/http
		// then dials, and the extra connection joins the pool; on a loaded
		// machine (CI runs packages in parallel) that happens more often, and
		// an extra connection beyond the pool is closed again when it returns.
		// Twice the pool still tells a sized pool (about 32) from the default
		// (hundreds).
		const limit = 2 * workers
		if n := srv.conns.Load(); n > limit {
			t.Errorf("%d TCP connections for %d sends by %d workers, want <= %d", n, sends, workers, limit)
		}
		t.Logf("%d TCP connections for %d sends by %d workers", srv.conns.Load(), sends, workers)
	})
}

func TestSendDeadline(t *testing.T) {
	eachPath(t, func(t *testing.T, newSender newSenderFunc) {
		srv := newServer(t, func(w http.ResponseWriter, r *http.Request) {
			// Read the body: only then does net/http watch the connection and
			// cancel r.Context() when the client hangs up.
			io.Copy(io.Discard, r.Body)
			select {
			case <-time.After(5 * time.Second):
			case <-r.Context().Done():
			}
		})
		s := newSender(StaticConfig(), fast(srv.URL+"/prod"))
		ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
		defer cancel()
		start := time.Now()
		err := s.Send(ctx, "c1", []byte("hi"))
		if err == nil {
			t.Fatal("no error")
		}
		if code := notify.ErrorCode(err); code != notify.EINTERNAL {
			t.Errorf("code %q, want %q: %v", code, notify.EINTERNAL, err)
		}
		if !errors.Is(err, context.DeadlineExceeded) {
			t.Errorf("deadline not in chain: %v", err)
		}
		if d := time.Since(start); d > 2*time.Second {
			t.Errorf("took %v", d)
		}
	})
}

func TestClose(t *testing.T) {
	eachPath(t, func(t *testing.T, newSender newSenderFunc) {
		var methods sync.Map
		srv := newServer(t, func(w http.ResponseWriter, r *http.Request) {
			methods.Store(r.Method, true)
			if r.Method != http.MethodDelete {
				w.WriteHeader(405)
				return
			}
			if r.URL.Path == "/prod/@connections/live" {
				w.WriteHeader(http.StatusNoContent)
				return
			}
			writeError(w, 410, "GoneException")
		})
		s := newSender(StaticConfig(), fast(srv.URL+"/prod"))
		if err := s.Close(context.Background(), "live"); err != nil {
			t.Fatal(err)
		}
		err := s.Close(context.Background(), "gone")
		if notify.ErrorCode(err) != notify.EGONE || !errors.Is(err, notify.ErrGone) || !strings.Contains(err.Error(), "close connection gone") {
			t.Errorf("gone: %v", err)
		}
		if n := srv.hits.Load(); n != 2 {
			t.Errorf("hits %d, want 2", n)
		}
	})
}

func TestEndpointFor(t *testing.T) {
	got := apigw.EndpointFor("abc123", "eu-west-1", "prod")
	if want := "https://abc123.execute-api.eu-west-1.amazonaws.com/prod"; got != want {
		t.Errorf("%q, want %q", got, want)
	}
}

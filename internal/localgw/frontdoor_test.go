package localgw_test

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-lambda-go/lambda"

	"github.com/workorders/notify/internal/localgw"
)

// rawClient sends HTTP/1.1 requests one after another on one keep-alive TCP connection, as an
// SDK's pool does.
type rawClient struct {
	t    *testing.T
	conn net.Conn
	r    *bufio.Reader
}

func dialRaw(t *testing.T, addr string) *rawClient {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	_ = c.SetDeadline(time.Now().Add(wait))
	return &rawClient{t: t, conn: c, r: bufio.NewReader(c)}
}

// answer is what a test compares of a response: status, AWS error type and body.
type rawAnswer struct {
	status    int
	errorType string
	body      string
}

func (c *rawClient) do(method, path, body string, header ...string) rawAnswer {
	c.t.Helper()
	req := method + " " + path + " HTTP/1.1\r\nHost: gw\r\nContent-Length: " + itoa(len(body)) + "\r\n"
	for _, h := range header {
		req += h + "\r\n"
	}
	if _, err := io.WriteString(c.conn, req+"\r\n"+body); err != nil {
		c.t.Fatal(err)
	}
	resp, err := http.ReadResponse(c.r, nil)
	if err != nil {
		c.t.Fatalf("%s %s: %v", method, path, err)
	}
	b, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil {
		c.t.Fatal(err)
	}
	if resp.Header.Get("X-Amzn-RequestId") == "" && strings.Contains(path, "@connections") {
		c.t.Errorf("%s %s: no x-amzn-RequestId", method, path)
	}
	return rawAnswer{resp.StatusCode, resp.Header.Get("X-Amzn-ErrorType"), string(b)}
}

func itoa(n int) string {
	b, _ := json.Marshal(n)
	return string(b)
}

// The gateway serves a connection that starts with a Management API request on fasthttp, and
// every other connection on net/http (internal/localgw's frontDoor). Each must give AWS's answer
// to every request, whatever came first on the connection.
func TestManagementAnswersOnEitherServer(t *testing.T) {
	s := newStack(t, nil)
	ws, id := s.dial(t, "token=good")

	type step struct {
		method, path, body string
		want               rawAnswer
		frame              string // what the socket then receives, if anything
	}
	steps := []step{
		{"POST", "/@connections/" + id, `{"n":1}`, rawAnswer{status: 200}, `{"n":1}`},
		{"POST", "/local/@connections/" + id, "staged", rawAnswer{status: 200}, "staged"},
		{"POST", "/@connections/NoSuchConn1234=", "x", rawAnswer{410, "GoneException", `{"message":"Connection is gone"}`}, ""},
		{"POST", "/@connections/" + id, strings.Repeat("x", 128<<10+1), rawAnswer{413, "PayloadTooLargeException", `{"message":"Request payload too large"}`}, ""},
		{"PUT", "/@connections/" + id, "", rawAnswer{403, "ForbiddenException", `{"message":"Missing Authentication Token"}`}, ""},
		{"GET", "/@connections/NoSuchConn1234=", "", rawAnswer{410, "GoneException", `{"message":"Connection is gone"}`}, ""},
		{"DELETE", "/@connections/NoSuchConn1234=", "", rawAnswer{410, "GoneException", `{"message":"Connection is gone"}`}, ""},
		{"POST", "/2015-03-31/functions/EchoFunction/invocations", `"hi"`, rawAnswer{200, "", `"hi"`}, ""},
	}
	run := func(t *testing.T, c *rawClient, steps []step) {
		for _, st := range steps {
			got := c.do(st.method, st.path, st.body)
			if got != st.want {
				t.Errorf("%s %s: %+v, want %+v", st.method, st.path, got, st.want)
			}
			if st.frame != "" {
				if got := read(t, ws); got != st.frame {
					t.Errorf("%s %s delivered %q, want %q", st.method, st.path, got, st.frame)
				}
			}
		}
		// GET answers the connection's details as JSON.
		got := c.do("GET", "/@connections/"+id, "")
		var info struct {
			ConnectedAt string `json:"connectedAt"`
			Identity    struct {
				SourceIP string `json:"sourceIp"`
			} `json:"identity"`
		}
		if err := json.Unmarshal([]byte(got.body), &info); err != nil || got.status != 200 ||
			info.ConnectedAt == "" || info.Identity.SourceIP != "127.0.0.1" {
			t.Errorf("GET: %+v (%v)", got, err)
		}
	}
	t.Run("management first (fasthttp)", func(t *testing.T) {
		run(t, dialRaw(t, s.gw.Addr()), steps)
	})
	t.Run("Lambda API first (net/http)", func(t *testing.T) {
		last := len(steps) - 1
		run(t, dialRaw(t, s.gw.Addr()), append([]step{steps[last]}, steps[:last]...))
	})
	t.Run("upgrade on a Management API connection is refused", func(t *testing.T) {
		c := dialRaw(t, s.gw.Addr())
		if got := c.do("POST", "/@connections/"+id, "x"); got.status != 200 {
			t.Fatalf("POST: %+v", got)
		}
		read(t, ws)
		got := c.do("GET", "/?token=good", "", "Connection: Upgrade", "Upgrade: websocket",
			"Sec-WebSocket-Version: 13", "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==")
		if got.status != http.StatusBadRequest || !strings.Contains(got.body, "connection of its own") {
			t.Errorf("upgrade: %+v", got)
		}
	})
}

// A connection that never sends a request does not hold up Shutdown.
func TestShutdownClosesSilentConnections(t *testing.T) {
	s := newStack(t, nil)
	c, err := net.Dial("tcp", s.gw.Addr())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	if err := s.gw.Shutdown(ctx); err != nil {
		t.Fatalf("Shutdown: %v", err)
	}
	// Without Shutdown closing it, the front door would give up on the
	// connection only after its 10 s wait for a request line: a read that
	// times out first means it is still open.
	_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
	_, err = c.Read(make([]byte, 1))
	var ne net.Error
	if err == nil || errors.As(err, &ne) && ne.Timeout() {
		t.Errorf("the silent connection is still open after Shutdown (read: %v)", err)
	}
}

// A Shutdown that runs out of time still closes the Management API's connections, busy ones
// included: nothing more is answered on them.
func TestTimedOutShutdownClosesManagementConnections(t *testing.T) {
	release := make(chan struct{})
	var releaseOnce sync.Once
	free := func() { releaseOnce.Do(func() { close(release) }) }
	defer free()
	s := newStack(t, func(cfg *localgw.Config) {
		cfg.Functions["SlowFunction"] = lambda.NewHandler(func() (string, error) {
			<-release
			return "late", nil
		})
	})
	_, id := s.dial(t, "token=good")
	c := dialRaw(t, s.gw.Addr())
	if got := c.do("POST", "/@connections/"+id, "x"); got.status != http.StatusOK {
		t.Fatalf("POST: %+v", got) // the connection is fasthttp's from here on
	}
	if _, err := io.WriteString(c.conn, "POST /2015-03-31/functions/SlowFunction/invocations HTTP/1.1\r\nHost: gw\r\nContent-Length: 2\r\n\r\n{}"); err != nil {
		t.Fatal(err)
	}
	time.Sleep(200 * time.Millisecond) // let the invocation start
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	if err := s.gw.Shutdown(ctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Shutdown with an invocation in flight: %v, want context.DeadlineExceeded", err)
	}
	free() // the function answers now, to a closed connection
	if resp, err := http.ReadResponse(c.r, nil); err == nil {
		b, _ := io.ReadAll(resp.Body)
		t.Errorf("answered after a timed-out Shutdown: %d %q", resp.StatusCode, b)
	}
}

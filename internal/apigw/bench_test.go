package apigw_test

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"runtime"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/workorders/notify/internal/apigw"
)

// The post paths compared: BenchmarkSend is the lean
// path Send uses, BenchmarkSendSDKClient the service client in its best
// configuration. Each posts 1 KB frames from GOMAXPROCS goroutines, over
// pooled connections, to a loopback Management API stand-in that runs in a
// child process: the figures (ns/op, allocs/op, and cpu-ns/op, this
// process's CPU time per post, user + system, GC included) are the
// publisher's alone, as in Lambda, where the other end is API Gateway's.
//
// BenchmarkSendInProcess runs both paths against a server in the same
// process (both ends' work in every figure); BenchmarkSendNoNetwork
// against an in-memory transport that answers 200 (the client's work only,
// no sockets).

func BenchmarkSend(b *testing.B) { benchOutOfProcess(b, apigw.New) }

func BenchmarkSendSDKClient(b *testing.B) { benchOutOfProcess(b, apigw.NewSDK) }

func BenchmarkSendInProcess(b *testing.B) {
	for _, p := range postPaths {
		b.Run(p.name, func(b *testing.B) {
			srv := newServer(b, func(w http.ResponseWriter, r *http.Request) { io.Copy(io.Discard, r.Body) })
			s := p.new(StaticConfig(), apigw.Options{Endpoint: srv.URL + "/prod", Concurrency: 64})
			benchSends(b, s)
			b.ReportMetric(float64(srv.conns.Load()), "conns")
		})
	}
}

func BenchmarkSendNoNetwork(b *testing.B) { benchNoNetwork(b, bytes.Repeat([]byte("x"), 1024)) }

// BenchmarkSendLargeFrame is BenchmarkSendNoNetwork with a 120 KiB frame,
// about the largest a notification makes, posted again and again as a
// fan-out does: the lean path hashes it for the signature once, the service
// client on every post.
func BenchmarkSendLargeFrame(b *testing.B) { benchNoNetwork(b, bytes.Repeat([]byte("x"), 120<<10)) }

// benchNoNetwork posts frame on both paths over answer200.
func benchNoNetwork(b *testing.B, frame []byte) {
	for _, tc := range []struct {
		name string
		sdk  bool
	}{{"lean", false}, {"sdk-client", true}} {
		b.Run(tc.name, func(b *testing.B) {
			opts := apigw.Options{Endpoint: "https://abc123.execute-api.eu-west-1.amazonaws.com/prod", Concurrency: 64}
			s := apigw.NewWithHTTPClient(StaticConfig(), opts, answer200{}, tc.sdk)
			benchPosts(b, s, frame, func() string { return "L0SM9cOFvHcCIhw=" }, nil)
		})
	}
}

func benchOutOfProcess(b *testing.B, newSender newSenderFunc) {
	url, conns := startServerProcess(b)
	s := newSender(StaticConfig(), apigw.Options{Endpoint: url + "/prod", Concurrency: 64})
	benchSends(b, s)
	b.ReportMetric(float64(conns()), "conns")
}

// benchSends posts a 1 KB frame b.N times from 64 goroutines (at
// GOMAXPROCS 2; the Sender's Concurrency), as a publish's worker pool does.
func benchSends(b *testing.B, s *apigw.Sender) {
	benchPosts(b, s, bytes.Repeat([]byte("x"), 1024), func() string { return "L0SM9cOFvHcCIhw=" }, nil)
}

// benchPosts posts frame b.N times from 64 goroutines, each to the
// connection next names, then waits for delivered (nil: nothing to wait
// for) before it stops the clock, and reports this process's CPU per post.
func benchPosts(b *testing.B, s *apigw.Sender, frame []byte, next func() string, delivered func()) {
	b.SetBytes(int64(len(frame)))
	b.SetParallelism(max(1, 64/runtime.GOMAXPROCS(0)))
	b.ReportAllocs()
	cpu := cpuTime()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if err := s.Send(context.Background(), next(), frame); err != nil {
				b.Error(err)
				return
			}
		}
	})
	if delivered != nil {
		delivered()
	}
	b.StopTimer()
	b.ReportMetric(float64(cpuTime()-cpu)/float64(b.N), "cpu-ns/op")
}

// cpuTime returns the CPU time (user + system) this process has used.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// answer200 is an HTTP client that answers every request 200 with an empty
// body, without a network.
type answer200 struct{}

func (answer200) Do(r *http.Request) (*http.Response, error) {
	if r.Body != nil {
		io.Copy(io.Discard, r.Body)
		r.Body.Close()
	}
	return &http.Response{
		Status: "200 OK", StatusCode: http.StatusOK, Proto: "HTTP/1.1", ProtoMajor: 1, ProtoMinor: 1,
		Header:  http.Header{"Content-Type": {"application/json"}, "X-Amzn-Requestid": {"req-1"}},
		Body:    io.NopCloser(strings.NewReader("")),
		Request: r,
	}, nil
}

// serverProcessEnv, set in a child's environment, makes the test binary
// serve as runServerProcess instead of running tests (see TestMain).
const serverProcessEnv = "APIGW_TEST_SERVER_PROCESS"

// startServerProcess starts this test binary as a loopback server in a
// child process and returns its URL and a function reporting how many TCP
// connections it accepted. The child ends with the benchmark.
func startServerProcess(b *testing.B) (url string, conns func() int64) {
	b.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), serverProcessEnv+"=1")
	cmd.Stderr = os.Stderr
	stdin, err := cmd.StdinPipe()
	if err != nil {
		b.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		b.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() {
		stdin.Close() // the child exits when its stdin closes
		if err := cmd.Wait(); err != nil {
			b.Errorf("server process: %v", err)
		}
	})
	line, err := bufio.NewReader(stdout).ReadString('\n')
	if err != nil {
		b.Fatalf("server process: %v", err)
	}
	url = strings.TrimSpace(line)
	return url, func() int64 {
		resp, err := http.Get(url + "/_conns")
		if err != nil {
			b.Error(err)
			return -1
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		n, _ := strconv.ParseInt(string(body), 10, 64)
		return n
	}
}

// runServerProcess is the child of startServerProcess: it answers every
// post 200 on a loopback port, prints its URL, and exits once its stdin
// closes.
func runServerProcess() {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	var conns atomic.Int64
	srv := &http.Server{
		Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r.URL.Path == "/_conns" {
				fmt.Fprint(w, conns.Load()-1) // not this request's connection
				return
			}
			io.Copy(io.Discard, r.Body)
		}),
		ConnState: func(_ net.Conn, st http.ConnState) {
			if st == http.StateNew {
				conns.Add(1)
			}
		},
	}
	go srv.Serve(ln)
	fmt.Println("http://" + ln.Addr().String())
	io.Copy(io.Discard, os.Stdin)
	os.Exit(0)
}

package main

import (
	"bufio"
	"bytes"
	"context"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

// loopbackServerMain is `notifybench loopback-server`: the smallest Go HTTP
// server that answers a POST the way the Management API answers a
// delivered frame (read the body, 200, no body). It prints its address and
// serves until its standard input closes.
func loopbackServerMain(args []string) {
	fs := flag.NewFlagSet("loopback-server", flag.ExitOnError)
	delay := fs.Duration("delay", 0, "sleep this long before each answer (like notify local --post-delay)")
	_ = fs.Parse(args)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if *delay > 0 {
			time.Sleep(*delay)
		}
		_, _ = io.Copy(io.Discard, r.Body)
		w.WriteHeader(http.StatusOK)
	})}
	fmt.Println(ln.Addr().String())
	go func() { _, _ = io.Copy(io.Discard, os.Stdin); os.Exit(0) }()
	_ = srv.Serve(ln)
}

// loopbackServer is a running `notifybench loopback-server` subprocess.
type loopbackServer struct {
	cmd   *exec.Cmd
	stdin io.WriteCloser
	url   string
}

func startLoopbackServer(delay time.Duration) (*loopbackServer, error) {
	self, err := os.Executable()
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(self, "loopback-server", "-delay", delay.String())
	cmd.Env = awsEnv()
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	cmd.Stderr = os.Stderr
	stdin, err := cmd.StdinPipe()
	if err != nil {
		return nil, err
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	line, err := bufio.NewReader(stdout).ReadString('\n')
	if err != nil {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		return nil, fmt.Errorf("loopback server: %w", err)
	}
	return &loopbackServer{cmd: cmd, stdin: stdin, url: "http://" + strings.TrimSpace(line) + "/@connections/L0SM9cOFvHcCIhw="}, nil
}

func (s *loopbackServer) stop() {
	_ = s.stdin.Close()
	done := make(chan struct{})
	go func() { _ = s.cmd.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		_ = s.cmd.Process.Kill()
		<-done
	}
}

// loopbackClient posts n bodies of size bytes to the server with
// concurrency workers sharing a keep-alive pool of that size.
type loopbackClient struct {
	client *http.Client
	url    string
}

func newLoopbackClient(url string, concurrency int) *loopbackClient {
	return &loopbackClient{url: url, client: &http.Client{Transport: &http.Transport{
		Proxy: nil, MaxIdleConns: concurrency, MaxIdleConnsPerHost: concurrency,
		DisableCompression: true, IdleConnTimeout: time.Minute,
	}}}
}

// run returns requests per second.
func (c *loopbackClient) run(n, concurrency, size int) (float64, error) {
	body := bytes.Repeat([]byte("x"), size)
	var next atomic.Int64
	var firstErr atomic.Pointer[error]
	var wg sync.WaitGroup
	start := time.Now()
	for range min(concurrency, n) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for next.Add(1) <= int64(n) {
				req, _ := http.NewRequestWithContext(context.Background(), http.MethodPost, c.url, bytes.NewReader(body))
				req.Header.Set("Content-Type", "application/octet-stream")
				resp, err := c.client.Do(req)
				if err == nil {
					_, _ = io.Copy(io.Discard, resp.Body)
					_ = resp.Body.Close()
					if resp.StatusCode != http.StatusOK {
						err = fmt.Errorf("loopback: HTTP %d", resp.StatusCode)
					}
				}
				if err != nil {
					firstErr.CompareAndSwap(nil, &err)
					return
				}
			}
		}()
	}
	wg.Wait()
	if p := firstErr.Load(); p != nil {
		return 0, *p
	}
	return float64(n) / time.Since(start).Seconds(), nil
}

// measureLoopback returns the median, min and max requests/s of runs rounds
// of n POSTs of size bytes at concurrency, after one warm-up round, against
// a fresh server subprocess.
func measureLoopback(n, concurrency, size, runs int, delay time.Duration) (stat, error) {
	srv, err := startLoopbackServer(delay)
	if err != nil {
		return stat{}, err
	}
	defer srv.stop()
	c := newLoopbackClient(srv.url, concurrency)
	if _, err := c.run(min(n, 1000), concurrency, size); err != nil {
		return stat{}, err
	}
	var rates []float64
	for range runs {
		r, err := c.run(n, concurrency, size)
		if err != nil {
			return stat{}, err
		}
		rates = append(rates, r)
	}
	return summarize(rates), nil
}

package main

import (
	"bytes"
	"context"
	"fmt"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/coder/websocket"

	"github.com/workorders/notify/internal/devstack"
)

const benchSecret = "notifybench-secret-of-32-bytes-or-more"

// run is one publish being measured: each targeted client stores when the
// notification of this run reached it.
type run struct {
	id        int
	recv      []int64 // unix nanoseconds, by client index; 0 = not received
	remaining atomic.Int64
	done      chan struct{}
	frameLen  atomic.Int64
}

// fleet is the benchmark's WebSocket clients, all in this process.
type fleet struct {
	url     string
	mu      sync.Mutex
	clients []*websocket.Conn
	current atomic.Pointer[run]
	extra   atomic.Int64 // notifications of another run, or duplicates
	ctx     context.Context
	cancel  context.CancelFunc
	readers sync.WaitGroup
	http    *http.Client
}

func newFleet(url string) *fleet {
	ctx, cancel := context.WithCancel(context.Background())
	return &fleet{url: url, ctx: ctx, cancel: cancel, http: &http.Client{Transport: &http.Transport{
		Proxy: nil, DisableKeepAlives: true, DisableCompression: true,
	}}}
}

func (f *fleet) size() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.clients)
}

// connect opens n more connections, user userOf(i) with groups, at most
// parallel handshakes at once (the pacing: the listen backlog is 4,096 and
// every handshake runs ConnectFunction). It returns the connects per second.
func (f *fleet) connect(n, parallel int, userOf func(i int) string, groups []string) (float64, error) {
	tokens := make([]string, n)
	for i := range n {
		t, err := devstack.SignToken(devstack.TokenClaims{Secret: benchSecret, Subject: userOf(i), Groups: groups, TTL: 2 * time.Hour})
		if err != nil {
			return 0, err
		}
		tokens[i] = t
	}
	var next atomic.Int64
	var firstErr atomic.Pointer[error]
	var wg sync.WaitGroup
	start := time.Now()
	for range parallel {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := int(next.Add(1) - 1)
				if i >= n || firstErr.Load() != nil {
					return
				}
				ws, err := f.dial(tokens[i])
				if err != nil {
					firstErr.CompareAndSwap(nil, &err)
					return
				}
				f.mu.Lock()
				idx := len(f.clients)
				f.clients = append(f.clients, ws)
				f.mu.Unlock()
				f.readers.Add(1)
				go f.read(idx, ws)
			}
		}()
	}
	wg.Wait()
	if p := firstErr.Load(); p != nil {
		return 0, *p
	}
	return float64(n) / time.Since(start).Seconds(), nil
}

func (f *fleet) dial(token string) (*websocket.Conn, error) {
	var err error
	for attempt := range 5 {
		ctx, cancel := context.WithTimeout(f.ctx, 30*time.Second)
		var ws *websocket.Conn
		ws, _, err = websocket.Dial(ctx, f.url+"?token="+token, &websocket.DialOptions{
			HTTPClient: f.http, CompressionMode: websocket.CompressionDisabled,
		})
		cancel()
		if err == nil {
			return ws, nil
		}
		time.Sleep(time.Duration(attempt+1) * 50 * time.Millisecond)
	}
	return nil, fmt.Errorf("connect: %w", err)
}

var runKey = []byte(`"run":`)

// read records, for each notification frame, when it arrived. Parsing is
// kept to finding "run":N, so that 10,000 readers cost the shared CPUs as
// little as possible.
func (f *fleet) read(idx int, ws *websocket.Conn) {
	defer f.readers.Done()
	for {
		_, data, err := ws.Read(f.ctx)
		now := time.Now().UnixNano()
		if err != nil {
			return
		}
		i := bytes.Index(data, runKey)
		if i < 0 {
			continue
		}
		id := 0
		for _, ch := range data[i+len(runKey):] {
			if ch < '0' || ch > '9' {
				break
			}
			id = id*10 + int(ch-'0')
		}
		r := f.current.Load()
		if r == nil || r.id != id || idx >= len(r.recv) || r.recv[idx] != 0 {
			f.extra.Add(1)
			continue
		}
		r.recv[idx] = now
		r.frameLen.Store(int64(len(data)))
		if r.remaining.Add(-1) == 0 {
			close(r.done)
		}
	}
}

// begin starts measuring run id, expecting want deliveries.
func (f *fleet) begin(id, want int) *run {
	r := &run{id: id, recv: make([]int64, f.size()), done: make(chan struct{})}
	r.remaining.Store(int64(want))
	f.current.Store(r)
	return r
}

// wait waits until every expected client has the notification.
func (r *run) wait(timeout time.Duration) error {
	select {
	case <-r.done:
		return nil
	case <-time.After(timeout):
		return fmt.Errorf("run %d: %d notifications missing after %s: %w", r.id, r.remaining.Load(), timeout, errTimeout)
	}
}

// latencies returns each receipt's delay after t0, and the number received.
func (r *run) latencies(t0 time.Time) []time.Duration {
	out := make([]time.Duration, 0, len(r.recv))
	base := t0.UnixNano()
	for _, ns := range r.recv {
		if ns != 0 {
			out = append(out, time.Duration(ns-base))
		}
	}
	return out
}

// close closes every connection (1000) and waits for the readers.
func (f *fleet) close() {
	f.mu.Lock()
	clients := f.clients
	f.clients = nil
	f.mu.Unlock()
	var wg sync.WaitGroup
	sem := make(chan struct{}, 256)
	for _, ws := range clients {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			_ = ws.CloseNow()
		}()
	}
	wg.Wait()
	f.cancel()
	f.readers.Wait()
}

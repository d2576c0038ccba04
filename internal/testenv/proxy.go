package testenv

import (
	"bytes"
	"context"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"
)

// Proxy stands between the code under test and a DynamoDB endpoint and
// misbehaves on request: it holds the answer of matching calls (the call
// itself reaches DynamoDB at once, as when a response is lost in the
// network), stalls matching calls without forwarding them, or refuses every
// connection. It models slow and failing storage with the real engine
// behind it. Observe shows a test every call that passes.
type Proxy struct {
	upstream string
	client   *http.Client

	mu       sync.Mutex
	addr     string
	listener net.Listener
	server   *http.Server
	rules    []*ProxyRule
	observe  func(operation string, body []byte)
	done     chan struct{} // closed when the test ends: held answers go out
}

// ProxyRule says what to do with the calls it matches.
type ProxyRule struct {
	// Operation is the DynamoDB operation (PutItem, BatchWriteItem...), the
	// part of X-Amz-Target after the dot.
	Operation string
	// Contains, when not empty, must occur in the request body.
	Contains string
	// Hold forwards the call at once and answers it only after Hold.
	Hold time.Duration
	// Stall never forwards the call: it answers nothing until the client
	// gives up (or the rule is removed, or the test ends).
	Stall bool
	// Times is how many calls the rule applies to; 0 means every call.
	Times int

	used    int
	removed chan struct{}
}

// NewProxy starts a proxy to upstream (an http://host:port DynamoDB
// endpoint) on a free loopback port; it stops when tb ends.
func NewProxy(tb testing.TB, upstream string) *Proxy {
	tb.Helper()
	p := &Proxy{upstream: strings.TrimSuffix(upstream, "/"), client: &http.Client{}, done: make(chan struct{})}
	if err := p.listen("127.0.0.1:0"); err != nil {
		tb.Fatalf("proxy: %v", err)
	}
	tb.Cleanup(func() {
		close(p.done)
		p.mu.Lock()
		defer p.mu.Unlock()
		if p.server != nil {
			p.server.Close()
		}
	})
	return p
}

// URL is the proxy's endpoint.
func (p *Proxy) URL() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return "http://" + p.addr
}

func (p *Proxy) listen(addr string) error {
	l, err := net.Listen("tcp", addr)
	if err != nil {
		return err
	}
	p.addr = l.Addr().String()
	p.listener = l
	p.server = &http.Server{Handler: p}
	go p.server.Serve(l)
	return nil
}

// Observe has fn called with every call's operation (PutItem,
// BatchWriteItem...) and request body before the call is forwarded; calls
// may come from several goroutines at once.
func (p *Proxy) Observe(fn func(operation string, body []byte)) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.observe = fn
}

// Add installs rule; the first matching rule applies to a call.
func (p *Proxy) Add(rule *ProxyRule) *ProxyRule {
	rule.removed = make(chan struct{})
	p.mu.Lock()
	defer p.mu.Unlock()
	p.rules = append(p.rules, rule)
	return rule
}

// Remove uninstalls rule and lets the calls it stalls or holds go on.
func (p *Proxy) Remove(rule *ProxyRule) {
	p.mu.Lock()
	defer p.mu.Unlock()
	for i, r := range p.rules {
		if r == rule {
			p.rules = append(p.rules[:i], p.rules[i+1:]...)
			close(rule.removed)
			return
		}
	}
}

// Refuse closes the listener: every new connection is refused, and open
// ones are cut, until Accept.
func (p *Proxy) Refuse() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.server.Close()
}

// Accept listens again on the same address.
func (p *Proxy) Accept(tb testing.TB) {
	tb.Helper()
	p.mu.Lock()
	defer p.mu.Unlock()
	var err error
	for range 50 { // the port may linger a moment after Close
		if err = p.listen(p.addr); err == nil {
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
	tb.Fatalf("proxy: listen again on %s: %v", p.addr, err)
}

func (p *Proxy) match(op string, body []byte) *ProxyRule {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, r := range p.rules {
		if r.Operation != op || (r.Contains != "" && !bytes.Contains(body, []byte(r.Contains))) {
			continue
		}
		if r.Times > 0 && r.used >= r.Times {
			continue
		}
		r.used++
		return r
	}
	return nil
}

// ServeHTTP forwards one call, applying the first matching rule.
func (p *Proxy) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, err := io.ReadAll(r.Body)
	if err != nil {
		return
	}
	target := r.Header.Get("X-Amz-Target")
	op := target[strings.LastIndexByte(target, '.')+1:]
	p.mu.Lock()
	observe := p.observe
	p.mu.Unlock()
	if observe != nil {
		observe(op, body)
	}
	rule := p.match(op, body)
	if rule != nil && rule.Stall {
		select {
		case <-r.Context().Done():
			return
		case <-rule.removed:
		case <-p.done:
			return
		}
	}
	req, err := http.NewRequestWithContext(context.WithoutCancel(r.Context()), r.Method, p.upstream+r.URL.RequestURI(), bytes.NewReader(body))
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadGateway)
		return
	}
	req.Header = r.Header.Clone()
	resp, err := p.client.Do(req)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadGateway)
		return
	}
	defer resp.Body.Close()
	answer, _ := io.ReadAll(resp.Body)
	if rule != nil && rule.Hold > 0 {
		t := time.NewTimer(rule.Hold)
		select {
		case <-t.C:
		case <-rule.removed:
		case <-p.done:
		case <-r.Context().Done(): // the client gave up: its answer is lost
			t.Stop()
			return
		}
	}
	for k, v := range resp.Header {
		w.Header()[k] = v
	}
	w.WriteHeader(resp.StatusCode)
	_, _ = w.Write(answer)
}

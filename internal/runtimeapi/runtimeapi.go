// Package runtimeapi is a minimal Lambda Runtime API (the protocol AWS's
// runtime interface emulator speaks), enough to run a provided.al2023
// bootstrap (aws-lambda-go built with -tags lambda.norpc) on this machine:
// the bootstrap is started with AWS_LAMBDA_RUNTIME_API pointing here, polls
// GET /2018-06-01/runtime/invocation/next (answered with the
// Lambda-Runtime-Aws-Request-Id, -Deadline-Ms, -Invoked-Function-Arn and
// -Trace-Id headers), and answers with
// POST /2018-06-01/runtime/invocation/{id}/response or .../error, or reports
// a failed init with POST /2018-06-01/runtime/init/error.
//
// It serves one function at a time, on loopback only. `notify invoke`
// (cmd/notify) runs a function with it, and the benchmark
// (bench/cmd/notifybench) times cold starts with it.
package runtimeapi

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"
)

const prefix = "/2018-06-01/runtime/"

// Result is the bootstrap's answer to one invocation.
type Result struct {
	RequestID string
	// Payload is the response body, or the error document when Error is set.
	Payload []byte
	// Error is true when the function answered through .../error (a function
	// error), or reported an init error.
	Error bool
	// At is when the answer arrived.
	At time.Time
}

type invocation struct {
	id       string
	payload  []byte
	deadline time.Time
	done     chan Result
}

// Server is a Runtime API for one function.
type Server struct {
	// FunctionARN is sent as Lambda-Runtime-Invoked-Function-Arn.
	FunctionARN string
	// Timeout is each invocation's deadline (Lambda-Runtime-Deadline-Ms).
	Timeout time.Duration

	ln    net.Listener
	srv   *http.Server
	queue chan *invocation

	mu        sync.Mutex
	pending   map[string]*invocation
	initErr   chan Result
	firstPoll time.Time
}

// FirstPoll is when the bootstrap first asked for an invocation (the end of
// its init phase), or the zero time.
func (s *Server) FirstPoll() time.Time {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.firstPoll
}

// Start listens on a free loopback port and serves in the background.
func Start(functionARN string, timeout time.Duration) (*Server, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	s := &Server{
		FunctionARN: functionARN, Timeout: timeout,
		ln: ln, queue: make(chan *invocation, 16),
		pending: map[string]*invocation{}, initErr: make(chan Result, 1),
	}
	s.srv = &http.Server{Handler: s, ReadHeaderTimeout: 10 * time.Second}
	go func() { _ = s.srv.Serve(ln) }()
	return s, nil
}

// Addr is the value of AWS_LAMBDA_RUNTIME_API: HOST:PORT.
func (s *Server) Addr() string { return s.ln.Addr().String() }

// Close stops the server; a bootstrap still polling gets its connection closed.
func (s *Server) Close() error { return s.srv.Close() }

// Enqueue hands event to the next GET .../invocation/next and returns a
// channel that receives the bootstrap's answer (or its init error).
func (s *Server) Enqueue(event []byte) <-chan Result {
	_, done := s.Submit(event)
	return done
}

// Submit is Enqueue that also returns the invocation's request ID (the
// Lambda-Runtime-Aws-Request-Id header the bootstrap will be given).
func (s *Server) Submit(event []byte) (requestID string, done <-chan Result) {
	inv := &invocation{id: newID(), payload: event, done: make(chan Result, 1)}
	s.mu.Lock()
	s.pending[inv.id] = inv
	s.mu.Unlock()
	s.queue <- inv
	return inv.id, inv.done
}

// InitError returns a channel that receives the bootstrap's init error, if
// it reports one (POST .../init/error).
func (s *Server) InitError() <-chan Result { return s.initErr }

// Invoke enqueues event and waits for the answer, or ctx.
func (s *Server) Invoke(ctx context.Context, event []byte) (Result, error) {
	done := s.Enqueue(event)
	select {
	case r := <-done:
		return r, nil
	case r := <-s.initErr:
		return r, fmt.Errorf("init error: %s", r.Payload)
	case <-ctx.Done():
		return Result{}, ctx.Err()
	}
}

// ServeHTTP implements the Runtime API paths.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	path, ok := strings.CutPrefix(r.URL.Path, prefix)
	if !ok {
		http.NotFound(w, r)
		return
	}
	switch {
	case r.Method == http.MethodGet && path == "invocation/next":
		s.next(w, r)
	case r.Method == http.MethodPost && path == "init/error":
		body, _ := io.ReadAll(r.Body)
		select {
		case s.initErr <- Result{Payload: body, Error: true, At: time.Now()}:
		default:
		}
		w.WriteHeader(http.StatusAccepted)
	case r.Method == http.MethodPost && strings.HasPrefix(path, "invocation/"):
		rest := strings.TrimPrefix(path, "invocation/")
		id, kind, ok := strings.Cut(rest, "/")
		if !ok || (kind != "response" && kind != "error") {
			http.NotFound(w, r)
			return
		}
		body, err := io.ReadAll(r.Body)
		at := time.Now()
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		s.mu.Lock()
		inv := s.pending[id]
		delete(s.pending, id)
		s.mu.Unlock()
		if inv == nil {
			http.Error(w, `{"errorMessage":"unknown request id","errorType":"InvalidRequestID"}`, http.StatusBadRequest)
			return
		}
		w.WriteHeader(http.StatusAccepted)
		inv.done <- Result{RequestID: id, Payload: body, Error: kind == "error", At: at}
	default:
		http.NotFound(w, r)
	}
}

// next blocks until an invocation is queued (as the real API does), then
// hands it over with Lambda's headers.
func (s *Server) next(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	if s.firstPoll.IsZero() {
		s.firstPoll = time.Now()
	}
	s.mu.Unlock()
	var inv *invocation
	select {
	case inv = <-s.queue:
	case <-r.Context().Done():
		return
	}
	timeout := s.Timeout
	if timeout <= 0 {
		timeout = 15 * time.Second
	}
	deadline := time.Now().Add(timeout)
	h := w.Header()
	h.Set("Content-Type", "application/json")
	h.Set("Lambda-Runtime-Aws-Request-Id", inv.id)
	h.Set("Lambda-Runtime-Deadline-Ms", strconv.FormatInt(deadline.UnixMilli(), 10))
	h.Set("Lambda-Runtime-Invoked-Function-Arn", s.FunctionARN)
	h.Set("Lambda-Runtime-Trace-Id", "Root=1-00000000-000000000000000000000000;Parent=0000000000000000;Sampled=0")
	w.WriteHeader(http.StatusOK)
	_, _ = w.Write(inv.payload)
}

func newID() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	s := hex.EncodeToString(b[:])
	return s[0:8] + "-" + s[8:12] + "-" + s[12:16] + "-" + s[16:20] + "-" + s[20:]
}

// ErrNoAnswer is returned when a bootstrap exits before answering.
var ErrNoAnswer = errors.New("runtimeapi: the bootstrap exited before answering")

package localgw

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/aws/aws-lambda-go/lambda"
	"github.com/valyala/fasthttp"
)

// Defaults and fixed values of the local stack.
const (
	DefaultIdleTimeout     = 10 * time.Minute // API Gateway's idle timeout
	DefaultMaxDuration     = 2 * time.Hour    // API Gateway's maximum connection duration
	DefaultFunctionTimeout = 30 * time.Second // deadline of an invocation without FunctionTimeouts

	// Stage and APIID are the requestContext.stage and requestContext.apiId of every event.
	Stage = "local"
	APIID = "local"
	// Region and AccountID make up the ARNs handed to functions.
	Region    = "us-east-1"
	AccountID = "000000000000"

	// DefaultSendQueue is the number of frames a connection's send queue holds (Config.SendQueue).
	DefaultSendQueue = 1024

	// writeTimeout bounds one frame written to a socket: a client that does not read is
	// dropped (and treated as gone) rather than holding its writer forever.
	writeTimeout = 10 * time.Second
)

// Config describes the local API and its functions.
type Config struct {
	// Addr is the host:port to listen on; port 0 picks a free port. Default 127.0.0.1:0.
	Addr string
	// RouteSelectionExpression selects the route of a text message, e.g. "$request.body.action".
	// Only the $request.body.PATH form is supported; empty routes every message to $default.
	RouteSelectionExpression string
	// Routes maps a route key ($connect, $disconnect, $default or a custom key) to a function
	// name. A missing $connect or $disconnect route is simply not invoked.
	Routes map[string]string
	// Functions maps a function name (the template's logical ID) to its handler. Every function
	// can be called through the Invoke API.
	Functions map[string]lambda.Handler
	// FunctionTimeouts is the deadline of each function's invocations (default
	// DefaultFunctionTimeout).
	FunctionTimeouts map[string]time.Duration
	// IdleTimeout closes a socket with no data message in either direction for that long
	// (default DefaultIdleTimeout). MaxDuration closes every socket that old (default
	// DefaultMaxDuration).
	IdleTimeout, MaxDuration time.Duration
	// SendQueue is the number of frames each connection's send queue holds (default
	// DefaultSendQueue). A POST /@connections/{id} answers once its frame is queued; one writer
	// per connection, running while frames wait, empties the queue. A post that finds the queue full drops the connection
	// (the client does not keep up) and answers 410.
	SendQueue int
	// PostDelay is slept before each Management API answer, to model AWS's round trip.
	PostDelay time.Duration
	// Static, when set, serves plain GET requests on paths that are not the APIs (the demo page).
	Static http.Handler
	// FunctionInfo describes functions for ListFunctions and GetFunction (runtime, handler,
	// memory...); a function without an entry gets defaults (see FunctionInfo).
	FunctionInfo map[string]FunctionInfo
	// Logger receives the gateway's logs (default slog.Default()). The gateway wraps its handler
	// with TailHandler: give the functions a logger on TailHandler(Logger.Handler()) too, so that
	// their lines reach X-Amz-Log-Result.
	Logger *slog.Logger
}

// Gateway is the local API Gateway + Lambda. Create it with New, then Start it.
type Gateway struct {
	cfg       Config
	log       *slog.Logger
	selectKey []string // field path of the route selection expression, nil when none
	functions map[string]*function

	mu        sync.Mutex
	conns     map[string]*connection // connections reachable through @connections
	closing   bool
	started   bool
	startedAt time.Time // the functions' LastModified
	ln        net.Listener
	door      *frontDoor
	srv       *http.Server     // every connection but the Management API's (frontDoor)
	fastSrv   *fasthttp.Server // connections that start with a Management API request
	serveErr  chan error
	fastErr   chan error
	fastMu    sync.Mutex
	fastConns map[net.Conn]struct{} // the fasthttp server's open connections

	freshMu sync.Mutex
	fresh   map[net.Conn]struct{} // HTTP connections that have not sent a request yet

	sockets    sync.WaitGroup // upgrade handlers, from the $connect invocation to $disconnect
	background sync.WaitGroup // Event invocations
}

type function struct {
	name    string
	handler lambda.Handler
	gate    *sync.Mutex
	timeout time.Duration
}

// New checks cfg and builds a Gateway. It does not listen yet.
func New(cfg Config) (*Gateway, error) {
	if cfg.Addr == "" {
		cfg.Addr = "127.0.0.1:0"
	}
	if cfg.IdleTimeout <= 0 {
		cfg.IdleTimeout = DefaultIdleTimeout
	}
	if cfg.MaxDuration <= 0 {
		cfg.MaxDuration = DefaultMaxDuration
	}
	if cfg.SendQueue <= 0 {
		cfg.SendQueue = DefaultSendQueue
	}
	if cfg.PostDelay < 0 {
		cfg.PostDelay = 0
	}
	g := &Gateway{
		cfg:       cfg,
		log:       cfg.Logger,
		functions: make(map[string]*function, len(cfg.Functions)),
		conns:     make(map[string]*connection),
	}
	if g.log == nil {
		g.log = slog.Default()
	}
	if _, ok := g.log.Handler().(*tailHandler); !ok {
		g.log = slog.New(TailHandler(g.log.Handler()))
	}

	if expr := strings.TrimSpace(cfg.RouteSelectionExpression); expr != "" {
		const prefix = "$request.body."
		path, ok := strings.CutPrefix(expr, prefix)
		if !ok || path == "" {
			return nil, fmt.Errorf("localgw: route selection expression %q: only %sFIELD is supported", expr, prefix)
		}
		g.selectKey = strings.Split(path, ".")
		for _, p := range g.selectKey {
			if p == "" {
				return nil, fmt.Errorf("localgw: route selection expression %q: empty field name", expr)
			}
		}
		// With only the $ routes every message goes to $default: skip
		// decoding each one to find a key no route can have.
		custom := false
		for key := range cfg.Routes {
			custom = custom || !strings.HasPrefix(key, "$")
		}
		if !custom {
			g.selectKey = nil
		}
	}

	// Handlers built by lambda.NewHandler are pointers: one gate per handler value, so that two
	// names for the same handler share it. Other handlers get one gate per name.
	gates := make(map[any]*sync.Mutex)
	for name, h := range cfg.Functions {
		if h == nil {
			return nil, fmt.Errorf("localgw: function %q has a nil handler", name)
		}
		var key any = "name:" + name
		if isPointer(h) {
			key = h
		}
		gate := gates[key]
		if gate == nil {
			gate = new(sync.Mutex)
			gates[key] = gate
		}
		timeout := cfg.FunctionTimeouts[name]
		if timeout <= 0 {
			timeout = DefaultFunctionTimeout
		}
		g.functions[name] = &function{name: name, handler: h, gate: gate, timeout: timeout}
	}
	for route, name := range cfg.Routes {
		if route == "" {
			return nil, errors.New("localgw: empty route key")
		}
		if _, ok := g.functions[name]; !ok {
			return nil, fmt.Errorf("localgw: route %q names function %q, which is not in Functions", route, name)
		}
	}
	return g, nil
}

// Start listens on Config.Addr and serves in the background.
func (g *Gateway) Start() error {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.started {
		return errors.New("localgw: already started")
	}
	ln, err := net.Listen("tcp", g.cfg.Addr)
	if err != nil {
		return fmt.Errorf("localgw: listen: %w", err)
	}
	g.started = true
	g.startedAt = time.Now()
	g.ln = ln
	g.srv = &http.Server{
		Handler:           g,
		ReadHeaderTimeout: 10 * time.Second,
		ErrorLog:          slog.NewLogLogger(g.log.Handler(), slog.LevelWarn),
		ConnState:         g.trackConnState,
	}
	g.door = newFrontDoor(ln)
	g.fastSrv = g.newFastServer()
	g.serveErr = make(chan error, 1)
	g.fastErr = make(chan error, 1)
	go func() { g.serveErr <- g.srv.Serve(g.door.web) }()
	go func() { g.fastErr <- g.fastSrv.Serve(g.door.fast) }()
	go g.door.run(g.log)
	g.log.Info("local gateway listening", "url", g.URL(), "addr", g.Addr())
	return nil
}

// Addr returns the address the gateway listens on (host:port), or "" before Start.
func (g *Gateway) Addr() string {
	if g.ln == nil {
		return ""
	}
	return g.ln.Addr().String()
}

// URL returns the WebSocket API's URL, "ws://HOST:PORT/".
func (g *Gateway) URL() string { return "ws://" + g.Addr() + "/" }

// Shutdown closes every socket with 1001 "Going away", waits for their $disconnect invocations,
// stops both HTTP servers (waiting for requests in flight), then waits for Event invocations.
// When ctx ends first, it drops what is left and returns ctx's error.
func (g *Gateway) Shutdown(ctx context.Context) error {
	g.mu.Lock()
	if !g.started || g.closing {
		g.mu.Unlock()
		return nil
	}
	g.closing = true
	open := make([]*connection, 0, len(g.conns))
	for _, c := range g.conns {
		open = append(open, c)
	}
	g.mu.Unlock()

	for _, c := range open {
		g.closeConn(c, closeGoingAway, "Going away")
	}
	if err := waitCtx(ctx, &g.sockets); err != nil {
		g.dropAll()
		g.closeHTTP()
		return err
	}
	g.door.close()
	fastDone := make(chan error, 1)
	go func() {
		err := g.fastSrv.ShutdownWithContext(ctx)
		// Also when Serve had not yet taken its listener (ShutdownWithContext then closes
		// nothing): Serve returns once its listener is closed.
		_ = g.door.fast.Close()
		fastDone <- err
	}()
	if err := g.shutdownHTTP(ctx); err != nil {
		g.closeHTTP()
		return err
	}
	if err := <-fastDone; err != nil {
		g.closeHTTP()
		return err
	}
	if err := <-g.serveErr; err != nil && !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	if err := <-g.fastErr; err != nil {
		return err
	}
	return waitCtx(ctx, &g.background)
}

// closeHTTP stops both HTTP servers at once, closing their connections, busy or idle.
func (g *Gateway) closeHTTP() {
	g.door.close()
	_ = g.srv.Close()
	ctx, cancel := context.WithCancel(context.Background())
	cancel() // closes fasthttp's listener and idle connections, and returns
	_ = g.fastSrv.ShutdownWithContext(ctx)
	_ = g.door.fast.Close()
	g.closeFastConns() // and the busy ones
}

// shutdownHTTP is http.Server.Shutdown without its wait for connections that never sent a
// request: net/http counts those as active for 5 s, and SDK clients leave such spare
// connections behind. They are closed as soon as the listener is.
func (g *Gateway) shutdownHTTP(ctx context.Context) error {
	done := make(chan error, 1)
	go func() { done <- g.srv.Shutdown(ctx) }()
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for {
		select {
		case err := <-done:
			return err
		case <-tick.C:
			g.freshMu.Lock()
			for c := range g.fresh {
				_ = c.Close()
				delete(g.fresh, c)
			}
			g.freshMu.Unlock()
		}
	}
}

func (g *Gateway) trackConnState(c net.Conn, state http.ConnState) {
	g.freshMu.Lock()
	defer g.freshMu.Unlock()
	if g.fresh == nil {
		g.fresh = make(map[net.Conn]struct{})
	}
	if state == http.StateNew {
		g.fresh[c] = struct{}{}
	} else {
		delete(g.fresh, c)
	}
}

func (g *Gateway) dropAll() {
	g.mu.Lock()
	open := make([]*connection, 0, len(g.conns))
	for _, c := range g.conns {
		open = append(open, c)
	}
	g.mu.Unlock()
	for _, c := range open {
		g.dropConn(c, closeAbnormal, "shutdown")
	}
}

func waitCtx(ctx context.Context, wg *sync.WaitGroup) error {
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// ServeHTTP dispatches to the Management API, the Invoke API, the WebSocket API and Static.
func (g *Gateway) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if id, ok := connectionsPath(r.URL.Path); ok {
		g.serveConnections(w, r, id)
		return
	}
	if strings.HasPrefix(r.URL.Path, lambdaPrefix) {
		g.serveLambda(w, r)
		return
	}
	if isUpgrade(r) {
		g.serveWebSocket(w, r)
		return
	}
	if g.cfg.Static != nil && (r.Method == http.MethodGet || r.Method == http.MethodHead) {
		g.cfg.Static.ServeHTTP(w, r)
		return
	}
	if r.URL.Path == "/" && r.Method == http.MethodGet {
		http.Error(w, "this is a WebSocket endpoint: connect with a WebSocket client", http.StatusUpgradeRequired)
		return
	}
	writeAWSError(w, http.StatusNotFound, "NotFoundException", "Not Found")
}

// connectionsPath recognises /@connections/{id}, also under one stage segment
// (/local/@connections/{id}), as a Management API endpoint built from a stage URL would send.
func connectionsPath(p string) (string, bool) {
	const marker = "/@connections/"
	i := strings.Index(p, marker)
	if i < 0 || strings.Count(p[:i], "/") > 1 {
		return "", false
	}
	id := p[i+len(marker):]
	return id, id != ""
}

func isUpgrade(r *http.Request) bool {
	return strings.EqualFold(r.Header.Get("Upgrade"), "websocket")
}

// writeAWSError answers like AWS's REST-JSON services: the error code in x-amzn-ErrorType and
// {"message": ...} in the body.
func writeAWSError(w http.ResponseWriter, status int, code, message string) {
	writeJSON(w, status, map[string]string{"message": message}, code)
}

func writeJSON(w http.ResponseWriter, status int, v any, errorType string) {
	b, err := json.Marshal(v)
	if err != nil {
		status, b = http.StatusInternalServerError, []byte(`{"message":"Internal server error"}`)
	}
	w.Header().Set("Content-Type", "application/json")
	if errorType != "" {
		w.Header().Set("x-amzn-ErrorType", errorType)
	}
	w.WriteHeader(status)
	_, _ = w.Write(b)
}

// newID returns an id shaped like API Gateway's connection and request ids ("L0SM9cOFvHcCIhw="):
// 11 random bytes in base64, 16 characters ending in one '=', with '+' and '/' avoided so that
// ids are path-safe apart from '='.
func newID() string {
	const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"
	var b [11]byte
	_, _ = rand.Read(b[:])
	s := []byte(base64.StdEncoding.EncodeToString(b[:]))
	for i, ch := range s {
		if ch == '+' || ch == '/' {
			s[i] = alphabet[int(b[i%len(b)])%len(alphabet)]
		}
	}
	return string(s)
}

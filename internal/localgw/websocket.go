package localgw

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
	"unicode/utf8"

	"github.com/aws/aws-lambda-go/events"
	"github.com/coder/websocket"
	"github.com/google/uuid"

	"github.com/workorders/notify/internal/notify"
)

// Close codes the gateway sends or reports.
const (
	closeNormal      = websocket.StatusNormalClosure   // 1000
	closeGoingAway   = websocket.StatusGoingAway       // 1001
	closeUnsupported = websocket.StatusUnsupportedData // 1003
	closeAbnormal    = websocket.StatusAbnormalClosure // 1006 (never sent in a frame)
	closeTooBig      = websocket.StatusMessageTooBig   // 1009
)

// requestTimeLayout is requestContext.requestTime's layout ("20/Jan/2024:11:55:08 +0000").
const requestTimeLayout = "02/Jan/2006:15:04:05 -0700"

// connection is one accepted WebSocket.
type connection struct {
	id          string
	ws          *websocket.Conn
	connectedAt time.Time
	sourceIP    string
	userAgent   string
	headers     map[string]string
	mvHeaders   map[string][]string
	lastActive  atomic.Int64 // unix nanoseconds of the last data message, either way

	closeOnce   sync.Once
	closeCode   websocket.StatusCode // set once, by whoever closes first
	closeReason string
	closed      chan struct{} // closed when the socket is fully closed
	closedOnce  sync.Once
	ready       chan struct{} // closed once the upgrade was answered; ws is set if it succeeded

	// The send queue: frames for the socket, in order, at most queueCap of them. A writer
	// goroutine runs only while there is something to write (writeFrames): an idle connection
	// holds no writer and no queue buffer, which keeps 10,000 idle sockets cheap. qshut is set
	// when the connection starts closing; the writer then sends what is queued and, for a
	// graceful close, the close frame after it. queue, writing and qshut are guarded by qmu;
	// the writer's own state (wfailed, wtimer) is touched only by the one writer that runs,
	// and passes from one writer to the next through qmu; wtimedOut is set by the timer.
	qmu      sync.Mutex
	queue    []outFrame
	queueCap int
	writing  bool // a writer goroutine runs, or none may start yet (no socket)
	qshut    bool

	wfailed   bool        // a write failed or timed out: later frames are discarded
	wtimer    *time.Timer // bounds each write (created by the first writer)
	wtimedOut atomic.Bool
}

// outFrame is one message for a socket.
type outFrame struct {
	typ  websocket.MessageType
	data []byte
}

// Errors of connection.enqueue.
var (
	errGone      = errors.New("connection is gone")
	errQueueFull = errors.New("send queue full")
)

// enqueue queues one frame for the socket without waiting for it to be written, and starts
// the writer if none runs.
func (g *Gateway) enqueue(c *connection, typ websocket.MessageType, data []byte) error {
	c.qmu.Lock()
	if c.qshut {
		c.qmu.Unlock()
		return errGone
	}
	if len(c.queue) >= c.queueCap {
		c.qmu.Unlock()
		return errQueueFull
	}
	c.queue = append(c.queue, outFrame{typ: typ, data: data})
	start := !c.writing
	c.writing = true
	c.qmu.Unlock()
	if start {
		go g.writeFrames(c)
	}
	return nil
}

// startWriting lets writers run once c's socket exists, and starts one if the connection was
// closed in the meantime.
func (g *Gateway) startWriting(c *connection) {
	c.qmu.Lock()
	start := c.qshut || len(c.queue) > 0
	c.writing = start
	c.qmu.Unlock()
	if start {
		go g.writeFrames(c)
	}
}

// shutQueue refuses further frames; the writer drains what is queued, then closes the socket.
func (g *Gateway) shutQueue(c *connection) {
	c.qmu.Lock()
	if c.qshut {
		c.qmu.Unlock()
		return
	}
	c.qshut = true
	start := !c.writing
	c.writing = true
	c.qmu.Unlock()
	if start {
		go g.writeFrames(c)
	}
}

func (c *connection) markClosed() { c.closedOnce.Do(func() { close(c.closed) }) }

// socket waits until the upgrade was answered and returns the socket, or nil if the upgrade
// failed or ctx ended first.
func (c *connection) socket(ctx context.Context) *websocket.Conn {
	select {
	case <-c.ready: // the usual case, checked first: ctx.Done may allocate its channel
		return c.ws
	default:
	}
	select {
	case <-c.ready:
		return c.ws
	case <-ctx.Done():
		return nil
	}
}

func (c *connection) touch() { c.lastActive.Store(time.Now().UnixNano()) }

// serveWebSocket runs one connection from its $connect invocation to its $disconnect invocation.
func (g *Gateway) serveWebSocket(w http.ResponseWriter, r *http.Request) {
	g.mu.Lock()
	if g.closing {
		g.mu.Unlock()
		writeAWSError(w, http.StatusServiceUnavailable, "ServiceUnavailableException", "Service Unavailable")
		return
	}
	g.sockets.Add(1)
	g.mu.Unlock()
	defer g.sockets.Done()

	now := time.Now()
	c := &connection{
		id:          newID(),
		connectedAt: now,
		sourceIP:    sourceIP(r),
		userAgent:   r.UserAgent(),
		closed:      make(chan struct{}),
		ready:       make(chan struct{}),
		queueCap:    g.cfg.SendQueue,
		writing:     true, // until the socket exists (startWriting)
	}
	c.headers, c.mvHeaders = eventHeaders(r, c.sourceIP)
	log := g.log.With("connectionId", c.id)

	var accept websocket.AcceptOptions
	accept.InsecureSkipVerify = true // the origin is $connect's business, as on AWS
	if name, ok := g.cfg.Routes["$connect"]; ok {
		ev := g.connectEvent(c, r, now)
		inv, err := g.invoke(context.WithoutCancel(r.Context()), name, mustJSON(ev))
		if err != nil || inv.fnErr != nil {
			log.Warn("$connect failed", "route", "$connect", "error", invokeFailure(err, inv))
			writeAWSError(w, http.StatusInternalServerError, "", "Internal server error")
			return
		}
		var resp events.APIGatewayProxyResponse
		if out := bytes.TrimSpace(inv.output); len(out) > 0 && !bytes.Equal(out, []byte("null")) {
			if err := json.Unmarshal(out, &resp); err != nil {
				log.Warn("$connect returned a malformed response", "route", "$connect", "error", err)
				writeAWSError(w, http.StatusInternalServerError, "", "Internal server error")
				return
			}
		}
		if resp.StatusCode != 0 && (resp.StatusCode < 200 || resp.StatusCode > 299) {
			log.Info("connection refused", "route", "$connect", "status", resp.StatusCode)
			refuse(w, resp)
			return
		}
		if p := headerValue(resp, "Sec-WebSocket-Protocol"); p != "" {
			accept.Subprotocols = []string{p}
		}
	}

	// The connection is reachable from the moment $connect answered: register it before the
	// 101 goes out, so that a client can be posted to as soon as its handshake completes.
	// Management API calls wait for ready until the socket exists.
	g.mu.Lock()
	shuttingDown := g.closing
	if !shuttingDown {
		g.conns[c.id] = c
	}
	g.mu.Unlock()

	ws, err := websocket.Accept(w, r, &accept)
	if err != nil {
		// $connect has run (and may have stored the connection): close the books as a drop.
		log.Warn("upgrade failed after $connect", "error", err)
		c.closeOnce.Do(func() {
			c.closeCode, c.closeReason = closeAbnormal, ""
			g.unregister(c)
		})
		c.qmu.Lock()
		c.qshut = true // nothing was queued, and no writer starts: there is no socket
		c.qmu.Unlock()
		close(c.ready)
		c.markClosed() // nobody else closes it
		g.disconnect(c)
		return
	}
	ws.SetReadLimit(-1) // the read loop enforces notify.MaxFrameBytes itself, to choose the close code
	c.ws = ws
	c.touch()
	g.startWriting(c)
	close(c.ready)
	log.Info("connected", "sourceIp", c.sourceIP)
	if shuttingDown {
		g.closeConn(c, closeGoingAway, "Going away")
	}

	idle := time.AfterFunc(g.cfg.IdleTimeout, func() { g.checkIdle(c) })
	maxAge := time.AfterFunc(g.cfg.MaxDuration, func() { g.closeConn(c, closeGoingAway, "Going away") })
	g.readLoop(c)
	idle.Stop()
	maxAge.Stop()
	<-c.closed
	g.disconnect(c)
}

// refuse answers the upgrade with $connect's non-2xx response.
func refuse(w http.ResponseWriter, resp events.APIGatewayProxyResponse) {
	for k, v := range resp.Headers {
		w.Header().Set(k, v)
	}
	for k, vs := range resp.MultiValueHeaders {
		for _, v := range vs {
			w.Header().Add(k, v)
		}
	}
	body := []byte(resp.Body)
	if resp.IsBase64Encoded {
		if b, err := base64.StdEncoding.DecodeString(resp.Body); err == nil {
			body = b
		}
	}
	w.WriteHeader(resp.StatusCode)
	_, _ = w.Write(body)
}

func headerValue(resp events.APIGatewayProxyResponse, name string) string {
	for k, v := range resp.Headers {
		if strings.EqualFold(k, name) {
			return v
		}
	}
	for k, vs := range resp.MultiValueHeaders {
		if strings.EqualFold(k, name) && len(vs) > 0 {
			return vs[0]
		}
	}
	return ""
}

// readLoop reads and dispatches messages, in order, until the socket closes.
func (g *Gateway) readLoop(c *connection) {
	const limit = notify.MaxFrameBytes
	for {
		typ, r, err := c.ws.Reader(context.Background())
		if err != nil {
			g.finishClosed(c, err)
			return
		}
		data, err := io.ReadAll(io.LimitReader(r, int64(limit)+1))
		if err != nil {
			g.finishClosed(c, err)
			return
		}
		// This goroutine stops reading: the writer's Close discards the rest of the message
		// while waiting for the client's close frame.
		switch {
		case typ == websocket.MessageBinary:
			// API Gateway accepts no binary frames from clients (PROTOCOL.md §3).
			g.closeConn(c, closeUnsupported, "Binary frames are not supported")
			return
		case len(data) > limit:
			g.closeConn(c, closeTooBig, "Message too big")
			return
		}
		c.touch()
		g.dispatch(c, data)
	}
}

// finishClosed records a close that the gateway did not start (the client's close frame or a
// dropped connection) and releases the socket.
func (g *Gateway) finishClosed(c *connection, err error) {
	c.closeOnce.Do(func() {
		var ce websocket.CloseError
		if errors.As(err, &ce) {
			c.closeCode, c.closeReason = ce.Code, ce.Reason
		} else {
			c.closeCode, c.closeReason = closeAbnormal, ""
		}
		g.unregister(c)
		g.shutQueue(c)
		_ = c.ws.CloseNow() // the writer's pending writes fail at once; it then exits
	})
}

// closeConn starts closing c with a close frame; c is unreachable through @connections at once.
// The close frame goes out after every frame already queued (a DELETE after POSTs closes after
// them), sent by the connection's writer.
func (g *Gateway) closeConn(c *connection, code websocket.StatusCode, reason string) {
	c.closeOnce.Do(func() {
		c.closeCode, c.closeReason = code, reason
		g.unregister(c)
		g.shutQueue(c)
	})
}

// dropConn closes c's TCP connection without a close frame (a client that does not read):
// queued frames are discarded.
func (g *Gateway) dropConn(c *connection, code websocket.StatusCode, reason string) {
	c.closeOnce.Do(func() {
		c.closeCode, c.closeReason = code, reason
		g.unregister(c)
		g.shutQueue(c)
		go func() {
			if ws := c.socket(context.Background()); ws != nil {
				_ = ws.CloseNow()
			}
		}()
	})
}

// writeFrames is the connection's writer while it has something to write: it sends the queued
// frames in order, each bounded by writeTimeout, and returns when the queue is empty. Once the
// queue is shut it closes the socket after them: with a close frame (closeConn), or at once
// (dropConn, finishClosed, a failed write). At most one runs at a time (connection.writing).
//
// One timer per connection, re-armed for each frame, bounds the writes (rather than a context
// with a deadline per frame, which costs a context, a timer and the websocket library's
// cancellation hook on every frame): when it fires, the socket is closed, which fails the write
// in progress, and the connection dropped.
func (g *Gateway) writeFrames(c *connection) {
	for {
		c.qmu.Lock()
		if len(c.queue) == 0 {
			if !c.qshut {
				c.writing = false
				c.queue = nil // an idle connection keeps no buffer
				c.qmu.Unlock()
				return
			}
			c.qmu.Unlock()
			g.finishWriting(c)
			return
		}
		f := c.queue[0]
		c.queue[0] = outFrame{}
		c.queue = c.queue[1:]
		c.qmu.Unlock()
		if !c.wfailed {
			g.writeFrame(c, f)
		}
	}
}

// writeFrame writes one frame within writeTimeout; a failure or a timeout marks the writer
// failed and closes the socket (the read loop then sees it and records how it closed).
func (g *Gateway) writeFrame(c *connection, f outFrame) {
	if c.wtimer == nil {
		c.wtimer = time.AfterFunc(writeTimeout, func() {
			c.wtimedOut.Store(true)
			g.log.Warn("write timed out: dropping the connection", "connectionId", c.id)
			g.dropConn(c, closeAbnormal, "write timeout")
			// Closed here too: dropConn does nothing once a close has started (a DELETE's,
			// whose close frame waits behind this write).
			_ = c.ws.CloseNow()
		})
	} else {
		c.wtimer.Reset(writeTimeout)
	}
	err := c.ws.Write(context.Background(), f.typ, f.data)
	c.wtimer.Stop()
	switch {
	case c.wtimedOut.Load():
		c.wfailed = true // dropped by the timer, even if this write made it
	case err != nil:
		c.wfailed = true
		_ = c.ws.CloseNow()
	default:
		c.touch()
	}
}

// finishWriting closes the socket once the queue is shut and drained, and marks c closed.
func (g *Gateway) finishWriting(c *connection) {
	defer c.markClosed()
	if c.wfailed || c.closeCode == closeAbnormal {
		_ = c.ws.CloseNow()
		return
	}
	_ = c.ws.Close(c.closeCode, c.closeReason)
}

func (g *Gateway) unregister(c *connection) {
	g.mu.Lock()
	if g.conns[c.id] == c {
		delete(g.conns, c.id)
	}
	g.mu.Unlock()
}

func (g *Gateway) lookup(id string) *connection {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.conns[id]
}

func (g *Gateway) checkIdle(c *connection) {
	select {
	case <-c.closed:
		return
	default:
	}
	idleFor := time.Since(time.Unix(0, c.lastActive.Load()))
	if idleFor >= g.cfg.IdleTimeout {
		g.closeConn(c, closeGoingAway, "Going away")
		return
	}
	// The re-armed timer returns at once once the connection is closed.
	time.AfterFunc(g.cfg.IdleTimeout-idleFor, func() { g.checkIdle(c) })
}

// dispatch routes one message and invokes its function.
func (g *Gateway) dispatch(c *connection, data []byte) {
	routeKey := "$default"
	if key, ok := g.selectRoute(data); ok {
		routeKey = key
	}
	messageID := newID()
	name, ok := g.cfg.Routes[routeKey]
	if !ok {
		g.log.Info("no route for message", "connectionId", c.id, "route", routeKey)
		g.sendGatewayMessage(c, "Forbidden", messageID)
		return
	}
	now := time.Now()
	ev := g.baseEvent(c, routeKey, "MESSAGE", now)
	ev.RequestContext.MessageID = messageID
	ev.Body = string(data)
	inv, err := g.invoke(context.Background(), name, mustJSON(ev))
	if err != nil || inv.fnErr != nil {
		g.log.Warn("integration failed", "connectionId", c.id, "route", routeKey, "error", invokeFailure(err, inv))
		g.sendGatewayMessage(c, "Internal server error", ev.RequestContext.RequestID)
	}
}

// invokeFailure describes a failed invocation for the log: the gateway's
// error, or the function's errorType and errorMessage.
func invokeFailure(err error, inv invocation) string {
	if err != nil {
		return err.Error()
	}
	return inv.fnErr.Type + ": " + inv.fnErr.Message
}

// selectRoute evaluates $request.body.PATH on a JSON text message. ok is false when the message
// is not JSON, the field is missing or not a string, or no custom route has that key.
func (g *Gateway) selectRoute(data []byte) (string, bool) {
	if g.selectKey == nil {
		return "", false
	}
	var v any
	if err := json.Unmarshal(data, &v); err != nil {
		return "", false
	}
	for _, field := range g.selectKey {
		obj, ok := v.(map[string]any)
		if !ok {
			return "", false
		}
		v = obj[field]
	}
	key, ok := v.(string)
	if !ok || key == "" || strings.HasPrefix(key, "$") {
		return "", false
	}
	if _, exists := g.cfg.Routes[key]; !exists {
		return "", false
	}
	return key, true
}

// sendGatewayMessage sends the frame API Gateway itself sends when a message cannot be handled.
func (g *Gateway) sendGatewayMessage(c *connection, message, requestID string) {
	frame := mustJSON(map[string]string{"message": message, "connectionId": c.id, "requestId": requestID})
	_ = g.send(c, frame)
}

// send queues one frame for c and returns without waiting for the client: valid UTF-8 goes out
// as a text frame, anything else as a binary frame (never an invalid text frame). It fails with
// errGone once c is closing, and with errQueueFull when c's send queue is full: the client does
// not keep up, and the connection is then dropped.
//
// On a full queue the TCP connection is dropped without a close frame, and $disconnect reports
// 1006 "send queue full": a close frame would wait behind the frames the client is not reading,
// so the client could not see it anyway; it sees the connection drop (1006), which is also what
// an API Gateway client whose buffer overflows reports. The POST that found the queue full, and
// every later one, answers 410 GoneException.
func (g *Gateway) send(c *connection, data []byte) error {
	typ := websocket.MessageText
	if !utf8.Valid(data) {
		typ = websocket.MessageBinary
	}
	err := g.enqueue(c, typ, data)
	if errors.Is(err, errQueueFull) {
		g.log.Warn("send queue full: dropping the connection", "connectionId", c.id, "queue", c.queueCap)
		g.dropConn(c, closeAbnormal, "send queue full")
	}
	return err
}

// disconnect invokes $disconnect, once, after the socket closed.
func (g *Gateway) disconnect(c *connection) {
	g.log.Info("disconnected", "connectionId", c.id, "code", int(c.closeCode), "reason", c.closeReason)
	name, ok := g.cfg.Routes["$disconnect"]
	if !ok {
		return
	}
	ev := g.baseEvent(c, "$disconnect", "DISCONNECT", time.Now())
	ev.Headers, ev.MultiValueHeaders = c.headers, c.mvHeaders
	ev.RequestContext.DisconnectStatusCode = int64(c.closeCode)
	reason := c.closeReason
	ev.RequestContext.DisconnectReason = &reason
	if _, err := g.invoke(context.Background(), name, mustJSON(ev)); err != nil {
		g.log.Warn("$disconnect failed", "connectionId", c.id, "route", "$disconnect", "error", err)
	}
}

// baseEvent is the part every WebSocket event shares.
func (g *Gateway) baseEvent(c *connection, routeKey, eventType string, now time.Time) events.APIGatewayWebsocketProxyRequest {
	requestID := newID()
	return events.APIGatewayWebsocketProxyRequest{
		RequestContext: events.APIGatewayWebsocketProxyRequestContext{
			RouteKey:          routeKey,
			EventType:         eventType,
			ExtendedRequestID: requestID,
			RequestID:         requestID,
			RequestTime:       now.UTC().Format(requestTimeLayout),
			RequestTimeEpoch:  now.UnixMilli(),
			MessageDirection:  "IN",
			Stage:             Stage,
			APIID:             APIID,
			DomainName:        g.Addr(),
			ConnectionID:      c.id,
			ConnectedAt:       c.connectedAt.UnixMilli(),
			Identity: events.APIGatewayRequestIdentity{
				SourceIP:  c.sourceIP,
				UserAgent: c.userAgent,
			},
		},
	}
}

func (g *Gateway) connectEvent(c *connection, r *http.Request, now time.Time) events.APIGatewayWebsocketProxyRequest {
	ev := g.baseEvent(c, "$connect", "CONNECT", now)
	ev.Headers, ev.MultiValueHeaders = c.headers, c.mvHeaders
	q := r.URL.Query()
	if len(q) > 0 {
		ev.QueryStringParameters = make(map[string]string, len(q))
		ev.MultiValueQueryStringParameters = make(map[string][]string, len(q))
		for k, vs := range q {
			ev.QueryStringParameters[k] = vs[len(vs)-1]
			ev.MultiValueQueryStringParameters[k] = vs
		}
	}
	return ev
}

// hopHeaders are the handshake headers API Gateway does not pass to the integration.
var hopHeaders = map[string]bool{"Connection": true, "Upgrade": true, "Content-Length": true}

// eventHeaders builds headers and multiValueHeaders as API Gateway does: the request's headers
// (single-valued: the last value), Host, and the X-Forwarded-* headers of its load balancer.
func eventHeaders(r *http.Request, ip string) (map[string]string, map[string][]string) {
	single := make(map[string]string, len(r.Header)+4)
	multi := make(map[string][]string, len(r.Header)+4)
	add := func(k string, vs []string) {
		if len(vs) == 0 {
			return
		}
		single[k] = vs[len(vs)-1]
		multi[k] = append([]string(nil), vs...)
	}
	add("Host", []string{r.Host})
	for k, vs := range r.Header {
		if !hopHeaders[k] {
			add(k, vs)
		}
	}
	port := "80"
	if _, p, err := net.SplitHostPort(r.Host); err == nil {
		port = p
	}
	xff := ip
	if prior := r.Header.Get("X-Forwarded-For"); prior != "" {
		xff = prior + ", " + ip
	}
	add("X-Forwarded-For", []string{xff})
	add("X-Forwarded-Port", []string{port})
	add("X-Forwarded-Proto", []string{"http"})
	if _, ok := single["X-Amzn-Trace-Id"]; !ok {
		add("X-Amzn-Trace-Id", []string{"Root=1-" + strconv.FormatInt(time.Now().Unix(), 16) + "-" + strings.ReplaceAll(uuid.NewString(), "-", "")[:24]})
	}
	return single, multi
}

func sourceIP(r *http.Request) string {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		return r.RemoteAddr
	}
	return host
}

func mustJSON(v any) []byte {
	b, err := json.Marshal(v)
	if err != nil {
		panic(err) // events and maps of strings always marshal
	}
	return b
}

package localgw

import (
	"bytes"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"slices"
	"sync"
	"time"

	"github.com/valyala/fasthttp"
	"github.com/valyala/fasthttp/fasthttpadaptor"
)

// sniffTimeout bounds the wait for a new connection's first request line.
const sniffTimeout = 10 * time.Second

// maxRequestLine is how much of a connection's first bytes frontDoor reads at most to find its
// request line; a longer line goes to net/http, which refuses it.
const maxRequestLine = 8 << 10

// frontDoor splits the gateway's listener by each TCP connection's first request line. A
// connection that starts with a Management API request (/@connections/{id}, also under one stage
// segment) is a publisher's
// keep-alive connection: fasthttp serves it, at a fraction of net/http's cost per request
// (the fan-out's hot path). Every other connection (WebSocket upgrades, the Lambda API, the
// demo page) goes to net/http, whose handler serves every path, the Management API included.
// The bytes read to decide are replayed to whichever server gets the connection.
type frontDoor struct {
	ln   net.Listener
	fast *connListener // Management API connections
	web  *connListener // all others

	mu       sync.Mutex
	sniffing map[net.Conn]struct{} // connections that have not sent a request line yet
	closed   bool
}

func newFrontDoor(ln net.Listener) *frontDoor {
	return &frontDoor{
		ln:       ln,
		fast:     newConnListener(ln.Addr()),
		web:      newConnListener(ln.Addr()),
		sniffing: map[net.Conn]struct{}{},
	}
}

// run accepts connections until the listener is closed. Other accept errors (out of file
// descriptors, say) are logged and retried with a growing pause, as net/http's Serve does.
func (d *frontDoor) run(log *slog.Logger) {
	var pause time.Duration
	for {
		c, err := d.ln.Accept()
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				d.close()
				return
			}
			pause = min(max(2*pause, 5*time.Millisecond), time.Second)
			log.Warn("accept failed: retrying", "error", err, "pause", pause)
			time.Sleep(pause)
			continue
		}
		pause = 0
		if !d.track(c) {
			_ = c.Close()
			return
		}
		go d.route(c)
	}
}

// route reads c's first request line and hands c to the server for it.
func (d *frontDoor) route(c net.Conn) {
	buf := make([]byte, 0, 512)
	_ = c.SetReadDeadline(time.Now().Add(sniffTimeout))
	for bytes.IndexByte(buf, '\n') < 0 && len(buf) < maxRequestLine {
		buf = slices.Grow(buf, 512)
		n, err := c.Read(buf[len(buf):cap(buf)])
		buf = buf[:len(buf)+n]
		if err != nil {
			break
		}
	}
	_ = c.SetReadDeadline(time.Time{})
	if !d.untrack(c) || len(buf) == 0 {
		_ = c.Close() // shut down, or closed (or silent) before a request
		return
	}
	pc := &prefixConn{Conn: c, prefix: buf}
	if isManagementRequest(buf) {
		d.fast.deliver(pc)
	} else {
		d.web.deliver(pc)
	}
}

// isManagementRequest reports whether a request line is a Management API request:
// METHOD /@connections/{id} (or under one stage segment) HTTP/1.x.
func isManagementRequest(head []byte) bool {
	line, _, _ := bytes.Cut(head, []byte("\n"))
	_, rest, ok := bytes.Cut(line, []byte(" "))
	if !ok {
		return false
	}
	target, _, ok := bytes.Cut(rest, []byte(" "))
	if !ok {
		return false
	}
	raw, _, _ := bytes.Cut(target, []byte("?"))
	path, err := url.PathUnescape(string(raw))
	if err != nil {
		return false
	}
	_, ok = connectionsPath(path)
	return ok
}

func (d *frontDoor) track(c net.Conn) bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.closed {
		return false
	}
	d.sniffing[c] = struct{}{}
	return true
}

func (d *frontDoor) untrack(c net.Conn) bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	delete(d.sniffing, c)
	return !d.closed
}

// close stops accepting and closes the connections that have sent nothing yet (SDK clients
// leave spare ones behind). Each server's Shutdown closes its own listener.
func (d *frontDoor) close() {
	d.mu.Lock()
	if d.closed {
		d.mu.Unlock()
		return
	}
	d.closed = true
	for c := range d.sniffing {
		_ = c.Close()
	}
	d.mu.Unlock()
	_ = d.ln.Close()
}

// newFastServer is the fasthttp server of Management API connections. A request for another
// path on such a connection (an SDK client reusing it) goes to the net/http handler through
// fasthttpadaptor; a WebSocket upgrade cannot, and is refused.
func (g *Gateway) newFastServer() *fasthttp.Server {
	web := fasthttpadaptor.NewFastHTTPHandler(g)
	g.fastConns = map[net.Conn]struct{}{}
	return &fasthttp.Server{
		Handler: func(ctx *fasthttp.RequestCtx) {
			if id, ok := connectionsPath(string(ctx.Path())); ok {
				g.serveConnectionsFast(ctx, id)
				return
			}
			if bytes.EqualFold(ctx.Request.Header.Peek("Upgrade"), []byte("websocket")) {
				ctx.Error("open the WebSocket on a connection of its own", http.StatusBadRequest)
				return
			}
			web(ctx)
		},
		ErrorHandler: func(ctx *fasthttp.RequestCtx, err error) {
			if errors.Is(err, fasthttp.ErrBodyTooLarge) {
				writeFast(ctx, answerTooLarge) // then the connection is closed, as net/http does past 8 MB
				return
			}
			var small *fasthttp.ErrSmallBuffer
			if errors.As(err, &small) {
				ctx.Error("Request header too large", http.StatusRequestHeaderFieldsTooLarge)
				return
			}
			ctx.Error("Malformed request", http.StatusBadRequest)
		},
		ConnState: func(c net.Conn, state fasthttp.ConnState) {
			g.fastMu.Lock()
			defer g.fastMu.Unlock()
			if state == fasthttp.StateNew {
				g.fastConns[c] = struct{}{}
			} else if state == fasthttp.StateClosed || state == fasthttp.StateHijacked {
				delete(g.fastConns, c)
			}
		},
		NoDefaultServerHeader: true,
		NoDefaultContentType:  true,
		// Bodies up to 8 MB are read and answered 413 over a frame, as net/http's path drains
		// that much; a larger one is answered 413 by ErrorHandler, and the connection closed.
		MaxRequestBodySize: 8 << 20,
		ReadBufferSize:     64 << 10, // request headers as large as an SDK may send
		CloseOnShutdown:    true,
		Logger:             fastLogger{g},
	}
}

// closeFastConns closes every connection of the fasthttp server, busy or idle.
func (g *Gateway) closeFastConns() {
	g.fastMu.Lock()
	defer g.fastMu.Unlock()
	for c := range g.fastConns {
		_ = c.Close()
	}
}

// fastLogger passes fasthttp's messages to the gateway's log.
type fastLogger struct{ g *Gateway }

func (l fastLogger) Printf(format string, args ...any) {
	l.g.log.Warn("management API server", "message", fmt.Sprintf(format, args...))
}

// prefixConn is a connection whose first bytes were already read: Read returns them first.
type prefixConn struct {
	net.Conn
	prefix []byte
}

func (c *prefixConn) Read(p []byte) (int, error) {
	if len(c.prefix) > 0 {
		n := copy(p, c.prefix)
		c.prefix = c.prefix[n:]
		return n, nil
	}
	return c.Conn.Read(p)
}

// CloseWrite half-closes the connection, as net/http does after refusing a request.
func (c *prefixConn) CloseWrite() error {
	if cw, ok := c.Conn.(interface{ CloseWrite() error }); ok {
		return cw.CloseWrite()
	}
	return nil
}

// connListener is a net.Listener fed by frontDoor.
type connListener struct {
	addr   net.Addr
	conns  chan net.Conn
	done   chan struct{}
	closer sync.Once
}

func newConnListener(addr net.Addr) *connListener {
	return &connListener{addr: addr, conns: make(chan net.Conn), done: make(chan struct{})}
}

// deliver hands c to the listener's server, or closes it once the listener is closed.
func (l *connListener) deliver(c net.Conn) {
	select {
	case l.conns <- c:
	case <-l.done:
		_ = c.Close()
	}
}

func (l *connListener) Accept() (net.Conn, error) {
	select {
	case c := <-l.conns:
		return c, nil
	case <-l.done:
		return nil, net.ErrClosed
	}
}

func (l *connListener) Close() error {
	l.closer.Do(func() { close(l.done) })
	return nil
}

func (l *connListener) Addr() net.Addr { return l.addr }

package localgw

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"sync"
	"time"
)

// maxLogTail is how much of an invocation's log X-Amz-Log-Result carries: the last 4 KB.
const maxLogTail = 4096

// logTail collects one invocation's log lines, keeping the last maxLogTail bytes.
type logTail struct {
	mu   sync.Mutex
	data []byte
}

func (t *logTail) write(p []byte) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.data = append(t.data, p...)
	if len(t.data) > 2*maxLogTail {
		t.data = append(t.data[:0:0], t.data[len(t.data)-maxLogTail:]...)
	}
}

func (t *logTail) printf(format string, args ...any) { t.write(fmt.Appendf(nil, format, args...)) }

// bytes returns the last maxLogTail bytes written.
func (t *logTail) bytes() []byte {
	t.mu.Lock()
	defer t.mu.Unlock()
	b := t.data
	if len(b) > maxLogTail {
		b = b[len(b)-maxLogTail:]
	}
	return bytes.Clone(b)
}

type logTailKey struct{}

// tails maps the AwsRequestID of each invocation in progress to its log tail. Request ids are
// random UUIDs, so one map serves every Gateway.
var tails sync.Map // string -> *logTail

func tailFromContext(ctx context.Context) *logTail {
	if ctx == nil {
		return nil
	}
	t, _ := ctx.Value(logTailKey{}).(*logTail)
	return t
}

// TailHandler wraps next so that each record logged during an invocation is also kept, as a
// JSON line (Lambda's JSON log format), for that invocation's X-Amz-Log-Result (the Invoke API's
// X-Amz-Log-Type: Tail). A record belongs to an invocation when it is logged with the
// invocation's context (InfoContext(ctx, ...)) or carries the invocation's AwsRequestID as a
// top-level "requestId" attribute (log.With("requestId", lc.AwsRequestID)). Records are passed
// on to next unchanged.
//
// The gateway wraps its own Config.Logger with it; give the functions a logger built on the
// same wrapped handler (slog.New(localgw.TailHandler(h))) so that their lines reach the tail.
func TailHandler(next slog.Handler) slog.Handler {
	if h, ok := next.(*tailHandler); ok {
		return h
	}
	return &tailHandler{next: next}
}

type tailHandler struct {
	next      slog.Handler
	requestID string   // a top-level "requestId" attribute given through WithAttrs
	ops       []tailOp // the WithAttrs and WithGroup calls, to format the kept line the same way
	grouped   bool     // a WithGroup came before: later attributes are not top level
}

type tailOp struct {
	group string
	attrs []slog.Attr
}

func (h *tailHandler) Enabled(ctx context.Context, l slog.Level) bool { return h.next.Enabled(ctx, l) }

func (h *tailHandler) Handle(ctx context.Context, r slog.Record) error {
	t := tailFromContext(ctx)
	if t == nil {
		id := h.requestID
		if id == "" {
			r.Attrs(func(a slog.Attr) bool {
				if a.Key == "requestId" && a.Value.Kind() == slog.KindString {
					id = a.Value.String()
					return false
				}
				return true
			})
		}
		if id != "" {
			if v, ok := tails.Load(id); ok {
				t = v.(*logTail)
			}
		}
	}
	if t != nil {
		var b bytes.Buffer
		var jh slog.Handler = slog.NewJSONHandler(&b, &slog.HandlerOptions{Level: slog.LevelDebug})
		for _, op := range h.ops {
			if op.group != "" {
				jh = jh.WithGroup(op.group)
			} else {
				jh = jh.WithAttrs(op.attrs)
			}
		}
		if jh.Handle(ctx, r.Clone()) == nil {
			t.write(b.Bytes())
		}
	}
	return h.next.Handle(ctx, r)
}

func (h *tailHandler) WithAttrs(attrs []slog.Attr) slog.Handler {
	c := *h
	c.next = h.next.WithAttrs(attrs)
	c.ops = append(h.ops[:len(h.ops):len(h.ops)], tailOp{attrs: attrs})
	if !h.grouped {
		for _, a := range attrs {
			if a.Key == "requestId" && a.Value.Kind() == slog.KindString {
				c.requestID = a.Value.String()
			}
		}
	}
	return &c
}

func (h *tailHandler) WithGroup(name string) slog.Handler {
	if name == "" {
		return h
	}
	c := *h
	c.next = h.next.WithGroup(name)
	c.ops = append(h.ops[:len(h.ops):len(h.ops)], tailOp{group: name})
	c.grouped = true
	return &c
}

// startTail opens the log tail of one invocation, with Lambda's START line.
func startTail(ctx context.Context, requestID string) (context.Context, *logTail) {
	t := &logTail{}
	t.printf("START RequestId: %s Version: $LATEST\n", requestID)
	tails.Store(requestID, t)
	return context.WithValue(ctx, logTailKey{}, t), t
}

// endTail closes it with Lambda's END and REPORT lines.
func endTail(t *logTail, requestID string, d time.Duration, memoryMB int32) {
	tails.Delete(requestID)
	ms := float64(d.Microseconds()) / 1000
	t.printf("END RequestId: %s\n", requestID)
	t.printf("REPORT RequestId: %s\tDuration: %.2f ms\tBilled Duration: %d ms\tMemory Size: %d MB\tMax Memory Used: %d MB\t\n",
		requestID, ms, int64(ms)+1, memoryMB, memoryMB/4+1)
}

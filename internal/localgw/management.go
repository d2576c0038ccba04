package localgw

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"time"

	"github.com/google/uuid"
	"github.com/valyala/fasthttp"

	"github.com/workorders/notify/internal/notify"
)

// managementTime is the layout of connectedAt and lastActiveAt (ISO 8601, as the API sends).
const managementTime = "2006-01-02T15:04:05.000Z"

// connectionInfo is GetConnection's answer.
type connectionInfo struct {
	ConnectedAt  string             `json:"connectedAt"`
	Identity     connectionIdentity `json:"identity"`
	LastActiveAt string             `json:"lastActiveAt"`
}

type connectionIdentity struct {
	SourceIP  string `json:"sourceIp"`
	UserAgent string `json:"userAgent"`
}

// answer is a Management API answer, whichever HTTP server carries it: a JSON body (when
// not empty) and, for errors, the AWS error code in x-amzn-ErrorType.
type answer struct {
	status    int
	errorType string
	body      []byte
}

var (
	answerOK      = answer{status: http.StatusOK}
	answerDeleted = answer{status: http.StatusNoContent}
	// answerGone's body is encoded once: a fan-out to stale connections answers many.
	answerGone     = awsError(http.StatusGone, "GoneException", "Connection is gone")
	answerTooLarge = awsError(http.StatusRequestEntityTooLarge, "PayloadTooLargeException", "Request payload too large")
	answerBadBody  = awsError(http.StatusBadRequest, "BadRequestException", "Could not read request body")
	answerNoRoute  = awsError(http.StatusForbidden, "ForbiddenException", "Missing Authentication Token")
)

// awsError is an error answer as AWS's REST-JSON services give it: the code in
// x-amzn-ErrorType and {"message": ...} in the body.
func awsError(status int, code, message string) answer {
	return answer{status: status, errorType: code, body: mustJSON(map[string]string{"message": message})}
}

// manage is the Management API on /@connections/{id}: POST (data is the frame), GET and
// DELETE. Any credentials are accepted. ctx bounds the wait for a socket whose upgrade is
// still being answered.
func (g *Gateway) manage(ctx context.Context, method, id string, data []byte) answer {
	switch method {
	case http.MethodPost:
		if len(data) > notify.MaxFrameBytes {
			return answerTooLarge
		}
		c := g.lookup(id)
		if c == nil || c.socket(ctx) == nil {
			return answerGone
		}
		if err := g.send(c, data); err != nil {
			return answerGone
		}
		return answerOK
	case http.MethodGet:
		c := g.lookup(id)
		if c == nil || c.socket(ctx) == nil {
			return answerGone
		}
		body, err := json.Marshal(connectionInfo{
			ConnectedAt:  c.connectedAt.UTC().Format(managementTime),
			Identity:     connectionIdentity{SourceIP: c.sourceIP, UserAgent: c.userAgent},
			LastActiveAt: time.Unix(0, c.lastActive.Load()).UTC().Format(managementTime),
		})
		if err != nil {
			return awsError(http.StatusInternalServerError, "", "Internal server error")
		}
		return answer{status: http.StatusOK, body: body}
	case http.MethodDelete:
		c := g.lookup(id)
		if c == nil || c.socket(ctx) == nil {
			return answerGone
		}
		g.closeConn(c, closeNormal, "Connection Closed Normally")
		return answerDeleted
	default:
		return answerNoRoute
	}
}

// serveConnections is the Management API on net/http, for connections that sent another
// request first (see frontDoor).
func (g *Gateway) serveConnections(w http.ResponseWriter, r *http.Request, id string) {
	if g.cfg.PostDelay > 0 {
		t := time.NewTimer(g.cfg.PostDelay)
		select {
		case <-t.C:
		case <-r.Context().Done():
			t.Stop()
			return
		}
	}
	var data []byte
	var err error
	if r.Method == http.MethodPost {
		if data, err = readFrame(r); err == nil && len(data) > notify.MaxFrameBytes {
			// Drain a reasonable rest so the client's connection stays usable.
			_, _ = io.CopyN(io.Discard, r.Body, 8<<20)
		}
	}
	a := answerBadBody
	if err == nil {
		a = g.manage(r.Context(), r.Method, id, data)
	}
	h := w.Header()
	h[requestIDHeader] = []string{uuid.NewString()}
	if len(a.body) > 0 {
		h["Content-Type"] = jsonContentType
	}
	if a.errorType != "" {
		h["X-Amzn-Errortype"] = []string{a.errorType}
	}
	w.WriteHeader(a.status)
	_, _ = w.Write(a.body)
}

// serveConnectionsFast is the Management API on fasthttp: the hot path, a publisher's
// keep-alive connections (see frontDoor).
func (g *Gateway) serveConnectionsFast(ctx *fasthttp.RequestCtx, id string) {
	if g.cfg.PostDelay > 0 {
		t := time.NewTimer(g.cfg.PostDelay)
		select {
		case <-t.C:
		case <-ctx.Done():
			// The server is shutting down, after every socket closed: the connection is gone.
			t.Stop()
			writeFast(ctx, answerGone)
			ctx.SetConnectionClose()
			return
		}
	}
	method := string(ctx.Method())
	var data []byte
	if method == http.MethodPost {
		// fasthttp reuses its buffer once the handler returns; the frame is queued.
		data = append([]byte(nil), ctx.PostBody()...)
	}
	writeFast(ctx, g.manage(ctx, method, id, data))
}

// writeFast writes a Management API answer on fasthttp.
func writeFast(ctx *fasthttp.RequestCtx, a answer) {
	h := &ctx.Response.Header
	h.Set(requestIDHeader, uuid.NewString())
	if len(a.body) > 0 {
		h.SetContentType("application/json")
	}
	if a.errorType != "" {
		h.Set("X-Amzn-Errortype", a.errorType)
	}
	ctx.SetStatusCode(a.status)
	ctx.SetBody(a.body)
}

// requestIDHeader is x-amzn-RequestId as net/http writes it: set directly
// in canonical form, the header costs no canonicalization per request.
const requestIDHeader = "X-Amzn-Requestid"

// readFrame reads a POST's frame: into a buffer of the announced length when
// there is one within the limit (one allocation, the frame queued for the
// socket), else up to notify.MaxFrameBytes+1 bytes, enough to tell a frame
// too large.
func readFrame(r *http.Request) ([]byte, error) {
	if n := r.ContentLength; n >= 0 && n <= notify.MaxFrameBytes {
		body := make([]byte, n)
		if _, err := io.ReadFull(r.Body, body); err != nil {
			return nil, err
		}
		return body, nil
	}
	return io.ReadAll(io.LimitReader(r.Body, notify.MaxFrameBytes+1))
}

var jsonContentType = []string{"application/json"}

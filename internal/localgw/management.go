package localgw

import (
	"io"
	"net/http"
	"time"

	"github.com/google/uuid"

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

// serveConnections is the Management API: POST, GET and DELETE /@connections/{id}.
// Any credentials are accepted.
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
	w.Header()[requestIDHeader] = []string{uuid.NewString()}
	switch r.Method {
	case http.MethodPost:
		body, err := readFrame(r)
		if err != nil {
			writeAWSError(w, http.StatusBadRequest, "BadRequestException", "Could not read request body")
			return
		}
		if len(body) > notify.MaxFrameBytes {
			// Drain a reasonable rest so the client's connection stays usable.
			_, _ = io.CopyN(io.Discard, r.Body, 8<<20)
			writeAWSError(w, http.StatusRequestEntityTooLarge, "PayloadTooLargeException", "Request payload too large")
			return
		}
		c := g.lookup(id)
		if c == nil || c.socket(r.Context()) == nil {
			gone(w)
			return
		}
		if err := g.send(c, body); err != nil {
			gone(w)
			return
		}
		w.WriteHeader(http.StatusOK)
	case http.MethodGet:
		c := g.lookup(id)
		if c == nil || c.socket(r.Context()) == nil {
			gone(w)
			return
		}
		writeJSON(w, http.StatusOK, connectionInfo{
			ConnectedAt:  c.connectedAt.UTC().Format(managementTime),
			Identity:     connectionIdentity{SourceIP: c.sourceIP, UserAgent: c.userAgent},
			LastActiveAt: time.Unix(0, c.lastActive.Load()).UTC().Format(managementTime),
		}, "")
	case http.MethodDelete:
		c := g.lookup(id)
		if c == nil || c.socket(r.Context()) == nil {
			gone(w)
			return
		}
		g.closeConn(c, closeNormal, "Connection Closed Normally")
		w.WriteHeader(http.StatusNoContent)
	default:
		writeAWSError(w, http.StatusForbidden, "ForbiddenException", "Missing Authentication Token")
	}
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

// goneBody is the body of every 410 (writeAWSError's), encoded once: a
// fan-out to stale connections answers many.
var goneBody = mustJSON(map[string]string{"message": "Connection is gone"})

var (
	jsonContentType = []string{"application/json"}
	goneErrorType   = []string{"GoneException"}
)

// gone answers 410 GoneException as writeAWSError does.
func gone(w http.ResponseWriter) {
	h := w.Header()
	h["Content-Type"] = jsonContentType
	h["X-Amzn-Errortype"] = goneErrorType
	w.WriteHeader(http.StatusGone)
	_, _ = w.Write(goneBody)
}

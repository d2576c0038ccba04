package localgw

import (
	"io"
	"net/http"
	"time"

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
	w.Header().Set("x-amzn-RequestId", newUUID())
	switch r.Method {
	case http.MethodPost:
		body, err := io.ReadAll(io.LimitReader(r.Body, notify.MaxFrameBytes+1))
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

func gone(w http.ResponseWriter) {
	writeAWSError(w, http.StatusGone, "GoneException", "Connection is gone")
}

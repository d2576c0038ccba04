package notify

import (
	"encoding/json"
	"time"
)

// Connection is one open WebSocket: its API Gateway connection id, the user
// its token named and the groups the token listed.
type Connection struct {
	ID     string
	UserID string
	// Groups may list a group twice; stores keep each group once.
	Groups []string
	// ConnectedAt is when the gateway accepted the socket; stores require
	// it (Service.Connect sets it to now when the event has none).
	ConnectedAt time.Time
	// ExpiresAt is when the store may forget the connection even if no
	// $disconnect came (API Gateway closes every socket after 2 hours).
	// Stores require it and have no default: Service.Connect sets it
	// (ConnectionTTL, DefaultConnectionTTL when zero).
	ExpiresAt time.Time
	// TokenExpiresAt is the exp of the token the connection opened with
	// (zero: none). A connection lives no longer than its token: past it
	// (plus TokenLeeway) frames are refused and publishes close it.
	TokenExpiresAt time.Time
}

// TokenLeeway is the clock skew allowed on a token's times (docs/PROTOCOL.md §2).
const TokenLeeway = 60 * time.Second

// TokenExpired reports whether c's token has expired at now, leeway
// included.
func (c Connection) TokenExpired(now time.Time) bool {
	return !c.TokenExpiresAt.IsZero() && now.After(c.TokenExpiresAt.Add(TokenLeeway))
}

// Target says who a notification is for. A connection reached by several
// targets receives it once.
type Target struct {
	Users     []string
	Groups    []string
	Broadcast bool
}

// Notification is what a browser receives, inside a `notification` frame.
type Notification struct {
	ID        string          `json:"id"`
	Type      string          `json:"type"`
	Title     string          `json:"title,omitempty"`
	Body      string          `json:"body,omitempty"`
	Data      json.RawMessage `json:"data,omitempty"`
	CreatedAt Timestamp       `json:"createdAt"`
}

// Timestamp is a time that marshals as UTC RFC 3339 with milliseconds,
// e.g. "2026-11-25T10:00:00.000Z".
type Timestamp struct{ time.Time }

// TimestampLayout is the wire layout of a Timestamp.
const TimestampLayout = "2006-01-02T15:04:05.000Z"

// MarshalJSON formats t in TimestampLayout.
func (t Timestamp) MarshalJSON() ([]byte, error) {
	b := make([]byte, 0, len(TimestampLayout)+2)
	b = append(b, '"')
	b = t.UTC().AppendFormat(b, TimestampLayout)
	return append(b, '"'), nil
}

// UnmarshalJSON parses an RFC 3339 time.
func (t *Timestamp) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		return err
	}
	v, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		return err
	}
	t.Time = v
	return nil
}

// PublishResult is PublishFunction's answer (docs/PROTOCOL.md §4).
type PublishResult struct {
	ID           string   `json:"id"`
	Connections  int      `json:"connections"`
	Delivered    int      `json:"delivered"`
	Gone         int      `json:"gone"`
	Failed       int      `json:"failed"`
	OfflineUsers []string `json:"offlineUsers"`
	Duplicate    bool     `json:"duplicate"`
	// StoreLatency is how long the inbox write took (zero when there was
	// none: a duplicate, or a failure before it). Not part of the answer:
	// the handler reports it as a metric (docs/PROTOCOL.md §9). Publish sets
	// it on a failed result too once the write was attempted.
	StoreLatency time.Duration `json:"-"`
}

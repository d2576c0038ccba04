package notify

import (
	"encoding/json"
	"maps"
	"slices"
	"unicode/utf8"

	"github.com/oklog/ulid/v2"
)

// Actions a client may send (docs/PROTOCOL.md §3).
const (
	ActionPing = "ping"
	ActionSync = "sync"
	ActionRead = "read"
)

// Error frame codes (docs/PROTOCOL.md §3).
const (
	FrameBadRequest    = "bad_request"
	FrameUnknownAction = "unknown_action"
	FrameInternal      = "internal"
	FrameTokenExpired  = "token_expired"
)

// Codes of a `disconnected` frame: why the server closes the socket
// (docs/PROTOCOL.md §3).
const (
	// DisconnectRevoked: a disconnect request; reconnect with a fresh token.
	DisconnectRevoked = "revoked"
	// DisconnectTooManyConnections: the user opened more sockets than
	// allowed; another tab took this one's place; do not reconnect.
	DisconnectTooManyConnections = "too_many_connections"
)

// ErrTokenExpired answers a frame from a connection whose token has
// expired; the connection is closed after it.
var ErrTokenExpired = &Error{Code: ETOKENEXPIRED, Message: "token expired: reconnect with a fresh token"}

// Frame limits.
const (
	MaxRefLength     = 64
	DefaultSyncLimit = 50
	MaxSyncLimit     = 100
	MaxReadIDs       = 100
	// MaxFrameBytes is API Gateway's message limit: a larger message closes
	// the socket with 1009.
	MaxFrameBytes = 128 * 1024
)

// ClientFrame is a decoded client → server frame.
type ClientFrame struct {
	Action string
	// Ref is echoed in the answer to the sender.
	Ref  string
	Sync SyncRequest
	Read ReadRequest
}

// SyncRequest is the body of a `sync` frame.
type SyncRequest struct {
	After  string
	Cursor string
	Limit  int
}

// ReadRequest is the body of a `read` frame.
type ReadRequest struct {
	IDs []string
	All bool
}

// DecodeClientFrame parses a client frame. A frame that is not a JSON object,
// lacks a string `action`, or has a field of the wrong type or out of range is
// an EINVALID error naming the field; an action the server does not know is
// EUNKNOWNACTION. The returned frame carries Ref whenever it could be read,
// even with an error, so that the error frame can echo it. Unknown fields are
// ignored.
func DecodeClientFrame(body []byte) (ClientFrame, error) {
	var f ClientFrame
	if firstByte(body) != '{' {
		if !json.Valid(body) {
			return f, invalidf("frame is not JSON")
		}
		return f, invalidf("frame must be a JSON object")
	}
	var fields map[string]json.RawMessage
	if err := json.Unmarshal(body, &fields); err != nil {
		return f, invalidf("frame is not valid JSON: %v", err)
	}
	dupErr := checkRepeatedKeys(body, "frame")
	if raw, ok := fields["ref"]; ok && !isNull(raw) {
		if firstByte(raw) != '"' || json.Unmarshal(raw, &f.Ref) != nil {
			return f, invalidf("ref: must be a string")
		}
		if utf8.RuneCountInString(f.Ref) > MaxRefLength {
			f.Ref = ""
			return f, invalidf("ref: at most %d characters", MaxRefLength)
		}
	}
	if dupErr != nil {
		return f, dupErr
	}
	raw, ok := fields["action"]
	if !ok || isNull(raw) {
		return f, invalidf("action: required")
	}
	if firstByte(raw) != '"' || json.Unmarshal(raw, &f.Action) != nil {
		return f, invalidf("action: must be a string")
	}
	switch f.Action {
	case ActionPing:
		return f, nil
	case ActionSync:
		var err error
		f.Sync, err = decodeSync(fields)
		return f, err
	case ActionRead:
		var err error
		f.Read, err = decodeRead(fields)
		return f, err
	default:
		return f, Errorf(EUNKNOWNACTION, "unknown action %q (known: ping, sync, read)", truncate(f.Action, 64))
	}
}

func decodeSync(fields map[string]json.RawMessage) (SyncRequest, error) {
	s := SyncRequest{Limit: DefaultSyncLimit}
	for _, key := range slices.Sorted(maps.Keys(fields)) {
		raw := fields[key]
		if isNull(raw) {
			continue
		}
		switch key {
		case "after", "cursor":
			var v string
			if firstByte(raw) != '"' || json.Unmarshal(raw, &v) != nil {
				return s, invalidf("%s: must be a string (a notification id)", key)
			}
			if v != "" && !ValidID(v) {
				return s, invalidf("%s: %q is not a notification id (a 26-character ULID)", key, truncate(v, 40))
			}
			if key == "after" {
				s.After = v
			} else {
				s.Cursor = v
			}
		case "limit":
			var n float64
			if firstByte(raw) == '"' || json.Unmarshal(raw, &n) != nil || n != float64(int(n)) {
				return s, invalidf("limit: must be an integer from 1 to %d", MaxSyncLimit)
			}
			if n < 1 || n > MaxSyncLimit {
				return s, invalidf("limit: must be from 1 to %d, got %v", MaxSyncLimit, n)
			}
			s.Limit = int(n)
		}
	}
	if s.After != "" && s.Cursor != "" {
		return s, invalidf("after and cursor: give one, not both")
	}
	return s, nil
}

func decodeRead(fields map[string]json.RawMessage) (ReadRequest, error) {
	var r ReadRequest
	if raw, ok := fields["all"]; ok && !isNull(raw) {
		if json.Unmarshal(raw, &r.All) != nil {
			return r, invalidf("all: must be a boolean")
		}
	}
	raw, hasIDs := fields["ids"]
	hasIDs = hasIDs && !isNull(raw)
	if hasIDs {
		if firstByte(raw) != '[' || json.Unmarshal(raw, &r.IDs) != nil {
			return r, invalidf("ids: must be an array of notification ids")
		}
		if len(r.IDs) < 1 || len(r.IDs) > MaxReadIDs {
			return r, invalidf("ids: must hold 1 to %d ids, got %d", MaxReadIDs, len(r.IDs))
		}
		for i, id := range r.IDs {
			if !ValidID(id) {
				return r, invalidf("ids[%d]: %q is not a notification id (a 26-character ULID)", i, truncate(id, 40))
			}
		}
	}
	switch {
	case hasIDs && r.All:
		return r, invalidf("ids and all: give one, not both")
	case !hasIDs && !r.All:
		return r, invalidf("ids or all: one is required")
	}
	return r, nil
}

// ValidID reports whether s is a notification id: a canonical ULID.
func ValidID(s string) bool {
	if len(s) != ulid.EncodedSize {
		return false
	}
	_, err := ulid.ParseStrict(s)
	return err == nil
}

// Server → client frames. Each marshals to the JSON of docs/PROTOCOL.md §3.

// PongFrame answers ping.
type PongFrame struct {
	Type string `json:"type"`
	Ref  string `json:"ref,omitempty"`
}

// ErrorFrame reports a refused frame; the socket stays open.
type ErrorFrame struct {
	Type    string `json:"type"`
	Code    string `json:"code"`
	Message string `json:"message"`
	Ref     string `json:"ref,omitempty"`
}

// DisconnectedFrame is sent before the server closes a socket on purpose.
type DisconnectedFrame struct {
	Type   string `json:"type"`
	Code   string `json:"code"`
	Reason string `json:"reason,omitempty"`
}

// NotificationFrame carries one notification.
type NotificationFrame struct {
	Type         string        `json:"type"`
	Notification *Notification `json:"notification"`
}

// NewErrorFrame builds the error frame for err: EINVALID becomes
// bad_request, EUNKNOWNACTION unknown_action, anything else internal (with a
// generic message, so internals never leak).
func NewErrorFrame(err error, ref string) ErrorFrame {
	f := ErrorFrame{Type: "error", Code: FrameInternal, Message: "internal error", Ref: ref}
	switch ErrorCode(err) {
	case EINVALID:
		f.Code, f.Message = FrameBadRequest, ErrorMessage(err)
	case EUNKNOWNACTION:
		f.Code, f.Message = FrameUnknownAction, ErrorMessage(err)
	case ETOKENEXPIRED:
		f.Code, f.Message = FrameTokenExpired, ErrorMessage(err)
	}
	return f
}

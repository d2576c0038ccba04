package notify

import (
	"fmt"

	"github.com/go-json-experiment/json"
	"github.com/go-json-experiment/json/jsontext"
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

// ClientFrame is a decoded client → server frame. Marshaled by
// encoding/json/v2 (which knows `inline`), it is the frame again.
type ClientFrame struct {
	Action string `json:"action"`
	// Ref is echoed in the answer to the sender.
	Ref  string      `json:"ref,omitempty"`
	Sync SyncRequest `json:",inline"`
	Read ReadRequest `json:",inline"`
}

// SyncRequest is the body of a `sync` frame. An empty After or Cursor is
// absent; a decoded frame without a limit has DefaultSyncLimit.
type SyncRequest struct {
	After  string `json:"after,omitempty"`
	Cursor string `json:"cursor,omitempty"`
	Limit  int    `json:"limit,omitzero"`
}

// ReadRequest is the body of a `read` frame: IDs is nil when absent.
type ReadRequest struct {
	IDs []string `json:"ids,omitempty"`
	All bool     `json:"all,omitzero"`
}

// DecodeClientFrame parses a client frame. A frame that is not a JSON object,
// repeats a key, lacks a string `action`, or has a field of the wrong type or
// out of range is an EINVALID error naming the field; an action the server
// does not know is EUNKNOWNACTION. The returned frame carries Ref whenever it
// could be read, even with an error, so that the error frame can echo it.
// Unknown fields, and those of other actions, are ignored.
func DecodeClientFrame(body []byte) (ClientFrame, error) {
	var f ClientFrame
	head, err := decodeObject[struct {
		Action *string `json:"action"` // nil: absent or null
		Ref    string  `json:"ref"`
	}](body, "frame", frameOptions)
	if err != nil {
		f.Ref = readableRef(body)
		return f, err
	}
	if err := checkLength("ref", head.Ref, 0, MaxRefLength); err != nil {
		return f, err
	}
	f.Ref = head.Ref
	if head.Action == nil {
		return f, invalidf("action: required")
	}
	switch f.Action = *head.Action; f.Action {
	case ActionPing:
		return f, nil
	case ActionSync:
		var s struct {
			SyncRequest
			Limit *int `json:"limit"` // nil: absent or null
		}
		if err := json.Unmarshal(body, &s, frameOptions); err != nil {
			return f, invalidJSON(err, "frame")
		}
		f.Sync = s.SyncRequest
		f.Sync.Limit = DefaultSyncLimit
		if s.Limit != nil {
			f.Sync.Limit = *s.Limit
		}
		return f, f.Sync.Validate()
	case ActionRead:
		if err := json.Unmarshal(body, &f.Read, frameOptions); err != nil {
			return f, invalidJSON(err, "frame")
		}
		return f, f.Read.Validate()
	default:
		return f, Errorf(EUNKNOWNACTION, "unknown action %q (known: ping, sync, read)", truncate(f.Action, 64))
	}
}

// readableRef is the ref of a refused frame, if it has a valid one.
func readableRef(body []byte) string {
	var f struct {
		Ref string `json:"ref"`
	}
	lenient := json.JoinOptions(frameOptions, jsontext.AllowDuplicateNames(true))
	if json.Unmarshal(body, &f, lenient) != nil || checkLength("ref", f.Ref, 0, MaxRefLength) != nil {
		return ""
	}
	return f.Ref
}

// Validate checks the ranges of a sync: Limit is 1..MaxSyncLimit, After and
// Cursor are notification ids, not both given.
func (s SyncRequest) Validate() error {
	switch {
	case s.After != "" && !ValidID(s.After):
		return notAnID("after", s.After)
	case s.Cursor != "" && !ValidID(s.Cursor):
		return notAnID("cursor", s.Cursor)
	case s.Limit < 1 || s.Limit > MaxSyncLimit:
		return invalidf("limit: must be from 1 to %d, got %d", MaxSyncLimit, s.Limit)
	case s.After != "" && s.Cursor != "":
		return invalidf("after and cursor: give one, not both")
	}
	return nil
}

// Validate checks a read: either 1..MaxReadIDs notification ids or All.
func (r ReadRequest) Validate() error {
	if r.IDs != nil && (len(r.IDs) < 1 || len(r.IDs) > MaxReadIDs) {
		return invalidf("ids: must hold 1 to %d ids, got %d", MaxReadIDs, len(r.IDs))
	}
	for i, id := range r.IDs {
		if !ValidID(id) {
			return notAnID(fmt.Sprintf("ids[%d]", i), id)
		}
	}
	switch {
	case r.IDs != nil && r.All:
		return invalidf("ids and all: give one, not both")
	case r.IDs == nil && !r.All:
		return invalidf("ids or all: one is required")
	}
	return nil
}

func notAnID(field, id string) error {
	return invalidf("%s: %q is not a notification id (a 26-character ULID)", field, truncate(id, 40))
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

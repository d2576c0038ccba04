package notify

import (
	"encoding/json"
	"fmt"
	"unicode/utf8"

	"github.com/go-json-experiment/json/jsontext"
)

// Limits of a publish request (docs/PROTOCOL.md §4).
const (
	MaxUsersPerPublish   = 1000
	MaxGroupsPerPublish  = 100
	MaxTypeLength        = 100
	MaxTitleLength       = 200
	MaxBodyLength        = 2000
	MaxIdempotencyKey    = 128
	MaxNotificationBytes = 120 * 1024
	MaxDisconnectReason  = 200
	nameRule             = "1-128 characters of A-Z a-z 0-9 . _ : @ -"
)

// PublishRequest is what another service sends to PublishFunction: a
// notification to publish, or, when Disconnect is set, a disconnect request
// (docs/PROTOCOL.md §4). Its JSON is the request's.
type PublishRequest struct {
	Users          []string          `json:"users,omitempty"`
	Groups         []string          `json:"groups,omitempty"`
	Broadcast      bool              `json:"broadcast,omitzero"`
	IdempotencyKey string            `json:"idempotencyKey,omitempty"`
	Notification   NotificationInput `json:"notification,omitzero"`
	// Disconnect, when not nil, makes this a disconnect request: the
	// targets' sockets are closed and each user is revoked.
	Disconnect *DisconnectInput `json:"disconnect,omitempty"`
}

// DisconnectInput is the `disconnect` object of a disconnect request.
type DisconnectInput struct {
	// Reason, when not empty, is passed on in the `disconnected` frames.
	Reason string `json:"reason,omitempty"`
}

// NotificationInput is the caller's part of a notification: the server adds
// the id and the creation time.
type NotificationInput struct {
	Type  string `json:"type"`
	Title string `json:"title,omitempty"`
	Body  string `json:"body,omitempty"`
	// Data is a JSON object, or nil.
	Data json.RawMessage `json:"data,omitempty"`
}

// publishJSON is a request as sent, where pointers tell a field that is
// absent (or null) from an empty one, which the protocol treats differently.
type publishJSON struct {
	PublishRequest
	IdempotencyKey *string `json:"idempotencyKey"`
	Notification   *struct {
		NotificationInput
		Type *string `json:"type"`
	} `json:"notification"`
}

// Target returns who the request is for.
func (r PublishRequest) Target() Target {
	return Target{Users: r.Users, Groups: r.Groups, Broadcast: r.Broadcast}
}

// DecodePublishRequest parses and validates a publish request. Field names
// are case-sensitive and unknown fields are refused, so that a typo such as
// "user" cannot silently send nothing. Every error is EINVALID and names the
// field at fault.
func DecodePublishRequest(payload []byte) (PublishRequest, error) {
	w, err := decodeObject[publishJSON](payload, "request", requestOptions)
	if err != nil {
		return PublishRequest{}, err
	}
	req, n := w.PublishRequest, w.Notification
	switch {
	case n != nil && req.Disconnect != nil:
		return req, invalidf("notification and disconnect: give one, not both")
	case n == nil && req.Disconnect == nil:
		return req, invalidf("notification: required (or disconnect, to close the targets' sockets)")
	case n != nil && n.Type == nil:
		return req, invalidf("notification.type: required")
	case n != nil:
		req.Notification = n.NotificationInput
		req.Notification.Type = *n.Type
		data := jsontext.Value(n.Data)
		if data.Kind() == 'n' {
			data = nil // null: absent
		} else if data != nil {
			_ = data.Compact() // cannot fail: it was just unmarshaled
		}
		req.Notification.Data = json.RawMessage(data)
	}
	if w.IdempotencyKey != nil {
		// Present, even empty, it must be a key.
		if err := checkLength("idempotencyKey", *w.IdempotencyKey, 1, MaxIdempotencyKey); err != nil {
			return req, err
		}
		req.IdempotencyKey = *w.IdempotencyKey
	}
	return req, req.Validate()
}

// Validate checks a request's targets and idempotency key, then its
// notification or, for a disconnect request, its disconnect.
func (r PublishRequest) Validate() error {
	if len(r.Users) == 0 && len(r.Groups) == 0 && !r.Broadcast {
		return invalidf("no target: give users, groups or broadcast: true")
	}
	if err := checkNames("users", "user id", r.Users, MaxUsersPerPublish); err != nil {
		return err
	}
	if err := checkNames("groups", "group name", r.Groups, MaxGroupsPerPublish); err != nil {
		return err
	}
	if r.IdempotencyKey != "" {
		if err := checkLength("idempotencyKey", r.IdempotencyKey, 1, MaxIdempotencyKey); err != nil {
			return err
		}
	}
	if r.Disconnect == nil {
		return r.Notification.Validate()
	}
	if r.IdempotencyKey != "" {
		return invalidf("idempotencyKey: not accepted with disconnect (a disconnect request may be repeated safely)")
	}
	return r.Disconnect.Validate()
}

// Validate checks the lengths of a notification, that Data is an object, and
// that the whole, as it will be sent (EncodeJSON), is at most
// MaxNotificationBytes, so that with its id and creation time it always fits
// a frame.
func (n NotificationInput) Validate() error {
	if err := checkLength("notification.type", n.Type, 1, MaxTypeLength); err != nil {
		return err
	}
	if err := checkLength("notification.title", n.Title, 0, MaxTitleLength); err != nil {
		return err
	}
	if err := checkLength("notification.body", n.Body, 0, MaxBodyLength); err != nil {
		return err
	}
	if n.Data != nil && jsontext.Value(n.Data).Kind() != '{' {
		return invalidf("notification.data: must be a JSON object")
	}
	encoded, err := EncodeJSON(n)
	if err != nil {
		return invalidf("notification.data: %v", err)
	}
	if len(encoded) > MaxNotificationBytes {
		return invalidf("notification: %d bytes as JSON, at most %d allowed", len(encoded), MaxNotificationBytes)
	}
	return nil
}

// Validate checks the length of the reason.
func (d DisconnectInput) Validate() error {
	return checkLength("disconnect.reason", d.Reason, 0, MaxDisconnectReason)
}

// checkLength refuses s unless it has min to max characters.
func checkLength(field, s string, min, max int) error {
	if n := utf8.RuneCountInString(s); n < min || n > max {
		if min > 0 {
			return invalidf("%s: must be %d-%d characters, got %d", field, min, max, n)
		}
		return invalidf("%s: at most %d characters, got %d", field, max, n)
	}
	return nil
}

// checkNames refuses more than max names, or one that is not a valid user id
// or group name (what).
func checkNames(field, what string, names []string, max int) error {
	if len(names) > max {
		return invalidf("%s: at most %d allowed, got %d", field, max, len(names))
	}
	for i, name := range names {
		if !ValidName(name) {
			return invalidf("%s[%d]: %q is not a valid %s (%s)", field, i, truncate(name, 140), what, nameRule)
		}
	}
	return nil
}

func invalidf(format string, args ...any) *Error {
	return &Error{Code: EINVALID, Message: fmt.Sprintf(format, args...)}
}

func truncate(s string, n int) string {
	if utf8.RuneCountInString(s) <= n {
		return s
	}
	r := []rune(s)
	return string(r[:n]) + "…"
}

package notify

import (
	"bytes"
	"encoding/json"
	"fmt"
	"maps"
	"slices"
	"unicode/utf8"
)

// Limits of a publish request (docs/PROTOCOL.md §4).
const (
	MaxUsersPerPublish    = 1000
	MaxGroupsPerPublish   = 100
	MaxTypeLength         = 100
	MaxTitleLength        = 200
	MaxBodyLength         = 2000
	MaxIdempotencyKey     = 128
	MaxNotificationBytes  = 120 * 1024
	MaxDisconnectReason   = 200
	nameRule              = "1-128 characters of A-Z a-z 0-9 . _ : @ -"
	publishTopLevelFields = "users, groups, broadcast, idempotencyKey, notification, disconnect"
	notificationFields    = "type, title, body, data"
)

// PublishRequest is what another service sends to PublishFunction: a
// notification to publish, or, when Disconnect is set, a disconnect request
// (docs/PROTOCOL.md §4).
type PublishRequest struct {
	Users          []string
	Groups         []string
	Broadcast      bool
	IdempotencyKey string
	Notification   NotificationInput
	// Disconnect, when not nil, makes this a disconnect request: the
	// targets' sockets are closed and each user is revoked.
	Disconnect *DisconnectInput
}

// DisconnectInput is the `disconnect` object of a disconnect request.
type DisconnectInput struct {
	// Reason, when not empty, is passed on in the `disconnected` frames.
	Reason string
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

// Target returns who the request is for.
func (r PublishRequest) Target() Target {
	return Target{Users: r.Users, Groups: r.Groups, Broadcast: r.Broadcast}
}

// DecodePublishRequest parses and validates a publish request. Field names
// are case-sensitive and unknown fields are refused, so that a typo such as
// "user" cannot silently send nothing. Every error is EINVALID and names the
// field at fault.
func DecodePublishRequest(payload []byte) (PublishRequest, error) {
	var req PublishRequest
	top, err := decodeObject(payload, "request")
	if err != nil {
		return req, err
	}
	if err := checkRepeatedKeys(payload, "request"); err != nil {
		return req, err
	}
	var notificationRaw, disconnectRaw json.RawMessage
	for _, key := range slices.Sorted(maps.Keys(top)) {
		raw := top[key]
		switch key {
		case "users":
			req.Users, err = decodeNames(raw, "users", "user id", MaxUsersPerPublish)
		case "groups":
			req.Groups, err = decodeNames(raw, "groups", "group name", MaxGroupsPerPublish)
		case "broadcast":
			err = decodeField(raw, "broadcast", "a boolean", &req.Broadcast)
		case "idempotencyKey":
			if isNull(raw) {
				continue
			}
			if err = decodeField(raw, "idempotencyKey", "a string", &req.IdempotencyKey); err == nil {
				if n := utf8.RuneCountInString(req.IdempotencyKey); n < 1 || n > MaxIdempotencyKey {
					err = invalidf("idempotencyKey: must be 1-%d characters, got %d", MaxIdempotencyKey, n)
				}
			}
		case "notification":
			notificationRaw = raw
		case "disconnect":
			disconnectRaw = raw
		default:
			err = invalidf("unknown field %q (allowed: %s)", key, publishTopLevelFields)
		}
		if err != nil {
			return req, err
		}
	}
	if len(req.Users) == 0 && len(req.Groups) == 0 && !req.Broadcast {
		return req, invalidf("no target: give users, groups or broadcast: true")
	}
	hasNotification := notificationRaw != nil && !isNull(notificationRaw)
	hasDisconnect := disconnectRaw != nil && !isNull(disconnectRaw)
	switch {
	case hasNotification && hasDisconnect:
		return req, invalidf("notification and disconnect: give one, not both")
	case hasDisconnect:
		if req.IdempotencyKey != "" {
			return req, invalidf("idempotencyKey: not accepted with disconnect (a disconnect request may be repeated safely)")
		}
		req.Disconnect, err = decodeDisconnectInput(disconnectRaw)
		return req, err
	case !hasNotification:
		return req, invalidf("notification: required (or disconnect, to close the targets' sockets)")
	}
	req.Notification, err = decodeNotificationInput(notificationRaw)
	return req, err
}

func decodeDisconnectInput(raw json.RawMessage) (*DisconnectInput, error) {
	fields, err := decodeObject(raw, "disconnect")
	if err != nil {
		return nil, err
	}
	d := &DisconnectInput{}
	for _, key := range slices.Sorted(maps.Keys(fields)) {
		value := fields[key]
		switch key {
		case "reason":
			if !isNull(value) {
				err = decodeText(value, "disconnect.reason", &d.Reason, 0, MaxDisconnectReason)
			}
		default:
			err = invalidf("disconnect: unknown field %q (allowed: reason)", key)
		}
		if err != nil {
			return nil, err
		}
	}
	return d, nil
}

func decodeNotificationInput(raw json.RawMessage) (NotificationInput, error) {
	var n NotificationInput
	fields, err := decodeObject(raw, "notification")
	if err != nil {
		return n, err
	}
	for _, key := range slices.Sorted(maps.Keys(fields)) {
		value := fields[key]
		switch key {
		case "type":
			err = decodeText(value, "notification.type", &n.Type, 1, MaxTypeLength)
		case "title":
			if !isNull(value) {
				err = decodeText(value, "notification.title", &n.Title, 0, MaxTitleLength)
			}
		case "body":
			if !isNull(value) {
				err = decodeText(value, "notification.body", &n.Body, 0, MaxBodyLength)
			}
		case "data":
			if isNull(value) {
				continue
			}
			if firstByte(value) != '{' {
				err = invalidf("notification.data: must be a JSON object")
				break
			}
			n.Data = compactJSON(value)
		default:
			err = invalidf("notification: unknown field %q (allowed: %s)", key, notificationFields)
		}
		if err != nil {
			return n, err
		}
	}
	if _, ok := fields["type"]; !ok || isNull(fields["type"]) {
		return n, invalidf("notification.type: required")
	}
	// The limit applies to the notification as it will be sent (EncodeJSON),
	// so that with its id and creation time it always fits a frame.
	encoded, err := EncodeJSON(n)
	if err != nil {
		return n, invalidf("notification.data: %v", err)
	}
	if len(encoded) > MaxNotificationBytes {
		return n, invalidf("notification: %d bytes as JSON, at most %d allowed", len(encoded), MaxNotificationBytes)
	}
	return n, nil
}

func decodeObject(raw []byte, what string) (map[string]json.RawMessage, error) {
	if firstByte(raw) != '{' {
		return nil, invalidf("%s: must be a JSON object", what)
	}
	var m map[string]json.RawMessage
	if err := json.Unmarshal(raw, &m); err != nil {
		return nil, invalidf("%s: not valid JSON: %v", what, err)
	}
	return m, nil
}

func decodeField(raw json.RawMessage, field, want string, v any) error {
	if isNull(raw) {
		return nil
	}
	if err := json.Unmarshal(raw, v); err != nil {
		return invalidf("%s: must be %s", field, want)
	}
	return nil
}

func decodeText(raw json.RawMessage, field string, dst *string, min, max int) error {
	if err := json.Unmarshal(raw, dst); err != nil || firstByte(raw) != '"' {
		return invalidf("%s: must be a string", field)
	}
	if n := utf8.RuneCountInString(*dst); n < min || n > max {
		if min > 0 {
			return invalidf("%s: must be %d-%d characters, got %d", field, min, max, n)
		}
		return invalidf("%s: at most %d characters, got %d", field, max, n)
	}
	return nil
}

func decodeNames(raw json.RawMessage, field, what string, max int) ([]string, error) {
	if isNull(raw) {
		return nil, nil
	}
	var names []string
	if firstByte(raw) != '[' || json.Unmarshal(raw, &names) != nil {
		return nil, invalidf("%s: must be an array of strings", field)
	}
	if len(names) > max {
		return nil, invalidf("%s: at most %d allowed, got %d", field, max, len(names))
	}
	for i, name := range names {
		if !ValidName(name) {
			return nil, invalidf("%s[%d]: %q is not a valid %s (%s)", field, i, truncate(name, 140), what, nameRule)
		}
	}
	return names, nil
}

func invalidf(format string, args ...any) *Error {
	return &Error{Code: EINVALID, Message: fmt.Sprintf(format, args...)}
}

func isNull(raw []byte) bool { return bytes.Equal(bytes.TrimSpace(raw), []byte("null")) }

func firstByte(raw []byte) byte {
	raw = bytes.TrimSpace(raw)
	if len(raw) == 0 {
		return 0
	}
	return raw[0]
}

func compactJSON(raw []byte) json.RawMessage {
	var b bytes.Buffer
	if err := json.Compact(&b, raw); err != nil {
		return append(json.RawMessage(nil), raw...)
	}
	return b.Bytes()
}

func truncate(s string, n int) string {
	if utf8.RuneCountInString(s) <= n {
		return s
	}
	r := []rune(s)
	return string(r[:n]) + "…"
}

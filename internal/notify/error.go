package notify

import (
	"errors"
	"fmt"
)

// Error codes carried by *Error. They are mapped once, at the edge: to an
// HTTP status on $connect, to an `error` frame on $default, and to a Lambda
// errorType on publish.
const (
	// EINVALID: the caller sent something malformed or out of range.
	EINVALID = "invalid"
	// EUNAUTHORIZED: the token is missing, malformed, badly signed or expired.
	EUNAUTHORIZED = "unauthorized"
	// EFORBIDDEN: the origin is not allowed.
	EFORBIDDEN = "forbidden"
	// ENOTFOUND: the thing asked for does not exist (a connection id, say).
	ENOTFOUND = "not_found"
	// EUNKNOWNACTION: a frame named an action the server does not know.
	EUNKNOWNACTION = "unknown_action"
	// ETOKENEXPIRED: the connection's token has expired; it is closed.
	ETOKENEXPIRED = "token_expired"
	// EGONE: the connection no longer exists on the gateway (HTTP 410).
	EGONE = "gone"
	// ECONFLICT: another call holds what this one needed (an idempotency
	// key taken over after its lease ran out); nothing was sent.
	ECONFLICT = "conflict"
	// EINTERNAL: anything else; the caller may retry.
	EINTERNAL = "internal"
)

// Error is a domain error: a machine-readable code and a message for people.
type Error struct {
	Code    string
	Message string
	// Err is the underlying cause, if any; it is not shown to callers.
	Err error
}

// Error returns the message, with the cause when there is one.
func (e *Error) Error() string {
	if e.Err != nil {
		return e.Message + ": " + e.Err.Error()
	}
	return e.Message
}

// Unwrap returns the underlying cause.
func (e *Error) Unwrap() error { return e.Err }

// Errorf returns an *Error with the given code and formatted message.
func Errorf(code, format string, args ...any) *Error {
	return &Error{Code: code, Message: fmt.Sprintf(format, args...)}
}

// Wrap returns an *Error with the given code and message whose cause is err.
func Wrap(code string, err error, message string) *Error {
	return &Error{Code: code, Message: message, Err: err}
}

// ErrGone is what a Sender returns for a connection the gateway no longer
// knows (API Gateway's 410 GoneException).
var ErrGone = &Error{Code: EGONE, Message: "connection is gone"}

// ErrorCode returns the code of the first *Error in err's chain, EINTERNAL
// for any other non-nil error, and "" for nil.
func ErrorCode(err error) string {
	if err == nil {
		return ""
	}
	var e *Error
	if errors.As(err, &e) {
		return e.Code
	}
	return EINTERNAL
}

// ErrorMessage returns the message of the first *Error in err's chain (without
// its cause), or "internal error" for any other error, so that internal
// details never leak to callers.
func ErrorMessage(err error) string {
	if err == nil {
		return ""
	}
	var e *Error
	if errors.As(err, &e) {
		return e.Message
	}
	return "internal error"
}

// Package auth decides who may open a WebSocket connection (docs/PROTOCOL.md §2):
// it verifies the JWT a client presents, checks the browser's Origin against
// ALLOWED_ORIGINS, and finds the token and headers in an API Gateway $connect
// event.
//
// Every refusal is a *notify.Error: EUNAUTHORIZED (401) for a token that is
// missing, malformed, badly signed, expired or carries unacceptable claims,
// and EFORBIDDEN (403) for an origin that is not allowed. Messages say
// precisely why; the underlying cause, when there is one (a failed key-set
// fetch, say), is kept in Err for logs.
package auth

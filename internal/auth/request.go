package auth

import "strings"

// TokenFromRequest returns the token a $connect request carries: the value
// of an "Authorization: Bearer <token>" header (header name and scheme
// compared case-insensitively), else the "token" query string parameter.
// When both are present the header wins. fromHeader reports whether the
// token came from the Authorization header, which browsers cannot set on a
// WebSocket, so OriginPolicy.Check may let such a request in without an
// Origin. An Authorization header of another scheme (Basic, say), or a
// Bearer header with no token, is ignored.
func TokenFromRequest(query map[string]string, headers map[string]string) (token string, fromHeader bool) {
	if h := strings.TrimSpace(HeaderValue(headers, "Authorization")); h != "" {
		scheme, rest, ok := strings.Cut(h, " ")
		if ok && strings.EqualFold(scheme, "Bearer") {
			if t := strings.TrimSpace(rest); t != "" {
				return t, true
			}
		}
	}
	return strings.TrimSpace(query["token"]), false
}

// HeaderValue returns the value of the header called name, compared
// case-insensitively: API Gateway passes headers spelt as the client sent
// them. An exact match is preferred; among several spellings of the same name
// the lexically smallest key wins, so the result is deterministic. It returns
// "" when the header is absent.
func HeaderValue(headers map[string]string, name string) string {
	if v, ok := headers[name]; ok {
		return v
	}
	found, value := "", ""
	for k, v := range headers {
		if strings.EqualFold(k, name) && (found == "" || k < found) {
			found, value = k, v
		}
	}
	return value
}

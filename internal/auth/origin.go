package auth

import (
	"net/url"
	"strings"

	"github.com/workorders/notify/internal/notify"
)

// maxOriginInMessage bounds how much of a refused Origin is quoted back.
const maxOriginInMessage = 200

// OriginPolicy is the ALLOWED_ORIGINS rule for $connect (docs/PROTOCOL.md §2).
// The zero value allows nothing.
type OriginPolicy struct {
	any     bool
	allowed map[string]struct{}
}

// ParseOrigins parses ALLOWED_ORIGINS: a comma-separated list of exact
// origins ("https://app.example.com"), spaces around each trimmed, or "*"
// (alone or in the list) to allow any origin and a missing one. Each entry
// must be a bare origin, scheme://host[:port] with no path, query, fragment
// or user info (a trailing "/" is a mistake an operator would not notice, so
// it is refused rather than silently never matching). An empty list is an
// error naming ALLOWED_ORIGINS.
//
// Scheme and host are case-insensitive, so entries and the Origin being
// checked are compared in lower case; nothing else is normalised (a default
// port written out, ":443", does not match an Origin without it, and
// browsers never send one).
func ParseOrigins(list string) (OriginPolicy, error) {
	p := OriginPolicy{allowed: map[string]struct{}{}}
	for _, entry := range strings.Split(list, ",") {
		entry = strings.TrimSpace(entry)
		switch {
		case entry == "":
			continue
		case entry == "*":
			p.any = true
			continue
		}
		u, err := url.Parse(entry)
		if err != nil || u.Scheme == "" || u.Host == "" || u.Opaque != "" || u.User != nil ||
			u.Path != "" || u.RawQuery != "" || u.ForceQuery || u.Fragment != "" || strings.Contains(entry, "#") {
			return OriginPolicy{}, notify.Errorf(notify.EINVALID,
				"ALLOWED_ORIGINS: %q is not an origin (want scheme://host[:port], e.g. https://app.example.com)", entry)
		}
		p.allowed[strings.ToLower(entry)] = struct{}{}
	}
	if !p.any && len(p.allowed) == 0 {
		return OriginPolicy{}, notify.Errorf(notify.EINVALID,
			"ALLOWED_ORIGINS is empty: set a comma-separated list of origins, or * to allow any")
	}
	return p, nil
}

// AllowsAny reports whether the policy is "*".
func (p OriginPolicy) AllowsAny() bool { return p.any }

// Check applies the policy to a request's Origin header ("" when absent).
// With "*" every request passes. With a list, a listed origin passes,
// another is refused, and a missing one is refused unless tokenFromHeader
// (the token came in the Authorization header, which browsers cannot set, so
// the client is not a browser). Refusals are EFORBIDDEN.
func (p OriginPolicy) Check(origin string, tokenFromHeader bool) error {
	if p.any {
		return nil
	}
	if origin == "" {
		if tokenFromHeader {
			return nil
		}
		return notify.Errorf(notify.EFORBIDDEN, "missing Origin header")
	}
	if _, ok := p.allowed[strings.ToLower(origin)]; ok {
		return nil
	}
	quoted := origin
	if len(quoted) > maxOriginInMessage {
		quoted = quoted[:maxOriginInMessage] + "..."
	}
	return notify.Errorf(notify.EFORBIDDEN, "origin %q not allowed", quoted)
}

package auth

import "testing"

func TestTokenFromRequest(t *testing.T) {
	for _, tc := range []struct {
		name       string
		query      map[string]string
		headers    map[string]string
		token      string
		fromHeader bool
	}{
		{"nothing", nil, nil, "", false},
		{"query", map[string]string{"token": "q"}, nil, "q", false},
		{"header", nil, map[string]string{"Authorization": "Bearer h"}, "h", true},
		{"header name lower case", nil, map[string]string{"authorization": "Bearer h"}, "h", true},
		{"header name odd case", nil, map[string]string{"AUTHORIZATION": "bearer h"}, "h", true},
		{"scheme upper case", nil, map[string]string{"Authorization": "BEARER h"}, "h", true},
		{"extra spaces", nil, map[string]string{"Authorization": "  Bearer   h  "}, "h", true},
		{"both: header wins", map[string]string{"token": "q"}, map[string]string{"Authorization": "Bearer h"}, "h", true},
		{"basic scheme ignored", map[string]string{"token": "q"}, map[string]string{"Authorization": "Basic abc"}, "q", false},
		{"empty bearer ignored", map[string]string{"token": "q"}, map[string]string{"Authorization": "Bearer "}, "q", false},
		{"bare token ignored", nil, map[string]string{"Authorization": "h"}, "", false},
		{"other query params", map[string]string{"Token": "x", "tok": "y"}, nil, "", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			token, fromHeader := TokenFromRequest(tc.query, tc.headers)
			if token != tc.token || fromHeader != tc.fromHeader {
				t.Fatalf("TokenFromRequest = %q, %v; want %q, %v", token, fromHeader, tc.token, tc.fromHeader)
			}
		})
	}
}

func TestHeaderValue(t *testing.T) {
	h := map[string]string{"origin": "https://a.example", "X-Thing": "x"}
	if got := HeaderValue(h, "Origin"); got != "https://a.example" {
		t.Fatalf("Origin = %q", got)
	}
	if got := HeaderValue(h, "x-thing"); got != "x" {
		t.Fatalf("x-thing = %q", got)
	}
	if got := HeaderValue(h, "Missing"); got != "" {
		t.Fatalf("Missing = %q", got)
	}
	if got := HeaderValue(nil, "Origin"); got != "" {
		t.Fatalf("nil map = %q", got)
	}
	// Exact spelling preferred; otherwise deterministic.
	both := map[string]string{"origin": "lower", "Origin": "exact", "ORIGIN": "upper"}
	if got := HeaderValue(both, "Origin"); got != "exact" {
		t.Fatalf("exact = %q", got)
	}
	for range 20 {
		if got := HeaderValue(both, "oRiGiN"); got != "upper" {
			t.Fatalf("folded = %q, want the lexically smallest key's value", got)
		}
	}
}

package auth

import (
	"strings"
	"testing"

	"github.com/workorders/notify/internal/notify"
)

func TestParseOriginsErrors(t *testing.T) {
	for _, list := range []string{"", " ", " , ,", "app.example.com", "https://app.example.com/",
		"https://app.example.com/path", "https://app.example.com?x=1", "https://user@app.example.com", "null"} {
		_, err := ParseOrigins(list)
		wantCode(t, err, notify.EINVALID, "ALLOWED_ORIGINS")
	}
}

func TestOriginMatrix(t *testing.T) {
	list, err := ParseOrigins(" https://app.example.com , http://localhost:5173,https://Admin.Example.com")
	if err != nil {
		t.Fatal(err)
	}
	star, err := ParseOrigins("*")
	if err != nil {
		t.Fatal(err)
	}
	starInList, err := ParseOrigins("https://app.example.com, *")
	if err != nil {
		t.Fatal(err)
	}
	const forbidden = notify.EFORBIDDEN
	for _, tc := range []struct {
		name       string
		policy     OriginPolicy
		origin     string
		fromHeader bool
		msg        string // "" = allowed
	}{
		{"listed", list, "https://app.example.com", false, ""},
		{"listed with port", list, "http://localhost:5173", false, ""},
		{"listed, token in header", list, "https://app.example.com", true, ""},
		{"listed, case of host differs", list, "https://admin.example.com", false, ""},
		{"other origin", list, "https://evil.example", false, `origin "https://evil.example" not allowed`},
		{"other origin, token in header", list, "https://evil.example", true, `origin "https://evil.example" not allowed`},
		{"other port", list, "http://localhost:5174", false, "not allowed"},
		{"other scheme", list, "http://app.example.com", false, "not allowed"},
		{"suffix attack", list, "https://app.example.com.evil.example", false, "not allowed"},
		{"prefix match only", list, "https://app.example.co", false, "not allowed"},
		{"trailing slash", list, "https://app.example.com/", false, "not allowed"},
		{"null origin", list, "null", false, `origin "null" not allowed`},
		{"missing, token in query", list, "", false, "missing Origin header"},
		{"missing, token in header", list, "", true, ""},
		{"star, any origin", star, "https://evil.example", false, ""},
		{"star, missing origin", star, "", false, ""},
		{"star in a list", starInList, "https://evil.example", false, ""},
		{"zero policy", OriginPolicy{}, "https://app.example.com", false, "not allowed"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.policy.Check(tc.origin, tc.fromHeader)
			if tc.msg == "" {
				if err != nil {
					t.Fatalf("Check(%q, %v) = %v, want nil", tc.origin, tc.fromHeader, err)
				}
				return
			}
			wantCode(t, err, forbidden, tc.msg)
		})
	}
	if !star.AllowsAny() || list.AllowsAny() {
		t.Fatal("AllowsAny wrong")
	}
}

func TestOriginMessageBounded(t *testing.T) {
	list, _ := ParseOrigins("https://app.example.com")
	err := list.Check("https://"+strings.Repeat("a", 5000), false)
	wantCode(t, err, notify.EFORBIDDEN, "not allowed")
	if len(err.Error()) > 300 {
		t.Fatalf("message of %d bytes", len(err.Error()))
	}
}

package web_test

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"

	"github.com/workorders/notify/web"
)

func TestHandler(t *testing.T) {
	var gotSub string
	var gotGroups []string
	h := web.Handler(func(sub string, groups []string) (string, error) {
		if sub == "early" {
			return "", fmt.Errorf("starting: %w", web.ErrNotReady)
		}
		if sub == "bad sub" {
			return "", errors.New(`sub "bad sub": not a user id`)
		}
		gotSub, gotGroups = sub, groups
		return "tok-" + sub, nil
	})
	get := func(path string) *httptest.ResponseRecorder {
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, path, nil))
		return rec
	}

	for path, want := range map[string]string{
		"/":            "text/html",
		"/index.html":  "text/html",
		"/notify.js":   "text/javascript",
		"/app.js":      "text/javascript",
		"/style.css":   "text/css",
		"/notify.d.ts": "text/plain",
	} {
		rec := get(path)
		if rec.Code != 200 || !strings.HasPrefix(rec.Header().Get("Content-Type"), want) || rec.Body.Len() == 0 {
			t.Errorf("GET %s: %d %q (%d bytes), want 200 %s", path, rec.Code, rec.Header().Get("Content-Type"), rec.Body.Len(), want)
		}
	}
	for _, path := range []string{"/nope.js", "/web.go", "/a/b"} {
		if rec := get(path); rec.Code != 404 {
			t.Errorf("GET %s: %d, want 404", path, rec.Code)
		}
	}

	rec := get("/dev/token?sub=demo&groups=team:plant-3,%20role:dispatcher")
	var body struct{ Token, Error string }
	if err := json.Unmarshal(rec.Body.Bytes(), &body); err != nil || rec.Code != 200 || body.Token != "tok-demo" {
		t.Fatalf("GET /dev/token: %d %s", rec.Code, rec.Body)
	}
	if gotSub != "demo" || !slices.Equal(gotGroups, []string{"team:plant-3", "role:dispatcher"}) {
		t.Errorf("minted for %q %q", gotSub, gotGroups)
	}
	if rec.Header().Get("Cache-Control") != "no-store" {
		t.Errorf("a token must not be cached: Cache-Control %q", rec.Header().Get("Cache-Control"))
	}
	if get("/dev/token"); gotSub != "demo" || gotGroups != nil {
		t.Errorf("no parameters: minted for %q %q, want demo without groups", gotSub, gotGroups)
	}
	rec = get("/dev/token?sub=bad+sub")
	if rec.Code != 400 || !strings.Contains(rec.Body.String(), "not a user id") {
		t.Errorf("refused sub: %d %s, want 400 with the reason", rec.Code, rec.Body)
	}

	if rec = get("/dev/token?sub=early"); rec.Code != 503 {
		t.Errorf("mint not ready: %d %s, want 503", rec.Code, rec.Body)
	}

	if rec := httptest.NewRecorder(); true {
		web.Handler(nil).ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/dev/token", nil))
		if rec.Code != 404 {
			t.Errorf("no mint: /dev/token answered %d, want 404", rec.Code)
		}
	}
}

// /dev/token answers only while the mint func mints: one that returns
// ErrDisabled (the local stack with a secret other than the development
// default) makes it answer 404, as if it did not exist, while the page and
// the client are still served.
func TestDevTokenDisabled(t *testing.T) {
	for name, tc := range map[string]struct {
		devSecret bool
		want      int
	}{
		"development secret": {true, http.StatusOK},
		"another secret":     {false, http.StatusNotFound},
	} {
		t.Run(name, func(t *testing.T) {
			h := web.Handler(func(sub string, groups []string) (string, error) {
				if !tc.devSecret {
					return "", fmt.Errorf("JWT_SECRET is not the development default: %w", web.ErrDisabled)
				}
				return "tok-" + sub, nil
			})
			rec := httptest.NewRecorder()
			h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/dev/token?sub=demo", nil))
			if rec.Code != tc.want {
				t.Fatalf("GET /dev/token: %d %s, want %d", rec.Code, rec.Body, tc.want)
			}
			if tc.want == http.StatusNotFound && (strings.Contains(rec.Body.String(), "tok-") || strings.Contains(rec.Body.String(), "JWT_SECRET")) {
				t.Errorf("404 body %q says more than not found", rec.Body)
			}
			for _, path := range []string{"/", "/notify.js", "/app.js"} {
				rec := httptest.NewRecorder()
				h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, path, nil))
				if rec.Code != http.StatusOK {
					t.Errorf("GET %s: %d, want 200", path, rec.Code)
				}
			}
		})
	}
}

// Package web is the browser side of the notification service: notify.js, a
// dependency-free client (ES module, with notify.d.ts), and a demo page — a
// work-order notification center — that `notify local` serves at
// http://ADDR/. Everything is embedded in the binary; there is no build step.
//
// The demo page gets its token from GET /dev/token, which mints development
// tokens with the local stack's secret, and only while that secret is the
// development default (docs/PROTOCOL.md §7): with a secret of the environment's,
// the mint func returns ErrDisabled and /dev/token answers 404. Handler is
// for the local stack only: never serve it from a deploy.
package web

import (
	"embed"
	"encoding/json"
	"errors"
	"io/fs"
	"mime"
	"net/http"
	"path"
	"strings"
)

//go:embed index.html app.js style.css notify.js notify.d.ts
var files embed.FS

// Assets are the embedded files, for tests and other servers.
func Assets() fs.FS { return files }

// ErrNotReady is what a mint func returns (or wraps) while it cannot mint
// yet, e.g. while the local stack starts: /dev/token then answers 503, and
// the page retries rather than giving up.
var ErrNotReady = errors.New("not ready to mint tokens yet")

// ErrDisabled is what a mint func returns (or wraps) when it must not mint
// at all, e.g. when the local stack verifies tokens with a secret other than
// the development default: /dev/token then answers 404, as if it did not
// exist (the demo page's client then stops, "unauthorized").
var ErrDisabled = errors.New("development tokens are disabled")

// Handler serves the demo page (index.html, app.js, style.css), the client
// (notify.js, notify.d.ts) and GET /dev/token?sub=demo&groups=a,b, which
// answers {"token":"..."} minted by mint: 400 with {"error":"..."} when mint
// refuses, 503 when it returns ErrNotReady, 404 when it returns ErrDisabled.
// A nil mint answers 404 there.
func Handler(mint func(sub string, groups []string) (string, error)) http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /dev/token", func(w http.ResponseWriter, r *http.Request) {
		if mint == nil {
			http.NotFound(w, r)
			return
		}
		q := r.URL.Query()
		sub := q.Get("sub")
		if sub == "" {
			sub = "demo"
		}
		var groups []string
		for _, g := range strings.Split(q.Get("groups"), ",") {
			if g = strings.TrimSpace(g); g != "" {
				groups = append(groups, g)
			}
		}
		token, err := mint(sub, groups)
		if errors.Is(err, ErrDisabled) {
			http.NotFound(w, r)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("Cache-Control", "no-store")
		if err != nil {
			status := http.StatusBadRequest
			if errors.Is(err, ErrNotReady) {
				status = http.StatusServiceUnavailable
				w.Header().Set("Retry-After", "1")
			}
			w.WriteHeader(status)
			_ = json.NewEncoder(w).Encode(map[string]string{"error": err.Error()})
			return
		}
		_ = json.NewEncoder(w).Encode(map[string]string{"token": token})
	})
	mux.HandleFunc("GET /{$}", func(w http.ResponseWriter, r *http.Request) { serveFile(w, r, "index.html") })
	mux.HandleFunc("GET /{file}", func(w http.ResponseWriter, r *http.Request) { serveFile(w, r, r.PathValue("file")) })
	return mux
}

func serveFile(w http.ResponseWriter, r *http.Request, name string) {
	b, err := files.ReadFile(name)
	if err != nil {
		http.NotFound(w, r)
		return
	}
	typ := mime.TypeByExtension(path.Ext(name))
	switch {
	case strings.HasSuffix(name, ".js"):
		typ = "text/javascript; charset=utf-8"
	case strings.HasSuffix(name, ".ts"):
		typ = "text/plain; charset=utf-8"
	}
	w.Header().Set("Content-Type", typ)
	// Development files: always fresh after a rebuild.
	w.Header().Set("Cache-Control", "no-cache")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	_, _ = w.Write(b)
}

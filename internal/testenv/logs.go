package testenv

import (
	"context"
	"log/slog"
	"slices"
	"sync"
	"testing"
	"time"
)

// Logs is a slog.Handler that keeps every record, with its attributes, as a
// map ("msg" holds the message). Tests read what the functions of a stack
// logged: a connection's id, which its client cannot see, is in
// ConnectFunction's "connected" record.
type Logs struct {
	store *logStore
	attrs []slog.Attr
}

type logStore struct {
	mu      sync.Mutex
	records []map[string]any
}

// NewLogs returns an empty Logs.
func NewLogs() *Logs { return &Logs{store: &logStore{}} }

// Enabled keeps every level.
func (l *Logs) Enabled(context.Context, slog.Level) bool { return true }

// Handle keeps r.
func (l *Logs) Handle(_ context.Context, r slog.Record) error {
	m := map[string]any{"msg": r.Message}
	for _, a := range l.attrs {
		m[a.Key] = a.Value.Any()
	}
	r.Attrs(func(a slog.Attr) bool { m[a.Key] = a.Value.Any(); return true })
	l.store.mu.Lock()
	defer l.store.mu.Unlock()
	l.store.records = append(l.store.records, m)
	return nil
}

// WithAttrs returns a handler adding attrs to every record, kept in the same store.
func (l *Logs) WithAttrs(attrs []slog.Attr) slog.Handler {
	return &Logs{store: l.store, attrs: append(slices.Clip(l.attrs), attrs...)}
}

// WithGroup ignores the group: attributes stay top level.
func (l *Logs) WithGroup(string) slog.Handler { return l }

// Records returns the records kept so far, in order.
func (l *Logs) Records() []map[string]any {
	l.store.mu.Lock()
	defer l.store.mu.Unlock()
	return slices.Clone(l.store.records)
}

// Count returns how many records function logged with message msg.
func (l *Logs) Count(function, msg string) int {
	n := 0
	for _, r := range l.Records() {
		if r["msg"] == msg && r["function"] == function {
			n++
		}
	}
	return n
}

// ConnectionID returns the id ConnectFunction logged for the first
// connection of user sub, waiting up to 15 s for it.
func (l *Logs) ConnectionID(tb testing.TB, sub string) string {
	tb.Helper()
	for deadline := time.Now().Add(15 * time.Second); time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
		for _, r := range l.Records() {
			if r["msg"] == "connected" && r["function"] == "ConnectFunction" && r["userId"] == sub {
				if id, _ := r["connectionId"].(string); id != "" {
					return id
				}
			}
		}
	}
	tb.Fatalf("ConnectFunction logged no connection of %s", sub)
	return ""
}

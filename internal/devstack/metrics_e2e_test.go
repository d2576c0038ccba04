package devstack_test

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"net/http"
	"slices"
	"sort"
	"sync"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/workorders/notify/internal/devstack"
	"github.com/workorders/notify/internal/metrics"
	"github.com/workorders/notify/internal/notify"
)

// TestMetricsE2E checks docs/PROTOCOL.md §9 from outside, in memory and on
// DynamoDB: real invocations (the SDK's Lambda client, real sockets) make
// the four functions write EMF objects, which the stack logs; the test parses
// them and holds their namespace, dimensions, names, units and values to
// what happened.
func TestMetricsE2E(t *testing.T) {
	runSuite(t, []suiteCase{
		{"PublishWithGone", testMetricsPublishWithGone},
		{"DuplicateAndRefusedPublish", testMetricsDuplicateAndRefused},
		{"Connects", testMetricsConnects},
		{"FramesAndDisconnect", testMetricsFrames},
	})
}

// emf returns the EMF objects function has logged so far, in order.
func emfOf(t *testing.T, l *logCapture, function string) []metrics.Parsed {
	t.Helper()
	var out []metrics.Parsed
	for _, r := range l.Records() {
		if r["msg"] != "metrics" || r["function"] != function {
			continue
		}
		line, ok := r["emf"].(string)
		if !ok {
			t.Fatalf("metrics record without an emf string: %v", r)
		}
		p, err := metrics.Parse([]byte(line))
		if err != nil {
			t.Fatalf("metrics record %s: %v", line, err)
		}
		out = append(out, p)
	}
	return out
}

// waitEMF waits until function has logged n EMF objects (one per
// invocation: never more) and returns the last.
func (s *stack) waitEMF(t *testing.T, function string, n int) metrics.Parsed {
	t.Helper()
	var got []metrics.Parsed
	eventually(t, fmt.Sprintf("%s logged %d EMF objects", function, n), func() bool {
		got = emfOf(t, s.logs, function)
		return len(got) >= n
	})
	if len(got) != n {
		t.Fatalf("%s logged %d EMF objects, want %d (one per invocation)", function, len(got), n)
	}
	return got[n-1]
}

// wantEMF is what one object must hold, exactly: its namespace, function,
// extra dimension (name → value), counts, and latencies (present, in
// Milliseconds, not negative; their values are not predictable).
type wantEMF struct {
	namespace string
	function  string
	dimension map[string]string
	counts    map[string]float64
	latencies []string
}

func checkEMF(t *testing.T, p metrics.Parsed, w wantEMF, since time.Time) {
	t.Helper()
	if p.Namespace != w.namespace {
		t.Errorf("namespace %q, want %q", p.Namespace, w.namespace)
	}
	if p.Timestamp.Before(since.Truncate(time.Millisecond)) || p.Timestamp.After(time.Now()) {
		t.Errorf("timestamp %s, not within the test (since %s)", p.Timestamp, since)
	}
	wantDims := [][]string{{"Function"}}
	wantStrings := map[string]string{"Function": w.function}
	for _, name := range slices.Sorted(maps.Keys(w.dimension)) {
		wantDims = append(wantDims, []string{"Function", name})
		wantStrings[name] = w.dimension[name]
	}
	if !slices.EqualFunc(p.Dimensions, wantDims, slices.Equal) {
		t.Errorf("dimensions %v, want %v", p.Dimensions, wantDims)
	}
	if !maps.Equal(p.Strings, wantStrings) {
		t.Errorf("dimension values %v, want %v", p.Strings, wantStrings)
	}
	wantUnits := map[string]metrics.Unit{}
	for name := range w.counts {
		wantUnits[name] = metrics.Count
	}
	for _, name := range w.latencies {
		wantUnits[name] = metrics.Milliseconds
	}
	if !maps.Equal(p.Units, wantUnits) {
		t.Errorf("metrics declared %v, want %v", p.Units, wantUnits)
	}
	if len(p.Values) != len(wantUnits) {
		t.Errorf("values %v, want one for each of %v", p.Values, slices.Sorted(maps.Keys(wantUnits)))
	}
	for name, v := range w.counts {
		if got, ok := p.Values[name]; !ok || got != v {
			t.Errorf("%s = %v (present %v), want %v", name, got, ok, v)
		}
	}
	for _, name := range w.latencies {
		if got, ok := p.Values[name]; !ok || got < 0 {
			t.Errorf("%s = %v (present %v), want a duration in ms", name, got, ok)
		}
	}
}

// publishCounts are PublishFunction's counts, all given.
func publishCounts(publishes, deliveries, gone, failed, duplicates, fanout float64) map[string]float64 {
	return map[string]float64{
		"Publishes": publishes, "Deliveries": deliveries, "Gone": gone, "Failed": failed,
		"Throttled": 0, "Duplicates": duplicates, "FanoutConnections": fanout,
	}
}

// faultyStore wraps every function's connection store: a $disconnect's
// delete of a connection listed in lose is lost (as when a $disconnect never
// runs), and storing a connection of a user in failSave fails.
type faultyStore struct {
	notify.ConnectionStore
	*faults
}

type faults struct {
	mu       sync.Mutex
	lose     map[string]bool
	failSave map[string]bool
}

func (f *faults) loseDeleteOf(id string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.lose[id] = true
}

func (s faultyStore) DeleteConnection(ctx context.Context, id string) error {
	s.mu.Lock()
	lost := s.lose[id]
	s.mu.Unlock()
	if lost {
		return nil
	}
	return s.ConnectionStore.DeleteConnection(ctx, id)
}

func (s faultyStore) SaveConnection(ctx context.Context, c notify.Connection) error {
	s.mu.Lock()
	fail := s.failSave[c.UserID]
	s.mu.Unlock()
	if fail {
		return errors.New("injected storage failure")
	}
	return s.ConnectionStore.SaveConnection(ctx, c)
}

func startFaultyStack(t *testing.T, b backend, env map[string]string) (*stack, *faults) {
	f := &faults{lose: map[string]bool{}, failSave: map[string]bool{}}
	s := startStack(t, b, env, func(o *devstack.Options) {
		o.WrapConnections = func(c notify.ConnectionStore) notify.ConnectionStore { return faultyStore{c, f} }
	})
	return s, f
}

// A publish to 3 connections of which 1 is gone (its socket closed, its
// $disconnect's delete lost): Deliveries 2, Gone 1, FanoutConnections 3.
// The $disconnect itself is Disconnects 1.
func testMetricsPublishWithGone(t *testing.T, b backend) {
	since := time.Now()
	s, f := startFaultyStack(t, b, nil)
	var clients []*client
	for _, u := range []string{"u-m1", "u-m2", "u-m3"} {
		clients = append(clients, s.connect(t, u, "team:metrics"))
	}
	f.loseDeleteOf(s.logs.ConnectionID(t, "u-m3"))
	if err := clients[2].conn.Close(websocket.StatusNormalClosure, "bye"); err != nil {
		t.Fatal(err)
	}
	checkEMF(t, s.waitEMF(t, "DisconnectFunction", 1), wantEMF{
		namespace: "WorkOrderNotify", function: "DisconnectFunction",
		counts: map[string]float64{"Disconnects": 1},
	}, since)

	res := s.publish(t, `{"groups":["team:metrics"],"notification":{"type":"t"}}`)
	if res.Connections != 3 || res.Delivered != 2 || res.Gone != 1 || res.Failed != 0 {
		t.Fatalf("publish = %+v, want 3 connections, 2 delivered, 1 gone", res)
	}
	p := s.waitEMF(t, "PublishFunction", 1)
	checkEMF(t, p, wantEMF{
		namespace: "WorkOrderNotify", function: "PublishFunction",
		counts:    publishCounts(1, 2, 1, 0, 0, 3),
		latencies: []string{"PublishLatency", "StoreLatency"},
	}, since)
	if p.Values["StoreLatency"] > p.Values["PublishLatency"] {
		t.Errorf("StoreLatency %v > PublishLatency %v: the store is part of the publish", p.Values["StoreLatency"], p.Values["PublishLatency"])
	}
	for _, c := range clients[:2] {
		c.nextOfType(t, "notification")
	}
	// Three connects, each one object: Connects 1.
	s.waitEMF(t, "ConnectFunction", 3)
	for _, o := range emfOf(t, s.logs, "ConnectFunction") {
		checkEMF(t, o, wantEMF{namespace: "WorkOrderNotify", function: "ConnectFunction",
			counts: map[string]float64{"Connects": 1, "ConnectsRefused": 0}}, since)
	}
}

// A repeated idempotencyKey: Duplicates 1 and no StoreLatency (nothing was
// stored); a ValidationError: all zeros, no latency.
func testMetricsDuplicateAndRefused(t *testing.T, b backend) {
	since := time.Now()
	s := startStack(t, b, nil, nil)
	c := s.connect(t, "u-dup-m")
	payload := `{"users":["u-dup-m"],"idempotencyKey":"k-1","notification":{"type":"t"}}`
	first := s.publish(t, payload)
	checkEMF(t, s.waitEMF(t, "PublishFunction", 1), wantEMF{
		namespace: "WorkOrderNotify", function: "PublishFunction",
		counts:    publishCounts(1, 1, 0, 0, 0, 1),
		latencies: []string{"PublishLatency", "StoreLatency"},
	}, since)
	c.nextOfType(t, "notification")

	if again := s.publish(t, payload); !again.Duplicate || again.ID != first.ID {
		t.Fatalf("second publish = %+v, want the duplicate of %s", again, first.ID)
	}
	checkEMF(t, s.waitEMF(t, "PublishFunction", 2), wantEMF{
		namespace: "WorkOrderNotify", function: "PublishFunction",
		counts:    publishCounts(1, 0, 0, 0, 1, 0),
		latencies: []string{"PublishLatency"},
	}, since)

	if out := s.invoke(t, `{"users":["u-dup-m"]}`); out.FunctionError == nil {
		t.Fatalf("publish without a notification: %s, want a ValidationError", out.Payload)
	}
	checkEMF(t, s.waitEMF(t, "PublishFunction", 3), wantEMF{
		namespace: "WorkOrderNotify", function: "PublishFunction",
		counts: publishCounts(0, 0, 0, 0, 0, 0),
	}, since)
	c.nothingMore(t)
}

// Connects and refusals by reason, under a METRICS_NAMESPACE of the
// environment: origin (403), token (401), revoked (401, after a disconnect
// request, whose own object counts no publish), storage (500).
func testMetricsConnects(t *testing.T, b backend) {
	since := time.Now()
	const ns = "Test/Notify Metrics"
	s, f := startFaultyStack(t, b, map[string]string{
		"ALLOWED_ORIGINS": "https://app.example.com", "METRICS_NAMESPACE": ns,
	})
	if got := s.FunctionEnv("PublishFunction")["METRICS_NAMESPACE"]; got != ns {
		t.Fatalf("PublishFunction's METRICS_NAMESPACE = %q, want the environment's %q", got, ns)
	}
	origin := http.Header{"Origin": {"https://app.example.com"}}
	issued := time.Now().Add(-5 * time.Second)
	oldToken := s.signed(t, "u-conn-rev", issued, issued.Add(time.Hour))
	f.mu.Lock()
	f.failSave["u-conn-storage"] = true
	f.mu.Unlock()

	n := 0
	connect := func(what, token string, header http.Header, wantStatus int, reason string) {
		t.Helper()
		c, status, body := s.dial(t, token, header)
		if c != nil {
			status = http.StatusSwitchingProtocols
		}
		if status != wantStatus {
			t.Fatalf("%s: status %d %s, want %d", what, status, body, wantStatus)
		}
		n++
		w := wantEMF{namespace: ns, function: "ConnectFunction",
			counts: map[string]float64{"Connects": 1, "ConnectsRefused": 0}}
		if reason != "" {
			w.counts = map[string]float64{"Connects": 0, "ConnectsRefused": 1}
			w.dimension = map[string]string{"Reason": reason}
		}
		checkEMF(t, s.waitEMF(t, "ConnectFunction", n), w, since)
	}
	connect("allowed", s.token(t, "u-conn-ok"), origin, http.StatusSwitchingProtocols, "")
	connect("bad origin", s.token(t, "u-conn-origin"), http.Header{"Origin": {"https://evil.example.com"}}, http.StatusForbidden, "origin")
	connect("bad token", "not-a-jwt", origin, http.StatusUnauthorized, "token")
	connect("storage failure", s.token(t, "u-conn-storage"), origin, http.StatusInternalServerError, "storage")
	connect("before revocation", oldToken, origin, http.StatusSwitchingProtocols, "")

	res := s.disconnect(t, `{"users":["u-conn-rev"],"disconnect":{"reason":"signed out"}}`)
	if res["connections"] != 1 || res["disconnected"] != 1 {
		t.Fatalf("disconnect = %v, want 1 connection closed", res)
	}
	// A disconnect request is not a publish: no publish, no delivery, no
	// latency; its gone and failed closes (none here) count.
	checkEMF(t, s.waitEMF(t, "PublishFunction", 1), wantEMF{
		namespace: ns, function: "PublishFunction", counts: publishCounts(0, 0, 0, 0, 0, 0),
	}, since)
	connect("revoked", oldToken, origin, http.StatusUnauthorized, "revoked")
}

// Frames by action, frame errors, and a $disconnect.
func testMetricsFrames(t *testing.T, b backend) {
	since := time.Now()
	s := startStack(t, b, nil, nil)
	c := s.connect(t, "u-frames")
	for i, tc := range []struct {
		frame, answer, action string
		errors                float64
	}{
		{`{"action":"ping","ref":"p"}`, "pong", "ping", 0},
		{`{"action":"sync"}`, "synced", "sync", 0},
		{`{"action":"read","all":true}`, "read", "read", 0},
		{`{"action":"sync","limit":0}`, "error", "sync", 1},
		{`{"action":"launch"}`, "error", "invalid", 1},
		{`{"ref":"no action"}`, "error", "invalid", 1},
		{`not json`, "error", "invalid", 1},
	} {
		c.send(t, tc.frame)
		c.nextOfType(t, tc.answer)
		checkEMF(t, s.waitEMF(t, "DefaultFunction", i+1), wantEMF{
			namespace: "WorkOrderNotify", function: "DefaultFunction",
			dimension: map[string]string{"Action": tc.action},
			counts:    map[string]float64{"Frames": 1, "FrameErrors": tc.errors},
		}, since)
	}
	if err := c.conn.Close(websocket.StatusNormalClosure, "bye"); err != nil {
		t.Fatal(err)
	}
	checkEMF(t, s.waitEMF(t, "DisconnectFunction", 1), wantEMF{
		namespace: "WorkOrderNotify", function: "DisconnectFunction",
		counts: map[string]float64{"Disconnects": 1},
	}, since)
	// Every object of the stack's log parsed; none came from another
	// function than the four.
	var functions []string
	for _, r := range s.logs.Records() {
		if r["msg"] == "metrics" {
			functions = append(functions, fmt.Sprint(r["function"]))
		}
	}
	sort.Strings(functions)
	if want := []string{"ConnectFunction", "DefaultFunction", "DefaultFunction", "DefaultFunction", "DefaultFunction",
		"DefaultFunction", "DefaultFunction", "DefaultFunction", "DisconnectFunction"}; !slices.Equal(functions, want) {
		t.Errorf("metrics records by function %v, want %v", functions, want)
	}
}

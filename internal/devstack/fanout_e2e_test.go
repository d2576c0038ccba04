package devstack_test

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/workorders/notify/internal/devstack"
)

// TestFanoutE2E checks the sharded fan-out from outside, in memory and on
// DynamoDB: PublishFunction hands batches to FanoutFunction through the
// stack's own Lambda Invoke API, over real sockets.
func TestFanoutE2E(t *testing.T) {
	runSuite(t, []suiteCase{
		{"ShardedMatchesUnsharded", testFanoutMatchesUnsharded},
		{"BatchTimeoutCountedFailed", testFanoutTimeout},
	})
}

// crew connects n clients, users u0..u(n-1), all in group crew.
func (s *stack) crew(t *testing.T, n int) []*client {
	clients := make([]*client, n)
	for i := range clients {
		clients[i] = s.connect(t, fmt.Sprint("u", i), "crew")
	}
	return clients
}

// A publish over FANOUT_THRESHOLD connections answers exactly what one
// under it answers, every socket gets the frame once, and the batches were
// FanoutFunction invocations; under the threshold nothing is invoked.
func testFanoutMatchesUnsharded(t *testing.T, b backend) {
	const body = `{"groups":["crew"],"users":["u1","ghost"],"notification":{"type":"work_order.assigned","title":"Pump <3> & valve"}}`
	answers := map[string]publishResult{}
	for _, mode := range []string{"sharded", "unsharded"} {
		env := map[string]string{"FANOUT_THRESHOLD": "4", "FANOUT_BATCH_SIZE": "3"}
		if mode == "unsharded" {
			env["FANOUT_THRESHOLD"] = "100000"
		}
		s := startStack(t, b, env, nil)
		clients := s.crew(t, 10)
		res := s.publish(t, body)
		answers[mode] = res
		for i, c := range clients {
			n := c.nextOfType(t, "notification")["notification"].(map[string]any)
			if n["id"] != res.ID || n["title"] != "Pump <3> & valve" {
				t.Errorf("%s: client %d got %v, want %s", mode, i, n, res.ID)
			}
			c.nothingMore(t)
		}
		batches := s.logs.Count("FanoutFunction", "fanned out")
		if want := map[string]int{"sharded": 4, "unsharded": 0}[mode]; batches != want {
			t.Errorf("%s: %d FanoutFunction invocations, want %d (10 connections in batches of 3)", mode, batches, want)
		}
		if mode == "sharded" {
			// The metrics: PublishFunction's are the totals; the four
			// FanoutFunction objects add up to them.
			pub := s.waitEMF(t, "PublishFunction", 1)
			var fanned float64
			for _, m := range emfOf(t, s.logs, "FanoutFunction") {
				if m.Strings["Function"] != "FanoutFunction" || m.Units["Deliveries"] != "Count" {
					t.Errorf("FanoutFunction EMF %+v", m)
				}
				fanned += m.Values["Deliveries"]
			}
			if pub.Values["Deliveries"] != 10 || pub.Values["FanoutConnections"] != 10 || fanned != 10 {
				t.Errorf("Deliveries: PublishFunction %v (FanoutConnections %v), FanoutFunction's sum %v; want 10 each",
					pub.Values["Deliveries"], pub.Values["FanoutConnections"], fanned)
			}
			// Under the threshold: the publisher posts itself, no invoke.
			one := s.publish(t, `{"users":["u2"],"notification":{"type":"t"}}`)
			if one.Connections != 1 || one.Delivered != 1 || s.logs.Count("FanoutFunction", "fanned out") != batches {
				t.Errorf("a one-user publish: %+v, and it invoked FanoutFunction", one)
			}
			clients[2].nextOfType(t, "notification")
		}
	}
	got, want := answers["sharded"], answers["unsharded"]
	if want.Connections != 10 || want.Delivered != 10 || !slices.Equal(want.OfflineUsers, []string{"ghost"}) {
		t.Errorf("unsharded answer %+v, want 10 delivered and ghost offline", want)
	}
	if got.Connections != want.Connections || got.Delivered != want.Delivered || got.Gone != want.Gone ||
		got.Failed != want.Failed || !slices.Equal(got.OfflineUsers, want.OfflineUsers) {
		t.Errorf("sharded answer %+v, unsharded %+v", got, want)
	}
}

// A FanoutFunction without the time to send (Timeout 1 s, posts taking
// 1.5 s) answers its batch's connections failed before it would time out;
// the notification is stored all the same and a sync returns it.
func testFanoutTimeout(t *testing.T, b backend) {
	tmpl, err := os.ReadFile(repoTemplate(t))
	if err != nil {
		t.Fatal(err)
	}
	const fanoutTimeout = "      Timeout: 30\n" // FanoutFunction's, the only one of 30 s
	if strings.Count(string(tmpl), fanoutTimeout) != 1 {
		t.Fatalf("template.yaml: want exactly one %q (FanoutFunction's)", fanoutTimeout)
	}
	path := filepath.Join(t.TempDir(), "template.yaml")
	if err := os.WriteFile(path, []byte(strings.Replace(string(tmpl), fanoutTimeout, "      Timeout: 1\n", 1)), 0o600); err != nil {
		t.Fatal(err)
	}
	env := map[string]string{"FANOUT_THRESHOLD": "2", "FANOUT_BATCH_SIZE": "2", "PUBLISH_CONCURRENCY": "1"}
	s := startStack(t, b, env, func(o *devstack.Options) {
		o.TemplatePath = path
		o.PostDelay = 1500 * time.Millisecond
	})
	clients := s.crew(t, 3)
	res := s.publish(t, `{"groups":["crew"],"notification":{"type":"t"}}`)
	if res.Connections != 3 || res.Failed != 3 || res.Delivered != 0 {
		t.Errorf("answer %+v, want 3 connections, all failed", res)
	}
	// Each batch answered in time, its connections failed, rather than
	// timing out: FanoutFunction keeps a second of its timeout to answer.
	var failed float64
	for _, m := range emfOf(t, s.logs, "FanoutFunction") {
		failed += m.Values["Failed"]
	}
	if batches := s.logs.Count("FanoutFunction", "fanned out"); batches != 2 || failed != 3 {
		t.Errorf("%d batches answered with %v failed, want 2 batches, 3 failed", batches, failed)
	}
	clients[0].send(t, `{"action":"sync","ref":"after-timeout"}`)
	for {
		m := clients[0].next(t)
		if m["type"] != "synced" {
			continue // the timed-out batch's frame may still arrive first
		}
		ns, _ := m["notifications"].([]any)
		if len(ns) != 1 || ns[0].(map[string]any)["id"] != res.ID {
			t.Errorf("synced %v, want the notification %s", m, res.ID)
		}
		break
	}
}

// repoTemplate is the repository's template.yaml.
func repoTemplate(t *testing.T) string {
	path, err := devstack.FindTemplate("")
	if err != nil {
		t.Fatal(err)
	}
	return path
}

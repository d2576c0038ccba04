package devstack_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/lambda"
	"github.com/coder/websocket"

	"github.com/workorders/notify/internal/devstack"
	"github.com/workorders/notify/internal/notify"
)

// TestInboxE2E is issue 4 end to end (docs/PROTOCOL.md §5): nothing is lost while
// a socket is down, read state reaches every tab, and idempotency holds under
// concurrency. Black box, like TestStack: real WebSocket clients and the
// SDK's Lambda client, once in memory and once on DynamoDB (dynalite).
func TestInboxE2E(t *testing.T) { runSuite(t, inboxSuite) }

var inboxSuite = []suiteCase{
	{"ResumeAfterOffline", testResumeAfterOffline},
	{"SyncNeverConnected", testSyncNeverConnected},
	{"DroppedMidStreamPages", testDroppedMidStreamPages},
	{"HeldBackStore", testHeldBackStore},
	{"ReadUnread", testReadUnread},
	{"ConcurrentIdempotency", testConcurrentIdempotency},
	{"DuplicateOfAFailedPublish", testDuplicateOfAFailedPublish},
	{"ReadAllSparesWhatIsNotStoredYet", testReadAllSparesUnstored},
}

// note is a notification as frames carry it: Read, this user's read flag,
// in synced frames only.
type note struct {
	ID    string `json:"id"`
	Type  string `json:"type"`
	Title string `json:"title"`
	Read  *bool  `json:"read"`
}

// synced is a `synced` frame.
type synced struct {
	Type          string `json:"type"`
	Notifications []note `json:"notifications"`
	Cursor        string `json:"cursor"`
	More          bool   `json:"more"`
	Gap           bool   `json:"gap"`
	Unread        int    `json:"unread"`
	Ref           string `json:"ref"`
}

// readAnswer is a `read` frame.
type readAnswer struct {
	Type   string   `json:"type"`
	IDs    []string `json:"ids"`
	Unread int      `json:"unread"`
	Ref    *string  `json:"ref"`
}

// nextInto decodes the next frame into v and fails unless its type is typ.
func (c *client) nextInto(t *testing.T, typ string, v any) {
	t.Helper()
	m := c.next(t)
	if m["type"] != typ {
		t.Fatalf("got frame %v, want type %q", m, typ)
	}
	data, _ := json.Marshal(m)
	if err := json.Unmarshal(data, v); err != nil {
		t.Fatalf("frame %s: %v", data, err)
	}
}

// sync sends a sync frame and returns its answer, checking what holds for
// every synced frame: ids strictly ascending, and the cursor the last id (or
// wantEmptyCursor when there is none).
func (c *client) sync(t *testing.T, frame, wantEmptyCursor string) synced {
	t.Helper()
	c.send(t, frame)
	var s synced
	c.nextInto(t, "synced", &s)
	ids := noteIDs(s.Notifications)
	for i := 1; i < len(ids); i++ {
		if ids[i-1] >= ids[i] {
			t.Fatalf("%s: ids not strictly ascending: %v", frame, ids)
		}
	}
	for _, n := range s.Notifications {
		if n.Read == nil {
			t.Fatalf("%s: notification %s without its read flag", frame, n.ID)
		}
	}
	want := wantEmptyCursor
	if len(ids) > 0 {
		want = ids[len(ids)-1]
	}
	if s.Cursor != want {
		t.Fatalf("%s: cursor %q, want %q (frame %+v)", frame, s.Cursor, want, s)
	}
	if s.Gap {
		t.Fatalf("%s: gap with nothing older than retention: %+v", frame, s)
	}
	return s
}

// resume is what a client does after a drop: sync after the last id it saw,
// then follow the cursor while more, with limit per frame. It returns every
// id received, in order, and checks that pages after the first do not
// overlap (cursor continues strictly after).
func (c *client) resume(t *testing.T, after string, limit int) []string {
	t.Helper()
	lim := ""
	if limit > 0 {
		lim = fmt.Sprintf(`,"limit":%d`, limit)
	}
	s := c.sync(t, `{"action":"sync","after":"`+after+`"`+lim+`}`, after)
	all := noteIDs(s.Notifications)
	for pages := 1; s.More; pages++ {
		if len(s.Notifications) == 0 {
			t.Fatalf("more:true on an empty frame %+v", s)
		}
		if pages > 100 {
			t.Fatal("more:true for 100 frames")
		}
		if limit > 0 && len(s.Notifications) > limit {
			t.Fatalf("frame of %d notifications, limit %d", len(s.Notifications), limit)
		}
		cursor := s.Cursor
		s = c.sync(t, `{"action":"sync","cursor":"`+cursor+`"`+lim+`}`, cursor)
		if ids := noteIDs(s.Notifications); len(ids) > 0 && ids[0] <= cursor {
			t.Fatalf("page after cursor %s starts at %s", cursor, ids[0])
		}
		all = append(all, noteIDs(s.Notifications)...)
	}
	return all
}

// newSince is the client's dedupe: the ids it did not already have, each
// once, in the order received.
func newSince(received []string, had ...string) []string {
	seen := make(map[string]bool)
	for _, id := range had {
		seen[id] = true
	}
	var out []string
	for _, id := range received {
		if !seen[id] {
			seen[id] = true
			out = append(out, id)
		}
	}
	return out
}

func noteIDs(ns []note) []string {
	ids := make([]string, 0, len(ns))
	for _, n := range ns {
		ids = append(ids, n.ID)
	}
	return ids
}

// live reads the next notification frame and returns its id.
func (c *client) live(t *testing.T) string {
	t.Helper()
	var f struct {
		Notification note `json:"notification"`
	}
	c.nextInto(t, "notification", &f)
	if f.Notification.Read != nil {
		t.Fatalf("live notification %s carries read: %v", f.Notification.ID, *f.Notification.Read)
	}
	return f.Notification.ID
}

// readIDs returns the ids of ns whose read flag is true.
func readIDs(ns []note) []string {
	out := []string{}
	for _, n := range ns {
		if n.Read != nil && *n.Read {
			out = append(out, n.ID)
		}
	}
	return out
}

// drop closes the socket and waits until the gateway has seen the close
// (its $disconnect ran): a post answers once queued (PROTOCOL.md §7), so
// one racing the close handshake could still be accepted.
func (c *client) drop(t *testing.T) {
	t.Helper()
	before := c.logs.Count("DisconnectFunction", "disconnected")
	if err := c.conn.Close(websocket.StatusNormalClosure, "drop"); err != nil {
		t.Fatalf("close: %v", err)
	}
	eventually(t, "the stack ran $disconnect", func() bool { return c.logs.Count("DisconnectFunction", "disconnected") > before })
}

func ascending(t *testing.T, what string, ids ...string) {
	t.Helper()
	if !slices.IsSorted(ids) || len(slices.Compact(slices.Clone(ids))) != len(ids) {
		t.Fatalf("%s: ids %v are not strictly ascending in publish order", what, ids)
	}
}

// 1. A user offline during three publishes (to its user, one of its groups,
// and broadcast) resumes after the last id it saw and gets exactly those
// three, in order, once each, after dropping what it already had.
func testResumeAfterOffline(t *testing.T, b backend) {
	s := startStack(t, b, nil, nil)
	c := s.connect(t, "u-a", "team:a")
	older := s.publish(t, `{"users":["u-a"],"notification":{"type":"seen.older"}}`).ID
	last := s.publish(t, `{"groups":["team:a"],"notification":{"type":"seen.last"}}`).ID
	if got := []string{c.live(t), c.live(t)}; !slices.Equal(got, []string{older, last}) {
		t.Fatalf("live ids %v, want %v", got, []string{older, last})
	}
	c.drop(t)

	var missed []string
	for _, p := range []string{
		`{"users":["u-a"],"notification":{"type":"missed.user"}}`,
		`{"users":["u-other"],"notification":{"type":"not.mine"}}`,
		`{"groups":["team:a"],"notification":{"type":"missed.group"}}`,
		`{"groups":["team:b","u-a"],"notification":{"type":"not.mine"}}`,
		`{"broadcast":true,"notification":{"type":"missed.broadcast"}}`,
	} {
		res := s.publish(t, p)
		if res.Delivered != 0 {
			t.Fatalf("publish %s while u-a is offline: %+v", p, res)
		}
		if !strings.Contains(p, "not.mine") {
			missed = append(missed, res.ID)
		}
	}
	ascending(t, "seen then missed", append([]string{older, last}, missed...)...)

	c = s.connect(t, "u-a", "team:a")
	got := c.resume(t, last, 0)
	if fresh := newSince(got, older, last); !slices.Equal(fresh, missed) {
		t.Fatalf("resume after %s: received %v, new to the client %v, want exactly %v", last, got, fresh, missed)
	}
	c.nothingMore(t)
}

// 1b. A user who never connected gets its notifications from a plain sync.
func testSyncNeverConnected(t *testing.T, b backend) {
	s := startStack(t, b, nil, nil)
	var missed []string
	for i, p := range []string{
		`{"users":["u-new"],"notification":{"type":"first"}}`,
		`{"users":["u-someone"],"notification":{"type":"not.mine"}}`,
		`{"users":["u-new","u-someone"],"notification":{"type":"second"}}`,
		`{"users":["u-new"],"groups":["team:x"],"notification":{"type":"third"}}`,
	} {
		res := s.publish(t, p)
		if res.Connections != 0 {
			t.Fatalf("publish %d: %+v, want nobody connected", i, res)
		}
		if i != 1 {
			missed = append(missed, res.ID)
		}
	}
	ascending(t, "published", missed...)

	c := s.connect(t, "u-new")
	got := c.sync(t, `{"action":"sync","ref":"first-sync"}`, "")
	if ids := noteIDs(got.Notifications); !slices.Equal(ids, missed) {
		t.Fatalf("plain sync: %v, want exactly %v", ids, missed)
	}
	if got.More || got.Unread != 3 || got.Ref != "first-sync" {
		t.Fatalf("plain sync: %+v, want more false, unread 3, ref first-sync", got)
	}
	if got.Notifications[0].Type != "first" || got.Notifications[2].Type != "third" {
		t.Fatalf("plain sync notifications %+v", got.Notifications)
	}
	c.nothingMore(t)
}

// 2. A socket that received some notifications live and then dropped pages
// through what it missed with a small limit: exactly that, in order, once.
func testDroppedMidStreamPages(t *testing.T, b backend) {
	s := startStack(t, b, nil, nil)
	c := s.connect(t, "u-mid")
	var seen []string
	for i := range 3 {
		id := s.publish(t, fmt.Sprintf(`{"users":["u-mid"],"notification":{"type":"live","title":"live %d"}}`, i)).ID
		if got := c.live(t); got != id {
			t.Fatalf("live notification %s, want %s", got, id)
		}
		seen = append(seen, id)
	}
	c.drop(t)
	var missed []string
	for i := range 7 {
		missed = append(missed, s.publish(t, fmt.Sprintf(`{"users":["u-mid"],"notification":{"type":"missed","title":"missed %d"}}`, i)).ID)
	}
	ascending(t, "seen then missed", append(slices.Clone(seen), missed...)...)

	c = s.connect(t, "u-mid")
	last := seen[len(seen)-1]
	got := c.resume(t, last, 3)
	if len(got) < len(missed)+1 {
		t.Fatalf("resume with limit 3 got %v: fewer than the missed ones", got)
	}
	if fresh := newSince(got, seen...); !slices.Equal(fresh, missed) {
		t.Fatalf("resume after %s, limit 3: received %v, new to the client %v, want exactly %v", last, got, fresh, missed)
	}
	// Across pages, nothing came twice (only the first frame overlaps what
	// the client had, by design).
	if len(slices.Compact(slices.Clone(got))) != len(got) || !slices.IsSorted(got) {
		t.Fatalf("resume pages %v: duplicates or out of order", got)
	}
	c.nothingMore(t)
}

// holder is the held-back store: WrapInbox gives every function an inbox
// whose AppendNotification, for a notification titled title, waits for
// release (it says which id it holds on entered).
type holder struct {
	title   string
	entered chan string
	release chan struct{}
}

func (h *holder) wrap(in notify.InboxStore) notify.InboxStore { return &holdingInbox{in, h} }

type holdingInbox struct {
	notify.InboxStore
	h *holder
}

func (w *holdingInbox) AppendNotification(ctx context.Context, n notify.StoredNotification, streams []string, expiresAt time.Time) error {
	var p struct {
		Title string `json:"title"`
	}
	if json.Unmarshal(n.Payload, &p) == nil && p.Title == w.h.title {
		select {
		case w.h.entered <- n.ID:
		default:
		}
		select {
		case <-w.h.release:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	return w.InboxStore.AppendNotification(ctx, n, streams, expiresAt)
}

// 3. A publish whose store write is held back gets the smaller id, yet is
// stored after a later one; a client that resumes after the later id still
// gets it, thanks to the 30-second overlap.
func testHeldBackStore(t *testing.T, b backend) {
	h := &holder{title: "held", entered: make(chan string, 1), release: make(chan struct{})}
	s := startStack(t, b, nil, func(o *devstack.Options) { o.WrapInbox = h.wrap })
	var releaseOnce sync.Once
	release := func() { releaseOnce.Do(func() { close(h.release) }) }
	t.Cleanup(release)

	c := s.connect(t, "u-held")
	type outcome struct {
		res publishResult
		err error
	}
	heldDone := make(chan outcome, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), wait)
		defer cancel()
		out, err := s.lambda.Invoke(ctx, &lambda.InvokeInput{
			FunctionName: aws.String("PublishFunction"),
			Payload:      []byte(`{"users":["u-held"],"notification":{"type":"slow.store","title":"held"}}`),
		})
		var o outcome
		switch {
		case err != nil:
			o.err = err
		case out.FunctionError != nil:
			o.err = fmt.Errorf("function error %s: %s", *out.FunctionError, out.Payload)
		default:
			o.err = json.Unmarshal(out.Payload, &o.res)
		}
		heldDone <- o
	}()
	var heldID string
	select {
	case heldID = <-h.entered:
	case o := <-heldDone:
		t.Fatalf("the held publish returned without being held: %+v", o)
	case <-time.After(wait):
		t.Fatal("the held publish never reached the inbox")
	}

	later := s.publish(t, `{"users":["u-held"],"notification":{"type":"fast.store","title":"later"}}`)
	if later.Delivered != 1 || later.ID <= heldID {
		t.Fatalf("later publish %+v: want it delivered, with an id above the held %s", later, heldID)
	}
	if got := c.live(t); got != later.ID {
		t.Fatalf("live %s, want the later %s", got, later.ID)
	}
	c.nothingMore(t) // the held one is not sent before it is stored
	c.drop(t)

	release()
	o := <-heldDone
	if o.err != nil {
		t.Fatalf("held publish: %v", o.err)
	}
	if o.res.ID != heldID || o.res.Delivered != 0 {
		t.Fatalf("held publish %+v: want id %s, delivered to nobody", o.res, heldID)
	}

	c = s.connect(t, "u-held")
	got := c.resume(t, later.ID, 0)
	if fresh := newSince(got, later.ID); !slices.Equal(fresh, []string{heldID}) {
		t.Fatalf("resume after %s: received %v, new to the client %v, want exactly the held %s", later.ID, got, fresh, heldID)
	}
	c.nothingMore(t)
}

// 4. read with ids, then read all: every socket of the user gets the same
// ids and unread count (the ref only on the asker); another user's unread
// count does not move.
func testReadUnread(t *testing.T, b backend) {
	s := startStack(t, b, nil, nil)
	tab1 := s.connect(t, "u-r")
	tab2 := s.connect(t, "u-r")
	other := s.connect(t, "u-o")
	var shared []string
	for i := range 3 {
		shared = append(shared, s.publish(t, fmt.Sprintf(`{"users":["u-r","u-o"],"notification":{"type":"shared %d"}}`, i)).ID)
	}
	onlyOther := s.publish(t, `{"users":["u-o"],"notification":{"type":"only.other"}}`).ID
	for _, c := range []*client{tab1, tab2} {
		for _, id := range shared {
			if got := c.live(t); got != id {
				t.Fatalf("live %s, want %s", got, id)
			}
		}
	}
	for _, id := range append(slices.Clone(shared), onlyOther) {
		if got := other.live(t); got != id {
			t.Fatalf("other user live %s, want %s", got, id)
		}
	}
	unreadOf := func(c *client) int {
		t.Helper()
		return c.sync(t, `{"action":"sync"}`, "").Unread
	}
	// readOf is what a reload shows: the ids a plain sync says are read.
	readOf := func(c *client) []string {
		t.Helper()
		return readIDs(c.sync(t, `{"action":"sync"}`, "").Notifications)
	}
	if n := unreadOf(tab1); n != 3 {
		t.Fatalf("u-r unread %d, want 3", n)
	}
	if got := readOf(tab1); len(got) != 0 {
		t.Fatalf("u-r read %v before reading, want none", got)
	}
	if n := unreadOf(other); n != 4 {
		t.Fatalf("u-o unread %d, want 4", n)
	}

	// ids: the other user's notification is not visible to u-r: ignored and
	// not echoed.
	tab1.send(t, `{"action":"read","ids":["`+shared[0]+`","`+onlyOther+`","`+shared[1]+`"],"ref":"r-1"}`)
	var own, peer readAnswer
	tab1.nextInto(t, "read", &own)
	tab2.nextInto(t, "read", &peer)
	want := []string{shared[0], shared[1]}
	if !slices.Equal(own.IDs, want) || own.Unread != 1 || own.Ref == nil || *own.Ref != "r-1" {
		t.Fatalf("read answer to the asker %+v, want ids %v, unread 1, ref r-1", own, want)
	}
	if !slices.Equal(peer.IDs, want) || peer.Unread != 1 || peer.Ref != nil {
		t.Fatalf("read answer to the other tab %+v, want ids %v, unread 1, no ref", peer, want)
	}
	other.nothingMore(t)
	if n := unreadOf(other); n != 4 {
		t.Fatalf("u-o unread %d after u-r read, want 4", n)
	}
	// After a reload, each item's own state: exactly those two read, for
	// u-r only; resuming shows the same.
	if got := readOf(tab2); !slices.Equal(got, want) {
		t.Fatalf("u-r's synced read flags: read %v, want exactly %v", got, want)
	}
	if got := readIDs(tab1.sync(t, `{"action":"sync","after":"`+shared[0]+`"}`, shared[0]).Notifications); !slices.Equal(got, want) {
		t.Fatalf("u-r's resumed read flags: read %v, want exactly %v", got, want)
	}
	if got := readOf(other); len(got) != 0 {
		t.Fatalf("u-o's synced read flags: read %v after u-r read, want none", got)
	}

	// all: from the other tab this time.
	tab2.send(t, `{"action":"read","all":true,"ref":"r-all"}`)
	own, peer = readAnswer{}, readAnswer{}
	tab2.nextInto(t, "read", &own)
	tab1.nextInto(t, "read", &peer)
	if own.IDs == nil || len(own.IDs) != 0 || own.Unread != 0 || own.Ref == nil || *own.Ref != "r-all" {
		t.Fatalf("read all answer to the asker %+v, want ids [], unread 0, ref r-all", own)
	}
	if peer.IDs == nil || len(peer.IDs) != 0 || peer.Unread != 0 || peer.Ref != nil {
		t.Fatalf("read all answer to the other tab %+v, want ids [], unread 0, no ref", peer)
	}
	other.nothingMore(t)
	if n := unreadOf(tab1); n != 0 {
		t.Fatalf("u-r unread %d after read all, want 0", n)
	}
	if got := readOf(tab1); !slices.Equal(got, shared) {
		t.Fatalf("u-r's synced read flags after read all: read %v, want all of %v", got, shared)
	}
	if got := readOf(other); len(got) != 0 {
		t.Fatalf("u-o's synced read flags after u-r read all: read %v, want none", got)
	}
	if n := unreadOf(other); n != 4 {
		t.Fatalf("u-o unread %d after u-r read all, want 4", n)
	}
	tab1.nothingMore(t)
	tab2.nothingMore(t)
}

// 5. Twenty concurrent publishes with one idempotencyKey: one id, one
// original, one frame on the socket.
func testConcurrentIdempotency(t *testing.T, b backend) {
	s := startStack(t, b, nil, nil)
	c := s.connect(t, "u-idem-c")
	const n = 20
	payload := []byte(`{"users":["u-idem-c"],"idempotencyKey":"wo-7-assigned-v1","notification":{"type":"workorder.assigned"}}`)
	results := make([]publishResult, n)
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			ctx, cancel := context.WithTimeout(context.Background(), wait)
			defer cancel()
			out, err := s.lambda.Invoke(ctx, &lambda.InvokeInput{FunctionName: aws.String("PublishFunction"), Payload: payload})
			switch {
			case err != nil:
				errs[i] = err
			case out.FunctionError != nil:
				errs[i] = fmt.Errorf("function error %s: %s", *out.FunctionError, out.Payload)
			default:
				errs[i] = json.Unmarshal(out.Payload, &results[i])
			}
		})
	}
	wg.Wait()
	originals := 0
	var original publishResult
	for i, r := range results {
		if errs[i] != nil {
			t.Fatalf("publish %d: %v", i, errs[i])
		}
		if r.ID == "" || r.ID != results[0].ID {
			t.Fatalf("publish %d id %q, publish 0 id %q: want one id", i, r.ID, results[0].ID)
		}
		if r.Duplicate {
			if r.Connections != 0 || r.Delivered != 0 || r.OfflineUsers == nil || len(r.OfflineUsers) != 0 {
				t.Fatalf("duplicate %d: %+v, want zero counts and offlineUsers []", i, r)
			}
			continue
		}
		originals++
		original = r
	}
	if originals != 1 {
		t.Fatalf("%d answers with duplicate:false, want exactly 1: %+v", originals, results)
	}
	if original.Delivered != 1 || len(original.OfflineUsers) != 0 {
		t.Fatalf("the original publish %+v, want delivered 1", original)
	}
	if got := c.live(t); got != original.ID {
		t.Fatalf("live %s, want %s", got, original.ID)
	}
	c.nothingMore(t)
	if got := c.sync(t, `{"action":"sync"}`, ""); !slices.Equal(noteIDs(got.Notifications), []string{original.ID}) {
		t.Fatalf("inbox holds %v, want only %s", noteIDs(got.Notifications), original.ID)
	}
}

// failFirstHeld holds the first store write of a notification titled
// h.title, then fails it; later writes pass.
type failFirstHeld struct {
	notify.InboxStore
	h    *holder
	once *sync.Once
	// pending hears of every claim that found the key held (its holder),
	// claimed of every claim that took it.
	pending, claimed chan string
}

func (w failFirstHeld) ClaimIdempotencyKey(ctx context.Context, key, holder string, expiresAt time.Time) (notify.IdempotencyClaim, error) {
	c, err := w.InboxStore.ClaimIdempotencyKey(ctx, key, holder, expiresAt)
	ch := w.pending
	if err == nil && c.Claimed {
		ch = w.claimed
	}
	if err == nil {
		select {
		case ch <- c.Holder:
		default:
		}
	}
	return c, err
}

func (w failFirstHeld) AppendNotification(ctx context.Context, n notify.StoredNotification, streams []string, expiresAt time.Time) error {
	var p struct {
		Title string `json:"title"`
	}
	first := false
	if json.Unmarshal(n.Payload, &p) == nil && p.Title == w.h.title {
		w.once.Do(func() { first = true })
	}
	if first {
		w.h.entered <- n.ID
		<-w.h.release
		return errors.New("injected store failure")
	}
	return w.InboxStore.AppendNotification(ctx, n, streams, expiresAt)
}

// A repeated publish that arrives while the first is still storing must
// not answer "duplicate" with an id that will never exist: when the first
// store fails, the repeat publishes itself, and the notification arrives
// once.
func testDuplicateOfAFailedPublish(t *testing.T, b backend) {
	h := &holder{title: "held", entered: make(chan string, 1), release: make(chan struct{})}
	once, pending, claimed := &sync.Once{}, make(chan string, 1), make(chan string, 1)
	s := startStack(t, b, nil, func(o *devstack.Options) {
		o.WrapInbox = func(in notify.InboxStore) notify.InboxStore { return failFirstHeld{in, h, once, pending, claimed} }
	})
	c := s.connect(t, "u-dup")
	body := `{"users":["u-dup"],"idempotencyKey":"wo-7-assigned","notification":{"type":"workorder.assigned","title":"held"}}`
	invoke := func(out chan<- *lambdaInvokeResult) {
		r, err := s.lambda.Invoke(context.Background(), &lambda.InvokeInput{FunctionName: aws.String("PublishFunction"), Payload: []byte(body)})
		out <- &lambdaInvokeResult{r, err}
	}
	firstDone, repeatDone := make(chan *lambdaInvokeResult, 1), make(chan *lambdaInvokeResult, 1)
	go invoke(firstDone)
	heldID := <-h.entered
	firstHolder := <-claimed
	go invoke(repeatDone)
	if holder := <-pending; holder != firstHolder { // the repeat found the key held by the first
		t.Fatalf("key held by %s, want the first call's claim %s", holder, firstHolder)
	}
	close(h.release)

	first := <-firstDone
	if first.err != nil || first.out.FunctionError == nil || !strings.Contains(string(first.out.Payload), "nothing was sent") {
		t.Fatalf("first publish = %+v, want a function error saying nothing was sent", first)
	}
	repeat := <-repeatDone
	if repeat.err != nil || repeat.out.FunctionError != nil {
		t.Fatalf("repeated publish failed: %+v", repeat)
	}
	var res publishResult
	if err := json.Unmarshal(repeat.out.Payload, &res); err != nil {
		t.Fatal(err)
	}
	if res.Duplicate || res.ID == heldID || res.Delivered != 1 {
		t.Fatalf("repeat = %s; want it published itself (the first, %s, was never stored)", repeat.out.Payload, heldID)
	}
	if got := c.live(t); got != res.ID {
		t.Errorf("received %s, want %s", got, res.ID)
	}
	c.nothingMore(t)
	if sy := c.sync(t, `{"action":"sync"}`, ""); len(sy.Notifications) != 1 || sy.Notifications[0].ID != res.ID {
		t.Errorf("inbox holds %v, want only %s", noteIDs(sy.Notifications), res.ID)
	}
}

type lambdaInvokeResult struct {
	out *lambda.InvokeOutput
	err error
}

// `read all` marks what is visible now; a notification whose id was minted
// before but whose store write had not finished is still unread when it
// arrives.
func testReadAllSparesUnstored(t *testing.T, b backend) {
	h := &holder{title: "held", entered: make(chan string, 1), release: make(chan struct{})}
	s := startStack(t, b, nil, func(o *devstack.Options) { o.WrapInbox = h.wrap })
	c := s.connect(t, "u-all")
	s.publish(t, `{"users":["u-all"],"notification":{"type":"t","title":"seen"}}`)
	c.live(t)
	done := make(chan struct{})
	go func() {
		defer close(done)
		_, _ = s.lambda.Invoke(context.Background(), &lambda.InvokeInput{FunctionName: aws.String("PublishFunction"),
			Payload: []byte(`{"users":["u-all"],"notification":{"type":"t","title":"held"}}`)})
	}()
	heldID := <-h.entered
	c.send(t, `{"action":"read","all":true}`)
	var r readAnswer
	c.nextInto(t, "read", &r)
	if r.Unread != 0 || len(r.IDs) != 0 {
		t.Errorf("read all = %+v, want ids [] and unread 0", r)
	}
	close(h.release)
	<-done
	if got := c.live(t); got != heldID {
		t.Fatalf("live %s, want the held %s", got, heldID)
	}
	if sy := c.sync(t, `{"action":"sync"}`, ""); sy.Unread != 1 {
		t.Errorf("unread after the held one arrived = %d, want 1 (it was not visible when all was read)", sy.Unread)
	}
}

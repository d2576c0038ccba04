package notify_test

import (
	"context"
	"encoding/json"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/workorders/notify/internal/memory"
	"github.com/workorders/notify/internal/notify"
)

// frameOf decodes the n-th frame id received.
func frameOf(t *testing.T, sender *recordingSender, id string, n int) map[string]any {
	t.Helper()
	sender.mu.Lock()
	defer sender.mu.Unlock()
	if len(sender.frames[id]) <= n {
		t.Fatalf("%s received %d frames, want at least %d", id, len(sender.frames[id]), n+1)
	}
	var m map[string]any
	if err := json.Unmarshal(sender.frames[id][n], &m); err != nil {
		t.Fatal(err)
	}
	return m
}

func connectAs(t *testing.T, s *notify.Service, sender notify.Sender, req notify.ConnectRequest) error {
	t.Helper()
	return s.Connect(context.Background(), sender, req)
}

func TestConnectionCapClosesTheOldest(t *testing.T) {
	s, store, sender := newService(t)
	s.MaxConnectionsPerUser = 2
	base := time.Now().Add(-time.Hour)
	for i, id := range []string{"a", "b", "c", "d"} {
		if err := connectAs(t, s, sender, notify.ConnectRequest{ID: id, UserID: "42", ConnectedAt: base.Add(time.Duration(i) * time.Minute)}); err != nil {
			t.Fatal(err)
		}
	}
	// Another user's sockets are not counted.
	if err := connectAs(t, s, sender, notify.ConnectRequest{ID: "other", UserID: "7", ConnectedAt: base}); err != nil {
		t.Fatal(err)
	}
	for _, id := range []string{"a", "b"} {
		f := frameOf(t, sender, id, 0)
		if f["type"] != "disconnected" || f["code"] != "too_many_connections" || f["reason"] != nil {
			t.Errorf("%s got %v, want a too_many_connections disconnected frame without reason", id, f)
		}
		if !sender.isClosed(id) {
			t.Errorf("%s was not closed", id)
		}
		if _, err := store.GetConnection(context.Background(), id); notify.ErrorCode(err) != notify.ENOTFOUND {
			t.Errorf("%s is still stored: %v", id, err)
		}
	}
	for _, id := range []string{"c", "d", "other"} {
		if sender.isClosed(id) || sender.count(id) != 0 {
			t.Errorf("%s was touched: closed %v, %d frames", id, sender.isClosed(id), sender.count(id))
		}
	}
}

// The new connection is never the one closed, even when its connect time
// sorts before the others' (clocks of different machines).
func TestConnectionCapKeepsTheNewOne(t *testing.T) {
	s, _, sender := newService(t)
	s.MaxConnectionsPerUser = 1
	now := time.Now()
	if err := connectAs(t, s, sender, notify.ConnectRequest{ID: "old", UserID: "42", ConnectedAt: now}); err != nil {
		t.Fatal(err)
	}
	if err := connectAs(t, s, sender, notify.ConnectRequest{ID: "new", UserID: "42", ConnectedAt: now.Add(-time.Second)}); err != nil {
		t.Fatal(err)
	}
	if !sender.isClosed("old") || sender.isClosed("new") {
		t.Errorf("closed old=%v new=%v, want only old", sender.isClosed("old"), sender.isClosed("new"))
	}
}

func TestDisconnectRequestRevokesUsers(t *testing.T) {
	s, store, sender := newService(t)
	old := time.Now().Add(-time.Minute)
	connect(t, s, "42a", "42", old)
	connect(t, s, "42b", "42", old, "team:plant-3")
	connect(t, s, "7", "7", old, "team:plant-3")
	connect(t, s, "9", "9", old)
	sender.gone["42b"] = true // dropped without its $disconnect

	req, err := notify.DecodePublishRequest([]byte(`{"users":["42"],"disconnect":{"reason":"signed out"}}`))
	if err != nil {
		t.Fatal(err)
	}
	issuedBefore := time.Now().Add(-2 * time.Second)
	res, err := s.DisconnectTargets(context.Background(), req)
	if err != nil {
		t.Fatal(err)
	}
	if res != (notify.DisconnectResult{Connections: 2, Disconnected: 1, Gone: 1}) {
		t.Errorf("result = %+v, want 2 connections: 1 disconnected, 1 gone", res)
	}
	if f := frameOf(t, sender, "42a", 0); f["type"] != "disconnected" || f["code"] != "revoked" || f["reason"] != "signed out" {
		t.Errorf("42a got %v", f)
	}
	if !sender.isClosed("42a") || sender.isClosed("7") || sender.isClosed("9") {
		t.Error("wrong sockets closed")
	}
	for _, id := range []string{"42a", "42b"} {
		if _, err := store.GetConnection(context.Background(), id); notify.ErrorCode(err) != notify.ENOTFOUND {
			t.Errorf("%s still stored: %v", id, err)
		}
	}

	// An older token, or one without iat, is refused; one issued in the
	// revocation's second or later is accepted. Nothing refused is stored.
	now := time.Now()
	for _, tc := range []struct {
		id     string
		iat    time.Time
		wantOK bool
	}{
		{"before", issuedBefore, false},
		{"no-iat", time.Time{}, false},
		{"same-second", now.Truncate(time.Second), true},
		{"after", now.Add(time.Second), true},
	} {
		err := connectAs(t, s, sender, notify.ConnectRequest{ID: tc.id, UserID: "42", TokenIssuedAt: tc.iat})
		switch {
		case tc.wantOK && err != nil:
			t.Errorf("%s: %v, want accepted", tc.id, err)
		case !tc.wantOK && (notify.ErrorCode(err) != notify.EUNAUTHORIZED || err != notify.ErrRevoked):
			t.Errorf("%s: %v, want ErrRevoked", tc.id, err)
		}
		if _, gerr := store.GetConnection(context.Background(), tc.id); (gerr == nil) != tc.wantOK {
			t.Errorf("%s stored = %v, want %v", tc.id, gerr == nil, tc.wantOK)
		}
	}
	// Another user is not revoked.
	if err := connectAs(t, s, sender, notify.ConnectRequest{ID: "7b", UserID: "7"}); err != nil {
		t.Errorf("user 7: %v", err)
	}
}

func TestDisconnectGroupsDoesNotRevoke(t *testing.T) {
	s, _, sender := newService(t)
	connect(t, s, "7", "7", time.Now().Add(-time.Minute), "team:plant-3")
	req, _ := notify.DecodePublishRequest([]byte(`{"groups":["team:plant-3"],"disconnect":{}}`))
	res, err := s.DisconnectTargets(context.Background(), req)
	if err != nil || res.Disconnected != 1 {
		t.Fatalf("result %+v, %v", res, err)
	}
	if f := frameOf(t, sender, "7", 0); f["code"] != "revoked" || f["reason"] != nil {
		t.Errorf("frame %v: want revoked without a reason", f)
	}
	if err := connectAs(t, s, sender, notify.ConnectRequest{ID: "7b", UserID: "7"}); err != nil {
		t.Errorf("a group disconnect revoked the user: %v", err)
	}
}

func TestTokenExpiryClosesOnNextFrame(t *testing.T) {
	s, _, sender := newService(t)
	now := time.Now()
	for _, c := range []struct {
		id  string
		exp time.Time
	}{{"expired", now.Add(-2 * time.Minute)}, {"in-leeway", now.Add(-30 * time.Second)}, {"valid", now.Add(time.Hour)}} {
		if err := connectAs(t, s, nil, notify.ConnectRequest{ID: c.id, UserID: "42", ConnectedAt: now.Add(-time.Hour), TokenExpiresAt: c.exp}); err != nil {
			t.Fatal(err)
		}
	}
	for _, id := range []string{"expired", "in-leeway", "valid"} {
		if err := s.HandleMessage(context.Background(), sender, id, []byte(`{"action":"ping","ref":"r1"}`), false); err != nil {
			t.Fatal(err)
		}
	}
	if f := frameOf(t, sender, "expired", 0); f["type"] != "error" || f["code"] != "token_expired" || f["ref"] != "r1" || f["message"] == "" {
		t.Errorf("expired got %v", f)
	}
	if !sender.isClosed("expired") {
		t.Error("expired connection not closed")
	}
	for _, id := range []string{"in-leeway", "valid"} {
		if f := frameOf(t, sender, id, 0); f["type"] != "pong" || sender.isClosed(id) {
			t.Errorf("%s got %v (closed %v), want pong", id, f, sender.isClosed(id))
		}
	}
}

func TestPublishClosesExpiredConnections(t *testing.T) {
	s, store, sender := newService(t)
	now := time.Now()
	if err := connectAs(t, s, nil, notify.ConnectRequest{ID: "expired", UserID: "42", ConnectedAt: now.Add(-time.Hour), TokenExpiresAt: now.Add(-2 * time.Minute)}); err != nil {
		t.Fatal(err)
	}
	if err := connectAs(t, s, nil, notify.ConnectRequest{ID: "valid", UserID: "42", ConnectedAt: now.Add(-time.Hour), TokenExpiresAt: now.Add(time.Hour)}); err != nil {
		t.Fatal(err)
	}
	res := publish(t, s, `{"users":["42"],"notification":{"type":"t"}}`)
	if res.Connections != 2 || res.Delivered != 1 || res.Gone != 1 {
		t.Errorf("counts %+v, want 2 connections, 1 delivered, 1 gone", res)
	}
	if sender.count("expired") != 0 || !sender.isClosed("expired") {
		t.Errorf("expired connection: %d frames, closed %v; want none and closed", sender.count("expired"), sender.isClosed("expired"))
	}
	if _, err := store.GetConnection(context.Background(), "expired"); notify.ErrorCode(err) != notify.ENOTFOUND {
		t.Errorf("expired connection still stored: %v", err)
	}
}

// The read answer reaches every socket of the user concurrently: at a
// 25 ms round trip, 300 sockets one after another would take 7.5 s.
func TestReadAnswerReachesEverySocketConcurrently(t *testing.T) {
	s, _, sender := newService(t)
	sender.delay = 25 * time.Millisecond
	old := time.Now().Add(-time.Minute)
	const sockets = 300
	for i := range sockets {
		connect(t, s, fmt.Sprintf("tab%03d", i), "42", old)
	}
	if err := s.HandleMessage(context.Background(), sender, "tab000", []byte(`{"action":"read","all":true,"ref":"x"}`), false); err != nil {
		t.Fatal(err)
	}
	for i := range sockets {
		id := fmt.Sprintf("tab%03d", i)
		f := frameOf(t, sender, id, 0)
		if f["type"] != "read" || (id == "tab000") != (f["ref"] == "x") || sender.count(id) != 1 {
			t.Fatalf("%s got %v (%d frames)", id, f, sender.count(id))
		}
	}
	if m := sender.maxSeen.Load(); m < 2 || m > 32 {
		t.Errorf("at most %d sends in flight, want concurrent and bounded by 32", m)
	}
}

// heldInbox models a storage whose answers to idempotency claims arrive
// late: the claim is written at once, but its answer is held for hold (or
// until the caller gives up), like a proxy holding DynamoDB's response.
type heldInbox struct {
	*memory.Store
	hold      time.Duration
	holdNext  atomic.Int32 // how many more claims to hold
	takeover  atomic.Bool  // the next commit finds another holder
	stalls    atomic.Bool  // hold every AppendNotification until its deadline
	commitErr atomic.Bool  // fail the next commit without an answer
}

func (h *heldInbox) ClaimIdempotencyKey(ctx context.Context, key, holder string, exp time.Time) (notify.IdempotencyClaim, error) {
	c, err := h.Store.ClaimIdempotencyKey(context.Background(), key, holder, exp)
	if h.holdNext.Add(-1) >= 0 {
		select {
		case <-time.After(h.hold):
		case <-ctx.Done():
			return notify.IdempotencyClaim{}, ctx.Err()
		}
	}
	return c, err
}

// ReleaseIdempotencyKey is lost, like every call to a storage that is down.
func (h *heldInbox) ReleaseIdempotencyKey(ctx context.Context, key, holder string) error {
	return context.DeadlineExceeded
}

func (h *heldInbox) CommitIdempotencyKey(ctx context.Context, key, holder, id string, exp time.Time) error {
	if h.takeover.CompareAndSwap(true, false) {
		// Its lease ran out and another call took the key over meanwhile
		// (the store suites show the stores answer exactly this).
		return notify.ErrClaimLost
	}
	if h.commitErr.CompareAndSwap(true, false) {
		<-ctx.Done()
		return ctx.Err()
	}
	return h.Store.CommitIdempotencyKey(ctx, key, holder, id, exp)
}

func (h *heldInbox) AppendNotification(ctx context.Context, n notify.StoredNotification, streams []string, exp time.Time) error {
	if h.stalls.Load() {
		<-ctx.Done()
		return ctx.Err()
	}
	return h.Store.AppendNotification(ctx, n, streams, exp)
}

func newHeldService(t *testing.T) (*notify.Service, *heldInbox, *recordingSender) {
	t.Helper()
	s, store, sender := newService(t)
	inbox := &heldInbox{Store: store}
	s.Inbox = inbox
	s.CallTimeout = 100 * time.Millisecond
	s.StoreTimeout = 300 * time.Millisecond
	s.PublishTimeout = 600 * time.Millisecond
	connect(t, s, "tab", "42", time.Now().Add(-time.Minute))
	return s, inbox, sender
}

func publishErr(s *notify.Service, body string) (notify.PublishResult, error) {
	req, err := notify.DecodePublishRequest([]byte(body))
	if err != nil {
		return notify.PublishResult{}, err
	}
	return s.Publish(context.Background(), req)
}

const keyed = `{"users":["42"],"idempotencyKey":"wo-1042-assigned-v1","notification":{"type":"t"}}`

// The case: the claim's answer is held far past the lease; a retry
// after the lease takes the key. One id is stored, one frame sent, and the
// late call never stores nor sends.
func TestLateClaimAnswerNeverSendsTwice(t *testing.T) {
	s, inbox, sender := newHeldService(t)
	inbox.hold = 2 * time.Second
	inbox.holdNext.Store(1)
	start := time.Now()
	if _, err := publishErr(s, keyed); notify.ErrorCode(err) != notify.EINTERNAL {
		t.Fatalf("first call = %v, want an EINTERNAL error", err)
	}
	if d := time.Since(start); d > s.PublishTimeout {
		t.Errorf("first call answered after %v, past PublishTimeout %v", d, s.PublishTimeout)
	}
	// While the abandoned claim's lease runs (its release was lost too), a
	// retry is told to retry; it sends nothing.
	if _, err := publishErr(s, keyed); notify.ErrorCode(err) != notify.EINTERNAL {
		t.Fatalf("retry during the lease = %v, want EINTERNAL", err)
	}
	time.Sleep(1600 * time.Millisecond) // the lease: 2×100 + 300 + 1000 ms margin
	res, err := publishErr(s, keyed)
	if err != nil || res.Duplicate || res.Delivered != 1 {
		t.Fatalf("retry after the lease = %+v, %v; want a first publish", res, err)
	}
	again, err := publishErr(s, keyed)
	if err != nil || !again.Duplicate || again.ID != res.ID {
		t.Fatalf("repeat = %+v, %v; want duplicate of %s", again, err, res.ID)
	}
	if sender.count("tab") != 1 {
		t.Errorf("%d frames sent, want 1", sender.count("tab"))
	}
	page, _, err := inbox.ListAfter(context.Background(), []string{notify.UserStream("42")}, "", 10)
	if err != nil || len(page) != 1 || page[0].ID != res.ID {
		t.Errorf("inbox holds %d notifications (%v), want only %s", len(page), err, res.ID)
	}
}

func TestStalledStoreAnswersAndRetryIsSafe(t *testing.T) {
	s, inbox, sender := newHeldService(t)
	inbox.stalls.Store(true)
	for _, body := range []string{keyed, `{"users":["42"],"notification":{"type":"t"}}`} {
		start := time.Now()
		if _, err := publishErr(s, body); notify.ErrorCode(err) != notify.EINTERNAL {
			t.Fatalf("%s: %v, want EINTERNAL", body, err)
		}
		if d := time.Since(start); d > s.PublishTimeout {
			t.Errorf("answered after %v, past PublishTimeout %v", d, s.PublishTimeout)
		}
	}
	if sender.count("tab") != 0 {
		t.Fatal("sent although the store stalled")
	}
}

// A commit that finds another holder (this call's lease ran out and a retry
// took the key) must not send: the other call does.
func TestLostClaimDoesNotSend(t *testing.T) {
	s, inbox, sender := newHeldService(t)
	inbox.takeover.Store(true)
	if _, err := publishErr(s, keyed); notify.ErrorCode(err) != notify.ECONFLICT {
		t.Fatalf("commit of a lost claim = %v, want ECONFLICT", err)
	}
	inbox.commitErr.Store(true)
	if _, err := publishErr(s, `{"users":["42"],"idempotencyKey":"other","notification":{"type":"t"}}`); notify.ErrorCode(err) != notify.EINTERNAL {
		t.Fatalf("unanswered commit = %v, want EINTERNAL", err)
	}
	if sender.count("tab") != 0 {
		t.Fatal("sent without a committed claim")
	}
}

func TestPendingClaimIsNotADuplicate(t *testing.T) {
	s, _, sender := newService(t)
	s.CallTimeout = 100 * time.Millisecond
	s.StoreTimeout = 300 * time.Millisecond
	s.PublishTimeout = 600 * time.Millisecond
	connect(t, s, "tab", "42", time.Now().Add(-time.Minute))
	store := s.Inbox
	// Another call holds the key and is still storing.
	if _, err := store.ClaimIdempotencyKey(context.Background(), "wo-1042-assigned-v1", "other-call", time.Now().Add(time.Minute)); err != nil {
		t.Fatal(err)
	}
	if _, err := publishErr(s, keyed); notify.ErrorCode(err) != notify.EINTERNAL {
		t.Fatalf("publish while another holds the key = %v, want EINTERNAL (retry later)", err)
	}
	if sender.count("tab") != 0 {
		t.Fatal("sent while another call held the key")
	}
}

// hangingStore is a memory store whose deletes and second page never come
// back until the caller gives up, like a DynamoDB that stops answering
// after the notification was stored.
type hangingStore struct {
	*memory.Store
	firstPageAfter time.Duration
}

func (h hangingStore) DeleteGoneConnection(ctx context.Context, id string, before time.Time) (bool, error) {
	<-ctx.Done()
	return false, ctx.Err()
}

func (h hangingStore) DeleteConnection(ctx context.Context, id string) error {
	<-ctx.Done()
	return ctx.Err()
}

func (h hangingStore) ForEachTarget(ctx context.Context, t notify.Target, fn func([]notify.Connection) error) error {
	time.Sleep(h.firstPageAfter)
	var all []notify.Connection
	if err := h.Store.ForEachTarget(ctx, t, func(p []notify.Connection) error { all = append(all, p...); return nil }); err != nil {
		return err
	}
	if err := fn(all[:1]); err != nil { // one page, then storage stops answering
		return err
	}
	<-ctx.Done()
	return ctx.Err()
}

// Once the notification is stored and sending has begun, a storage that
// stops answering (the 410 cleanup, closing an expired connection, the next
// page) still cannot hold the answer past PublishTimeout: what was sent is
// reported.
func TestPublishAnswersByTheDeadlineWhenStorageStopsMidWalk(t *testing.T) {
	s, store, sender := newService(t)
	s.CallTimeout = 100 * time.Millisecond
	s.StoreTimeout = 300 * time.Millisecond
	s.PublishTimeout = 600 * time.Millisecond
	now := time.Now()
	for _, c := range []notify.ConnectRequest{
		{ID: "a-gone", UserID: "42", ConnectedAt: now.Add(-time.Hour)},
		{ID: "b-expired", UserID: "42", ConnectedAt: now.Add(-time.Hour), TokenExpiresAt: now.Add(-time.Hour)},
		{ID: "c-live", UserID: "42", ConnectedAt: now.Add(-time.Hour)},
	} {
		if err := connectAs(t, s, nil, c); err != nil {
			t.Fatal(err)
		}
	}
	sender.gone["a-gone"] = true
	for _, tc := range []struct {
		name      string
		firstPage time.Duration
	}{{"first page at once", 0}, {"first page late", 400 * time.Millisecond}} {
		t.Run(tc.name, func(t *testing.T) {
			s.Connections = hangingStore{Store: store, firstPageAfter: tc.firstPage}
			start := time.Now()
			res, err := publishErr(s, `{"users":["42"],"notification":{"type":"t"}}`)
			if took := time.Since(start); took > s.PublishTimeout+200*time.Millisecond {
				t.Errorf("answered after %v, past PublishTimeout %v", took, s.PublishTimeout)
			}
			if err != nil || res.Connections != 1 || res.Connections != res.Delivered+res.Gone+res.Failed {
				t.Errorf("result %+v, %v; want what the one page reached, counted", res, err)
			}
		})
	}
	s.Connections = hangingStore{Store: store}
	var all []notify.Connection
	_ = store.ForEachTarget(context.Background(), notify.Target{Users: []string{"42"}}, func(p []notify.Connection) error { all = append(all, p...); return nil })
	for _, c := range all { // each connection first, in turn: its cleanup hangs
		s.Connections = firstOnly{hangingStore{Store: store}, c.ID}
		start := time.Now()
		if _, err := publishErr(s, `{"users":["42"],"notification":{"type":"t"}}`); err != nil {
			t.Fatal(err)
		}
		if took := time.Since(start); took > s.PublishTimeout+200*time.Millisecond {
			t.Errorf("%s first: answered after %v, past PublishTimeout %v", c.ID, took, s.PublishTimeout)
		}
	}
}

// firstOnly hands out only connection id, then ends the walk.
type firstOnly struct {
	hangingStore
	id string
}

func (f firstOnly) ForEachTarget(ctx context.Context, t notify.Target, fn func([]notify.Connection) error) error {
	return f.Store.ForEachTarget(ctx, t, func(p []notify.Connection) error {
		for _, c := range p {
			if c.ID == f.id {
				return fn([]notify.Connection{c})
			}
		}
		return nil
	})
}

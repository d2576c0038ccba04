package notify_test

import (
	"context"
	"encoding/json"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/workorders/notify/internal/memory"
	"github.com/workorders/notify/internal/notify"
)

// recordingSender records frames per connection and answers 410 for the
// connections listed in gone and a throttling failure for those in failing.
// Management API behaviour over real HTTP is tested in internal/apigw and
// internal/localgw; this isolates the fan-out logic.
type recordingSender struct {
	mu       sync.Mutex
	frames   map[string][][]byte
	closed   map[string]bool
	gone     map[string]bool
	failing  map[string]bool
	inFlight atomic.Int64
	maxSeen  atomic.Int64
	delay    time.Duration
}

func newRecordingSender() *recordingSender {
	return &recordingSender{frames: map[string][][]byte{}, closed: map[string]bool{}, gone: map[string]bool{}, failing: map[string]bool{}}
}

// Close records that id was closed; a closed connection is gone after.
func (r *recordingSender) Close(ctx context.Context, id string) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.gone[id] {
		return notify.ErrGone
	}
	r.closed[id] = true
	r.gone[id] = true
	return nil
}

func (r *recordingSender) isClosed(id string) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.closed[id]
}

func (r *recordingSender) Send(ctx context.Context, id string, data []byte) error {
	n := r.inFlight.Add(1)
	defer r.inFlight.Add(-1)
	for {
		m := r.maxSeen.Load()
		if n <= m || r.maxSeen.CompareAndSwap(m, n) {
			break
		}
	}
	if r.delay > 0 {
		time.Sleep(r.delay)
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	switch {
	case r.gone[id]:
		return notify.ErrGone
	case r.failing[id]:
		return notify.Errorf(notify.EINTERNAL, "throttled")
	}
	r.frames[id] = append(r.frames[id], data)
	return nil
}

func (r *recordingSender) count(id string) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.frames[id])
}

func newService(t *testing.T) (*notify.Service, *memory.Store, *recordingSender) {
	t.Helper()
	store := memory.New()
	sender := newRecordingSender()
	return &notify.Service{Connections: store, Inbox: store, Sender: sender}, store, sender
}

func connect(t *testing.T, s *notify.Service, id, user string, connectedAt time.Time, groups ...string) {
	t.Helper()
	if err := s.Connect(context.Background(), nil, notify.ConnectRequest{ID: id, UserID: user, Groups: groups, ConnectedAt: connectedAt}); err != nil {
		t.Fatalf("connect %s: %v", id, err)
	}
}

func publish(t *testing.T, s *notify.Service, body string) notify.PublishResult {
	t.Helper()
	req, err := notify.DecodePublishRequest([]byte(body))
	if err != nil {
		t.Fatalf("decode: %v", err)
	}
	res, err := s.Publish(context.Background(), req)
	if err != nil {
		t.Fatalf("publish: %v", err)
	}
	return res
}

func TestPublishDeliversOnceAndCounts(t *testing.T) {
	s, _, sender := newService(t)
	old := time.Now().Add(-time.Minute)
	connect(t, s, "c42a", "42", old, "team:plant-3")
	connect(t, s, "c42b", "42", old)              // a second tab of user 42
	connect(t, s, "c7", "7", old, "team:plant-3") // reached through the group only
	connect(t, s, "c9", "9", old)                 // not targeted

	res := publish(t, s, `{"users":["42","43","42"],"groups":["team:plant-3"],
		"notification":{"type":"workorder.assigned","title":"WO-1042","data":{"workOrderId":"WO-1042"}}}`)
	if res.Connections != 3 || res.Delivered != 3 || res.Gone != 0 || res.Failed != 0 {
		t.Errorf("counts = %+v, want 3 connections, 3 delivered", res)
	}
	if !slices.Equal(res.OfflineUsers, []string{"43"}) {
		t.Errorf("offlineUsers = %v, want [43] (42 listed twice counts once)", res.OfflineUsers)
	}
	if !notify.ValidID(res.ID) {
		t.Errorf("id %q is not a ULID", res.ID)
	}
	for _, id := range []string{"c42a", "c42b", "c7"} {
		if n := sender.count(id); n != 1 {
			t.Errorf("%s received %d frames, want exactly 1", id, n)
		}
	}
	if sender.count("c9") != 0 {
		t.Error("an untargeted connection received the notification")
	}

	var frame struct {
		Type         string              `json:"type"`
		Notification notify.Notification `json:"notification"`
	}
	if err := json.Unmarshal(sender.frames["c42a"][0], &frame); err != nil {
		t.Fatal(err)
	}
	if frame.Type != "notification" || frame.Notification.ID != res.ID || frame.Notification.Type != "workorder.assigned" ||
		frame.Notification.Title != "WO-1042" || string(frame.Notification.Data) != `{"workOrderId":"WO-1042"}` {
		t.Errorf("frame = %s", sender.frames["c42a"][0])
	}
	if !strings.Contains(string(sender.frames["c42a"][0]), `"createdAt":"`) || strings.Contains(string(sender.frames["c42a"][0]), `"body"`) {
		t.Errorf("frame must carry createdAt and omit an empty body: %s", sender.frames["c42a"][0])
	}
}

func TestPublishOfflineUsersEmptyListNotNull(t *testing.T) {
	s, _, _ := newService(t)
	res := publish(t, s, `{"groups":["nobody-here"],"notification":{"type":"t"}}`)
	b, _ := json.Marshal(res)
	if !strings.Contains(string(b), `"offlineUsers":[]`) {
		t.Errorf("result %s must carry offlineUsers: []", b)
	}
}

func TestPublishBroadcastAndNamespaces(t *testing.T) {
	s, _, sender := newService(t)
	old := time.Now().Add(-time.Minute)
	connect(t, s, "a", "43", old)
	connect(t, s, "b", "1", old, "user:43")
	res := publish(t, s, `{"groups":["user:43"],"notification":{"type":"t"}}`)
	if res.Connections != 1 || sender.count("a") != 0 || sender.count("b") != 1 {
		t.Errorf("group user:43 must not reach user 43: %+v", res)
	}
	res = publish(t, s, `{"broadcast":true,"users":["43"],"notification":{"type":"t"}}`)
	if res.Connections != 2 || res.Delivered != 2 || len(res.OfflineUsers) != 0 {
		t.Errorf("broadcast = %+v", res)
	}
}

func TestPublishGoneAndFailed(t *testing.T) {
	s, store, sender := newService(t)
	old := time.Now().Add(-time.Minute)
	connect(t, s, "ok", "1", old, "g")
	connect(t, s, "gone-old", "2", old, "g")
	connect(t, s, "gone-fresh", "3", time.Now(), "g") // its $connect may still be running
	connect(t, s, "throttled", "4", old, "g")
	sender.gone["gone-old"], sender.gone["gone-fresh"] = true, true
	sender.failing["throttled"] = true

	res := publish(t, s, `{"groups":["g"],"users":["2","4","1"],"notification":{"type":"t"}}`)
	if res.Connections != 4 || res.Delivered != 1 || res.Gone != 2 || res.Failed != 1 {
		t.Errorf("counts = %+v, want 4 = 1 delivered + 2 gone + 1 failed", res)
	}
	if !slices.Equal(res.OfflineUsers, []string{"2", "4"}) {
		t.Errorf("offlineUsers = %v, want [2 4]", res.OfflineUsers)
	}
	ctx := context.Background()
	if _, err := store.GetConnection(ctx, "gone-old"); notify.ErrorCode(err) != notify.ENOTFOUND {
		t.Errorf("an old connection answered 410 must be removed, got %v", err)
	}
	for _, id := range []string{"gone-fresh", "throttled", "ok"} {
		if _, err := store.GetConnection(ctx, id); err != nil {
			t.Errorf("%s must stay stored: %v", id, err)
		}
	}
}

func TestPublishBoundedConcurrency(t *testing.T) {
	s, _, sender := newService(t)
	s.Concurrency = 8
	sender.delay = 2 * time.Millisecond
	old := time.Now().Add(-time.Minute)
	for i := range 200 {
		connect(t, s, "c"+string(rune('A'+i%26))+strings.Repeat("x", i/26), "u", old)
	}
	res := publish(t, s, `{"users":["u"],"notification":{"type":"t"}}`)
	if res.Delivered != 200 {
		t.Fatalf("delivered %d of 200", res.Delivered)
	}
	if m := sender.maxSeen.Load(); m > 8 || m < 2 {
		t.Errorf("max sends in flight = %d, want between 2 and the bound 8", m)
	}
}

type failingStore struct{ notify.ConnectionStore }

func (failingStore) ForEachTarget(context.Context, notify.Target, func([]notify.Connection) error) error {
	return context.DeadlineExceeded
}

func TestPublishStoreFailureIsInternal(t *testing.T) {
	s := &notify.Service{Connections: failingStore{memory.New()}, Inbox: memory.New(), Sender: newRecordingSender()}
	req, _ := notify.DecodePublishRequest([]byte(`{"broadcast":true,"notification":{"type":"t"}}`))
	_, err := s.Publish(context.Background(), req)
	if notify.ErrorCode(err) != notify.EINTERNAL {
		t.Fatalf("err = %v, want EINTERNAL", err)
	}
}

func TestHandleMessage(t *testing.T) {
	s, _, sender := newService(t)
	ctx := context.Background()
	cases := []struct{ body, want string }{
		{`{"action":"ping","ref":"r1"}`, `{"type":"pong","ref":"r1"}`},
		{`{"action":"ping"}`, `{"type":"pong"}`},
		{`nope`, `"code":"bad_request"`},
		{`{"action":"sync","limit":500,"ref":"x"}`, `"code":"bad_request","message":"limit: must be from 1 to 100, got 500","ref":"x"`},
		{`{"action":"fly"}`, `"code":"unknown_action"`},
	}
	for i, tc := range cases {
		id := "conn" + string(rune('a'+i))
		if err := s.HandleMessage(ctx, sender, id, []byte(tc.body), false); err != nil {
			t.Fatal(err)
		}
		if got := string(sender.frames[id][0]); !strings.Contains(got, tc.want) {
			t.Errorf("%s → %s, want %s", tc.body, got, tc.want)
		}
	}
	if err := s.HandleMessage(ctx, sender, "bin", []byte(`{"action":"ping"}`), true); err != nil {
		t.Fatal(err)
	}
	if got := string(sender.frames["bin"][0]); !strings.Contains(got, `"code":"bad_request","message":"binary frames`) {
		t.Errorf("binary frame → %s", got)
	}
}

func TestNewIDIsOrderedWithinAMillisecond(t *testing.T) {
	now := time.Now()
	prev := notify.NewID(now)
	for range 1000 {
		id := notify.NewID(now)
		if id <= prev {
			t.Fatalf("id %s not after %s", id, prev)
		}
		prev = id
	}
}

// partlyFailingStore hands out its first page, then fails.
type partlyFailingStore struct{ *memory.Store }

func (p partlyFailingStore) ForEachTarget(ctx context.Context, t notify.Target, fn func([]notify.Connection) error) error {
	first := true
	err := p.Store.ForEachTarget(ctx, t, func(page []notify.Connection) error {
		if first {
			first = false
			return fn(page[:1])
		}
		return nil
	})
	if err != nil {
		return err
	}
	return context.DeadlineExceeded
}

// A walk that fails after something was sent must not answer "nothing was
// sent" (a retry would send twice): it reports what it sent.
func TestPublishWalkFailingPartWayReportsWhatWasSent(t *testing.T) {
	store := memory.New()
	sender := newRecordingSender()
	s := &notify.Service{Connections: partlyFailingStore{store}, Inbox: store, Sender: sender}
	connect(t, s, "a", "42", time.Now().Add(-time.Minute))
	connect(t, s, "b", "42", time.Now().Add(-time.Minute))
	res := publish(t, s, `{"users":["42"],"notification":{"type":"t"}}`)
	if res.Connections != 1 || res.Delivered != 1 || len(res.OfflineUsers) != 0 {
		t.Errorf("result %+v, want the one connection reached", res)
	}
	if sender.count("a")+sender.count("b") != 1 {
		t.Errorf("sent %d frames, want 1", sender.count("a")+sender.count("b"))
	}
}

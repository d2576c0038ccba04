package notify_test

import (
	"context"
	"encoding/json"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/oklog/ulid/v2"

	"github.com/workorders/notify/internal/memory"
	"github.com/workorders/notify/internal/notify"
)

type syncedFrame struct {
	Type          string       `json:"type"`
	Notifications []syncedNote `json:"notifications"`
	Cursor        string       `json:"cursor"`
	More          bool         `json:"more"`
	Gap           bool         `json:"gap"`
	Unread        int          `json:"unread"`
	Ref           string       `json:"ref"`
}

// syncedNote is a notification in a synced frame: with this user's read
// flag (nil when missing).
type syncedNote struct {
	notify.Notification
	Read *bool `json:"read"`
}

// ask sends one frame from connection id and returns the answer it got.
func ask(t *testing.T, s *notify.Service, sender *recordingSender, id, body string) []byte {
	t.Helper()
	before := sender.count(id)
	if err := s.HandleMessage(context.Background(), sender, id, []byte(body), false); err != nil {
		t.Fatalf("%s: %v", body, err)
	}
	sender.mu.Lock()
	defer sender.mu.Unlock()
	if len(sender.frames[id]) != before+1 {
		t.Fatalf("%s: %d answers, want 1", body, len(sender.frames[id])-before)
	}
	return sender.frames[id][before]
}

func askSync(t *testing.T, s *notify.Service, sender *recordingSender, id, body string) syncedFrame {
	t.Helper()
	raw := ask(t, s, sender, id, body)
	var f syncedFrame
	if err := json.Unmarshal(raw, &f); err != nil || f.Type != "synced" {
		t.Fatalf("%s → %s, want a synced frame", body, raw)
	}
	return f
}

func ids(ns []syncedNote) string {
	out := make([]string, len(ns))
	for i, n := range ns {
		out[i] = n.Title
	}
	return strings.Join(out, ",")
}

func TestSyncAfterOfflinePublishes(t *testing.T) {
	s, _, sender := newService(t)
	old := time.Now().Add(-time.Minute)
	connect(t, s, "tab", "42", old, "team:plant-3")
	connect(t, s, "other", "43", old, "team:plant-9")
	first := publish(t, s, `{"users":["42"],"notification":{"type":"t","title":"n1"}}`)
	publish(t, s, `{"users":["43"],"notification":{"type":"t","title":"not-mine"}}`)
	publish(t, s, `{"groups":["team:plant-9"],"notification":{"type":"t","title":"other-group"}}`)
	publish(t, s, `{"groups":["team:plant-3"],"notification":{"type":"t","title":"n2"}}`)
	publish(t, s, `{"broadcast":true,"notification":{"type":"t","title":"n3"}}`)
	publish(t, s, `{"users":["42"],"groups":["team:plant-3"],"notification":{"type":"t","title":"n4"}}`)

	f := askSync(t, s, sender, "tab", `{"action":"sync","ref":"s1"}`)
	if got := ids(f.Notifications); got != "n1,n2,n3,n4" {
		t.Fatalf("plain sync = %s, want n1,n2,n3,n4 (own user, own group, broadcast; once each; oldest first)", got)
	}
	if f.Cursor != f.Notifications[3].ID || f.More || f.Gap || f.Unread != 4 || f.Ref != "s1" {
		t.Errorf("frame = %+v", f)
	}
	f = askSync(t, s, sender, "tab", `{"action":"sync","limit":2}`)
	if got := ids(f.Notifications); got != "n3,n4" {
		t.Errorf("plain sync limit 2 = %s, want the newest two, oldest first", got)
	}

	// Resuming after n1 also returns what is up to 30 s older (n1 itself):
	// the client deduplicates by id.
	f = askSync(t, s, sender, "tab", `{"action":"sync","after":"`+first.ID+`","limit":2}`)
	if got := ids(f.Notifications); got != "n1,n2" || !f.More || f.Cursor != f.Notifications[1].ID {
		t.Fatalf("sync after = %s more=%v cursor=%s", got, f.More, f.Cursor)
	}
	f = askSync(t, s, sender, "tab", `{"action":"sync","cursor":"`+f.Cursor+`","limit":2}`)
	if got := ids(f.Notifications); got != "n3,n4" {
		t.Fatalf("cursor page = %s, want n3,n4 strictly after the cursor", got)
	}
	last := f.Cursor
	f = askSync(t, s, sender, "tab", `{"action":"sync","cursor":"`+last+`"}`)
	if len(f.Notifications) != 0 || f.More || f.Cursor != last {
		t.Errorf("empty page = %+v, want no notifications, more false, the cursor echoed", f)
	}
	f = askSync(t, s, sender, "other", `{"action":"sync"}`)
	if got := ids(f.Notifications); got != "not-mine,other-group,n3" {
		t.Errorf("user 43 sees %s", got)
	}
}

func TestSyncOverlapAndGap(t *testing.T) {
	s, _, sender := newService(t)
	s.Retention = time.Hour
	connect(t, s, "tab", "42", time.Now().Add(-time.Minute))
	clock := time.Now()
	s.Now = func() time.Time { return clock }
	early := publish(t, s, `{"users":["42"],"notification":{"type":"t","title":"early"}}`)
	clock = clock.Add(20 * time.Second)
	publish(t, s, `{"users":["42"],"notification":{"type":"t","title":"within-30s"}}`)
	clock = clock.Add(20 * time.Second)
	mid := publish(t, s, `{"users":["42"],"notification":{"type":"t","title":"mid"}}`)
	clock = clock.Add(time.Second)
	publish(t, s, `{"users":["42"],"notification":{"type":"t","title":"late"}}`)

	f := askSync(t, s, sender, "tab", `{"action":"sync","after":"`+mid.ID+`"}`)
	if got := ids(f.Notifications); got != "within-30s,mid,late" {
		t.Errorf("sync after mid = %s, want the 30 s before it too, not %q", got, early.ID)
	}
	if f.Gap {
		t.Error("gap set within retention")
	}
	past := ulid.MustNew(ulid.Timestamp(clock.Add(-2*time.Hour)), nil).String()
	if f = askSync(t, s, sender, "tab", `{"action":"sync","after":"`+past+`"}`); !f.Gap {
		t.Error("gap not set for an id older than retention")
	}
}

func TestSyncFrameFitsAPIGatewayLimit(t *testing.T) {
	s, _, sender := newService(t)
	connect(t, s, "tab", "42", time.Now().Add(-time.Minute))
	big := strings.Repeat("x", 40*1024)
	var first string
	for i := range 5 {
		r := publish(t, s, `{"users":["42"],"notification":{"type":"t","title":"b`+string(rune('0'+i))+`","data":{"pad":"`+big+`"}}}`)
		if i == 0 {
			first = r.ID
		}
	}
	raw := ask(t, s, sender, "tab", `{"action":"sync","cursor":"`+notify.NewID(time.Now().Add(-time.Hour))+`"}`)
	if len(raw) > notify.MaxFrameBytes {
		t.Fatalf("synced frame of %d bytes exceeds 128 KiB", len(raw))
	}
	var f syncedFrame
	_ = json.Unmarshal(raw, &f)
	if got := ids(f.Notifications); got != "b0,b1,b2" || !f.More {
		t.Errorf("resuming page = %s more=%v, want b0,b1,b2 and more", got, f.More)
	}
	raw = ask(t, s, sender, "tab", `{"action":"sync"}`)
	_ = json.Unmarshal(raw, &f)
	if got := ids(f.Notifications); len(raw) > notify.MaxFrameBytes || got != "b2,b3,b4" {
		t.Errorf("plain sync = %s (%d bytes), want the newest that fit: b2,b3,b4", got, len(raw))
	}
	_ = first
}

func TestReadUpdatesEveryTab(t *testing.T) {
	s, _, sender := newService(t)
	old := time.Now().Add(-time.Minute)
	connect(t, s, "tab1", "42", old)
	connect(t, s, "tab2", "42", old)
	connect(t, s, "b", "43", old)
	a := publish(t, s, `{"users":["42"],"notification":{"type":"t"}}`)
	publish(t, s, `{"users":["42"],"notification":{"type":"t"}}`)
	notMine := publish(t, s, `{"users":["43"],"notification":{"type":"t"}}`)

	raw := ask(t, s, sender, "tab1", `{"action":"read","ids":["`+a.ID+`","`+notMine.ID+`"],"ref":"r9"}`)
	want := `{"type":"read","ids":["` + a.ID + `"],"unread":1,"ref":"r9"}`
	if string(raw) != want {
		t.Errorf("own answer = %s, want %s (invisible ids ignored, not echoed)", raw, want)
	}
	sender.mu.Lock()
	other := string(sender.frames["tab2"][len(sender.frames["tab2"])-1])
	sender.mu.Unlock()
	if other != `{"type":"read","ids":["`+a.ID+`"],"unread":1}` {
		t.Errorf("other tab got %s", other)
	}
	if f := askSync(t, s, sender, "b", `{"action":"sync"}`); f.Unread != 1 {
		t.Errorf("user 43's unread = %d: reading is per user", f.Unread)
	}
	if raw = ask(t, s, sender, "tab2", `{"action":"read","all":true}`); string(raw) != `{"type":"read","ids":[],"unread":0}` {
		t.Errorf("read all = %s", raw)
	}
}

// readFlags is the titles of ns with their read flags: "n1,n2*" (* read,
// ? missing).
func readFlags(ns []syncedNote) string {
	out := make([]string, len(ns))
	for i, n := range ns {
		switch {
		case n.Read == nil:
			out[i] = n.Title + "?"
		case *n.Read:
			out[i] = n.Title + "*"
		default:
			out[i] = n.Title
		}
	}
	return strings.Join(out, ",")
}

// Every notification of every synced frame carries this user's read flag
// (PROTOCOL §5); a live notification frame carries none.
func TestSyncCarriesReadState(t *testing.T) {
	s, _, sender := newService(t)
	old := time.Now().Add(-time.Minute)
	connect(t, s, "tab", "42", old, "team:plant-3")
	connect(t, s, "other", "43", old)
	var published []notify.PublishResult
	for _, body := range []string{
		`{"users":["42"],"notification":{"type":"t","title":"n1"}}`,
		`{"groups":["team:plant-3"],"notification":{"type":"t","title":"n2","data":{"wo":"WO-1","nested":{"a":[1,{}]}}}}`,
		`{"users":["42"],"notification":{"type":"t","title":"n3","body":"b \u2028 <&>"}}`,
		`{"broadcast":true,"notification":{"type":"t","title":"n4"}}`,
	} {
		published = append(published, publish(t, s, body))
	}
	// The live frames: no read flag.
	sender.mu.Lock()
	live := slices.Clone(sender.frames["tab"])
	sender.mu.Unlock()
	if len(live) != 4 {
		t.Fatalf("%d live frames, want 4", len(live))
	}
	for _, raw := range live {
		var f struct {
			Notification map[string]json.RawMessage `json:"notification"`
		}
		if err := json.Unmarshal(raw, &f); err != nil || f.Notification == nil {
			t.Fatalf("live frame %s: %v", raw, err)
		}
		if _, ok := f.Notification["read"]; ok {
			t.Errorf("live frame %s carries read", raw)
		}
	}

	if f := askSync(t, s, sender, "tab", `{"action":"sync"}`); readFlags(f.Notifications) != "n1,n2,n3,n4" || f.Unread != 4 {
		t.Errorf("before reading: %s unread %d, want n1,n2,n3,n4 all read:false, unread 4", readFlags(f.Notifications), f.Unread)
	}
	ask(t, s, sender, "tab", `{"action":"read","ids":["`+published[1].ID+`","`+published[3].ID+`"]}`)
	f := askSync(t, s, sender, "tab", `{"action":"sync"}`)
	if got := readFlags(f.Notifications); got != "n1,n2*,n3,n4*" || f.Unread != 2 {
		t.Errorf("after reading n2 and n4: %s unread %d, want n1,n2*,n3,n4* unread 2", got, f.Unread)
	}
	// The flag is added to the stored object as its last member: the rest
	// is byte for byte what the live frame carried.
	raw := ask(t, s, sender, "tab", `{"action":"sync"}`)
	var frame struct {
		Notifications []json.RawMessage `json:"notifications"`
	}
	if err := json.Unmarshal(raw, &frame); err != nil || len(frame.Notifications) != 4 {
		t.Fatalf("synced frame %s: %v", raw, err)
	}
	for i, n := range frame.Notifications {
		var lf struct {
			Notification json.RawMessage `json:"notification"`
		}
		_ = json.Unmarshal(live[i], &lf)
		want := string(lf.Notification[:len(lf.Notification)-1]) + `,"read":` + strconv.FormatBool(i%2 == 1) + "}"
		if string(n) != want {
			t.Errorf("synced notification %d:\n got %s\nwant %s", i, n, want)
		}
	}

	// Resuming (after, then cursor) carries the flags too.
	f = askSync(t, s, sender, "tab", `{"action":"sync","after":"`+published[0].ID+`","limit":2}`)
	if got := readFlags(f.Notifications); got != "n1,n2*" || !f.More {
		t.Errorf("sync after n1, limit 2: %s more %v, want n1,n2* and more", got, f.More)
	}
	f = askSync(t, s, sender, "tab", `{"action":"sync","cursor":"`+f.Cursor+`"}`)
	if got := readFlags(f.Notifications); got != "n3,n4*" {
		t.Errorf("cursor page: %s, want n3,n4*", got)
	}
	// Read state is per user: 43 read nothing of the broadcast.
	if f := askSync(t, s, sender, "other", `{"action":"sync"}`); readFlags(f.Notifications) != "n4" {
		t.Errorf("user 43: %s, want n4 unread", readFlags(f.Notifications))
	}
	ask(t, s, sender, "tab", `{"action":"read","all":true}`)
	if f := askSync(t, s, sender, "tab", `{"action":"sync"}`); readFlags(f.Notifications) != "n1*,n2*,n3*,n4*" || f.Unread != 0 {
		t.Errorf("after read all: %s unread %d", readFlags(f.Notifications), f.Unread)
	}
	if f := askSync(t, s, sender, "other", `{"action":"sync"}`); readFlags(f.Notifications) != "n4" {
		t.Errorf("user 43 after 42 read all: %s, want n4 unread", readFlags(f.Notifications))
	}
}

func TestIdempotentPublish(t *testing.T) {
	s, _, sender := newService(t)
	connect(t, s, "tab", "42", time.Now().Add(-time.Minute))
	body := `{"users":["42"],"idempotencyKey":"wo-1042-assigned-v1","notification":{"type":"t"}}`
	var wg sync.WaitGroup
	results := make([]notify.PublishResult, 50)
	for i := range results {
		wg.Add(1)
		go func() {
			defer wg.Done()
			results[i] = publish(t, s, body)
		}()
	}
	wg.Wait()
	firsts := 0
	for _, r := range results {
		if r.ID != results[0].ID {
			t.Fatalf("ids differ: %s vs %s", r.ID, results[0].ID)
		}
		if !r.Duplicate {
			firsts++
			continue
		}
		if r.Connections != 0 || r.Delivered != 0 || r.OfflineUsers == nil || len(r.OfflineUsers) != 0 {
			t.Errorf("duplicate result = %+v, want zero counts and offlineUsers []", r)
		}
	}
	if firsts != 1 || sender.count("tab") != 1 {
		t.Errorf("%d first calls and %d frames sent, want exactly 1 each", firsts, sender.count("tab"))
	}
}

// slowInbox holds AppendNotification back, or fails it.
type slowInbox struct {
	*memory.Store
	hold time.Duration
	fail bool
}

func (s slowInbox) AppendNotification(ctx context.Context, n notify.StoredNotification, streams []string, exp time.Time) error {
	if s.fail {
		return context.DeadlineExceeded
	}
	select {
	case <-time.After(s.hold):
	case <-ctx.Done():
		return ctx.Err()
	}
	return s.Store.AppendNotification(ctx, n, streams, exp)
}

func TestPublishStoresBeforeSending(t *testing.T) {
	for _, tc := range []struct {
		name  string
		inbox slowInbox
	}{
		{"store fails", slowInbox{fail: true}},
		{"store slower than the timeout", slowInbox{hold: time.Hour}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s, store, sender := newService(t)
			tc.inbox.Store = store
			s.Inbox = tc.inbox
			s.StoreTimeout = 50 * time.Millisecond
			connect(t, s, "tab", "42", time.Now().Add(-time.Minute))
			req, _ := notify.DecodePublishRequest([]byte(`{"users":["42"],"idempotencyKey":"k","notification":{"type":"t"}}`))
			if _, err := s.Publish(context.Background(), req); notify.ErrorCode(err) != notify.EINTERNAL {
				t.Fatalf("err = %v, want EINTERNAL", err)
			}
			if sender.count("tab") != 0 {
				t.Fatal("sent although storing failed")
			}
			// The key was released: a retry is a first call.
			s.Inbox = store
			if r := publish(t, s, `{"users":["42"],"idempotencyKey":"k","notification":{"type":"t"}}`); r.Duplicate || r.Delivered != 1 {
				t.Errorf("retry after a failed store = %+v", r)
			}
		})
	}
}

// A notification at the size limit fits every frame it travels in, even
// when it is made of characters json.Marshal would escape to six bytes.
func TestNotificationAtTheLimitFitsEveryFrame(t *testing.T) {
	s, _, sender := newService(t)
	connect(t, s, "tab", "42", time.Now().Add(-time.Minute))
	for _, filler := range []string{"<", "&", "\u2028"} {
		pad := strings.Repeat(filler, (notify.MaxNotificationBytes-100)/len(filler))
		body := `{"users":["42"],"notification":{"type":"t","title":"` + filler + `","data":{"pad":"` + pad + `"}}}`
		req, err := notify.DecodePublishRequest([]byte(body))
		if err != nil {
			t.Fatalf("%q: a notification under the limit was refused: %v", filler, err)
		}
		res, err := s.Publish(context.Background(), req)
		if err != nil || res.Delivered != 1 {
			t.Fatalf("%q: %+v %v", filler, res, err)
		}
		sender.mu.Lock()
		frame := sender.frames["tab"][len(sender.frames["tab"])-1]
		sender.mu.Unlock()
		if len(frame) > notify.MaxFrameBytes {
			t.Errorf("%q: notification frame of %d bytes", filler, len(frame))
		}
		before := notify.NewID(time.Now().Add(-time.Hour))
		raw := ask(t, s, sender, "tab", `{"action":"sync","cursor":"`+before+`","limit":100,"ref":"`+strings.Repeat("\u2028", 64)+`"}`)
		var f syncedFrame
		if err := json.Unmarshal(raw, &f); err != nil {
			t.Fatal(err)
		}
		if len(raw) > notify.MaxFrameBytes || len(f.Notifications) == 0 {
			t.Errorf("%q: synced frame of %d bytes with %d notifications: paging could not move on", filler, len(raw), len(f.Notifications))
		}
		for _, n := range f.Notifications {
			if n.Read == nil {
				t.Errorf("%q: synced notification %s without its read flag", filler, n.ID)
			}
		}
	}
	over := `{"users":["42"],"notification":{"type":"t","data":{"pad":"` + strings.Repeat("<", notify.MaxNotificationBytes) + `"}}}`
	if _, err := notify.DecodePublishRequest([]byte(over)); notify.ErrorCode(err) != notify.EINVALID {
		t.Errorf("a notification over the limit was accepted: %v", err)
	}
}

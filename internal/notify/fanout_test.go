package notify_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"regexp"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/workorders/notify/internal/notify"
)

// inProcessFanout runs each batch through FanoutFunction's own code path:
// the batch is encoded as the Lambda event, decoded by DecodeFanoutBatch
// and sent by a second Service (FanoutFunction's) sharing the sender and
// the connection store. It records the batches it saw.
type inProcessFanout struct {
	worker   *notify.Service
	fail     bool
	mu       sync.Mutex
	batches  []notify.FanoutBatch
	inFlight atomic.Int64
	maxSeen  atomic.Int64
}

func (f *inProcessFanout) Fanout(ctx context.Context, b notify.FanoutBatch) (notify.FanoutResult, error) {
	n := f.inFlight.Add(1)
	defer f.inFlight.Add(-1)
	for m := f.maxSeen.Load(); n > m && !f.maxSeen.CompareAndSwap(m, n); m = f.maxSeen.Load() {
	}
	time.Sleep(5 * time.Millisecond) // let batches overlap
	payload, err := notify.MarshalFanoutBatch(b)
	if err != nil {
		return notify.FanoutResult{}, err
	}
	decoded, err := notify.DecodeFanoutBatch(payload)
	if err != nil {
		return notify.FanoutResult{}, err
	}
	f.mu.Lock()
	f.batches = append(f.batches, decoded)
	f.mu.Unlock()
	if f.fail {
		return notify.FanoutResult{}, notify.Errorf(notify.EINTERNAL, "FanoutFunction: Runtime.Timeout: Task timed out after 30.00 seconds")
	}
	return f.worker.DeliverBatch(ctx, decoded), nil
}

// newShardedService is newService with a Fanout over the same store and
// sender, handing out batches of batchSize above threshold.
func newShardedService(t *testing.T, threshold, batchSize, shards int) (*notify.Service, *inProcessFanout, *recordingSender) {
	s, store, sender := newService(t)
	f := &inProcessFanout{worker: &notify.Service{Connections: store, Sender: sender}}
	s.Fanout, s.FanoutThreshold, s.FanoutBatchSize, s.FanoutShards = f, threshold, batchSize, shards
	return s, f, sender
}

// A sharded publish answers exactly what the publisher would have answered
// sending everything itself, and each connection gets the frame once, the
// same bytes.
func TestShardedPublishMatchesUnsharded(t *testing.T) {
	old := time.Now().Add(-time.Minute)
	scenario := func(s *notify.Service, sender *recordingSender) notify.PublishResult {
		for i := range 23 {
			connect(t, s, fmt.Sprintf("c%02d", i), fmt.Sprint(i), old, "g")
		}
		connect(t, s, "gone-old", "gone", old, "g")
		connect(t, s, "gone-fresh", "fresh", time.Now(), "g")
		connect(t, s, "throttled", "slow", old, "g")
		// A token that expired an hour ago: closed instead, counted gone.
		if err := connectAs(t, s, nil, notify.ConnectRequest{ID: "expired", UserID: "exp", Groups: []string{"g"},
			ConnectedAt: old, TokenExpiresAt: time.Now().Add(-time.Hour)}); err != nil {
			t.Fatal(err)
		}
		sender.gone["gone-old"], sender.gone["gone-fresh"] = true, true
		sender.failing["throttled"] = true
		// A title encoding/json writes with escapes (U+2028) and data
		// whose escapes are the caller's: the batch must not reformat them.
		return publish(t, s, `{"groups":["g"],"users":["gone","slow","3","nobody","7"],"notification":{"type":"t","title":"<b>&</b> \u2028","data":{"k":"\u00e9\/"}}}`)
	}
	plain, _, plainSender := newService(t)
	sharded, fan, shardedSender := newShardedService(t, 10, 4, 3)
	want := scenario(plain, plainSender)
	got := scenario(sharded, shardedSender)

	if want.Connections != 27 || want.Delivered != 23 || want.Gone != 3 || want.Failed != 1 {
		t.Fatalf("unsharded answer %+v, want 27 = 23 delivered + 3 gone + 1 failed", want)
	}
	if !shardedSender.isClosed("expired") || len(shardedSender.frames["expired"]) != 0 {
		t.Error("a connection whose token expired must be closed by its batch, not sent to")
	}
	if got.Connections != want.Connections || got.Delivered != want.Delivered || got.Gone != want.Gone ||
		got.Failed != want.Failed || !slices.Equal(got.OfflineUsers, want.OfflineUsers) || got.Duplicate {
		t.Errorf("sharded answer %+v, unsharded %+v", got, want)
	}
	if len(fan.batches) != 7 { // 27 connections in batches of 4
		t.Errorf("%d batches, want 7", len(fan.batches))
	}
	if m := fan.maxSeen.Load(); m > 3 || m < 2 {
		t.Errorf("%d batches in flight at most, want 2 to FanoutShards (3)", m)
	}
	seen := map[string]int{}
	for _, b := range fan.batches {
		if len(b.Connections) > 4 {
			t.Errorf("batch of %d connections, want at most 4", len(b.Connections))
		}
		if b.PostsPerSecond != notify.DefaultFanoutPostsPerSecond/3 {
			t.Errorf("postsPerSecond %d, want %d", b.PostsPerSecond, notify.DefaultFanoutPostsPerSecond/3)
		}
		for _, c := range b.Connections {
			seen[c.ID]++
			named := slices.Contains([]string{"gone", "slow", "3", "nobody", "7"}, c.UserID)
			if c.UserID != "" && !named {
				t.Errorf("batch names user %q, who was not named in the request", c.UserID)
			}
		}
	}
	for i := range 23 {
		id := fmt.Sprintf("c%02d", i)
		if seen[id] != 1 {
			t.Errorf("%s in %d batches, want 1", id, seen[id])
		}
		if a, b := plainSender.frames[id], shardedSender.frames[id]; len(a) != 1 || len(b) != 1 {
			t.Errorf("%s got %d frames unsharded, %d sharded: want 1 each", id, len(a), len(b))
		} else if !strings.Contains(string(b[0]), `"title":"<b>&</b> \u2028"`) || !strings.Contains(string(b[0]), `{"k":"\u00e9\/"}`) ||
			!bytes.Equal(withoutIDs(a[0]), withoutIDs(b[0])) {
			t.Errorf("%s got %s through the batch, %s unsharded: the frame must pass byte for byte", id, b[0], a[0])
		}
	}
	ctx := context.Background()
	if _, err := sharded.Connections.GetConnection(ctx, "gone-old"); notify.ErrorCode(err) != notify.ENOTFOUND {
		t.Errorf("an old connection answered 410 in a batch must be removed, got %v", err)
	}
	if _, err := sharded.Connections.GetConnection(ctx, "gone-fresh"); err != nil {
		t.Errorf("a fresh connection answered 410 in a batch must stay: %v", err)
	}
}

// withoutIDs blanks a frame's id and createdAt, which differ between two
// publishes.
func withoutIDs(frame []byte) []byte {
	return regexp.MustCompile(`"(id|createdAt)":"[^"]*"`).ReplaceAll(frame, []byte(`"$1":""`))
}

// A batch whose deadline has passed sends nothing and counts every
// connection failed, so that the publisher answers in time.
func TestBatchPastItsDeadlineSendsNothing(t *testing.T) {
	s, _, sender := newService(t)
	b := notify.FanoutBatch{Frame: []byte(`{"type":"notification"}`), Deadline: time.Now().Add(-time.Second).UnixMilli(),
		Connections: []notify.FanoutConnection{{ID: "a"}, {ID: "b"}}}
	res := s.DeliverBatch(context.Background(), b)
	if res.Failed != 2 || res.Delivered != 0 || sender.count("a")+sender.count("b") != 0 {
		t.Errorf("past its deadline: %+v, %d frames sent; want 2 failed, none sent", res, sender.count("a")+sender.count("b"))
	}
}

// Below the threshold nothing changes: no batch.
func TestPublishBelowThresholdSendsItself(t *testing.T) {
	s, fan, sender := newShardedService(t, 3, 2, 2)
	old := time.Now().Add(-time.Minute)
	for i := range 3 {
		connect(t, s, fmt.Sprint("c", i), "u", old, "g")
	}
	res := publish(t, s, `{"groups":["g"],"notification":{"type":"t"}}`)
	if res.Connections != 3 || res.Delivered != 3 || len(fan.batches) != 0 {
		t.Errorf("answer %+v after %d batches, want 3 delivered by the publisher itself", res, len(fan.batches))
	}
	for i := range 3 {
		if n := sender.count(fmt.Sprint("c", i)); n != 1 {
			t.Errorf("c%d got %d frames", i, n)
		}
	}
}

// A batch whose FanoutFunction fails or times out is counted failed; the
// notification stays in the inbox, so its connections get it on sync.
func TestFailedBatchIsCountedFailedAndKept(t *testing.T) {
	s, fan, sender := newShardedService(t, 2, 2, 2)
	fan.fail = true
	old := time.Now().Add(-time.Minute)
	for i := range 5 {
		connect(t, s, fmt.Sprint("c", i), fmt.Sprint("u", i), old, "g")
	}
	res := publish(t, s, `{"groups":["g"],"users":["u1"],"notification":{"type":"t"}}`)
	if res.Connections != 5 || res.Delivered != 0 || res.Failed != 5 || !slices.Equal(res.OfflineUsers, []string{"u1"}) {
		t.Errorf("answer %+v, want 5 connections, all failed, u1 offline", res)
	}
	if err := s.HandleMessage(context.Background(), sender, "c1", []byte(`{"action":"sync","ref":"r"}`), false); err != nil {
		t.Fatal(err)
	}
	var synced struct {
		Type          string `json:"type"`
		Notifications []struct {
			ID string `json:"id"`
		} `json:"notifications"`
	}
	if err := json.Unmarshal(sender.frames["c1"][0], &synced); err != nil {
		t.Fatal(err)
	}
	if synced.Type != "synced" || len(synced.Notifications) != 1 || synced.Notifications[0].ID != res.ID {
		t.Errorf("sync after a failed batch = %s, want the notification %s", sender.frames["c1"][0], res.ID)
	}
}

func TestDecodeFanoutBatchRefusesBadBatches(t *testing.T) {
	for _, c := range []struct{ payload, want string }{
		{`{"frame":{"type":"notification"},"connections":[]}`, "0 connections"},
		{`{"frame":"text","connections":[{"id":"a"}]}`, "frame must be a JSON object"},
		{`{"frame":{},"connections":[{"id":""}]}`, "connections[0]: id is required"},
		{`{"frame":{},"connections":[{"id":"a"}],"postsPerSecond":-1}`, "postsPerSecond"},
		{`{"frame":{},"frame":{},"connections":[{"id":"a"}]}`, "repeated key"},
		{`{"frame":{},"connections":[{"id":"a"}],"postPerSecond":5}`, `unknown field "postPerSecond" (allowed: frame, connections, postsPerSecond, deadline)`},
		{`{"frame":{},"connections":[{"id":"a","user":"x"}]}`, `unknown field "user" (allowed: id, userId, connectedAt, tokenExpiresAt)`},
		{`{"frame":{"a":"` + strings.Repeat("x", notify.MaxFrameBytes) + `"},"connections":[{"id":"a"}]}`, "over"},
	} {
		_, err := notify.DecodeFanoutBatch([]byte(c.payload))
		if notify.ErrorCode(err) != notify.EINVALID || !strings.Contains(notify.ErrorMessage(err), c.want) {
			t.Errorf("%.60s: %v, want EINVALID naming %q", c.payload, err, c.want)
		}
	}
}

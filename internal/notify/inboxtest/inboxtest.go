// Package inboxtest is the behaviour suite every notify.InboxStore must
// pass. An implementation's test calls Run with a constructor:
//
//	func TestInbox(t *testing.T) {
//		inboxtest.Run(t, func(t *testing.T) notify.InboxStore { return memory.New() })
//	}
//
// Like internal/notify/storetest, the suite makes no assumption about the
// store being empty or fresh: every subtest uses streams, users, keys and
// ids of its own, so a constructor may hand out stores that share tables.
// The one shared stream, notify.BroadcastStream, is only used where the
// subtest can ignore other subtests' items. Ids come from notify.NewID and
// payloads are the JSON of a notify.Notification, as in production.
//
// Nothing relies on timing: an item meant to be expired is stored with an
// expiresAt an hour in the past, a live one an hour in the future, so stores
// that keep expiry to the second (DynamoDB's TTL) agree. The suite does
// assume that a write is visible to the next read (strongly consistent
// reads), and that expired items may still be stored (no TTL sweep, as on
// dynalite) but are never returned.
package inboxtest

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/workorders/notify/internal/notify"
)

// Sizes of the heavier subtests. FanOutStreams is the most users a publish
// may name (docs/PROTOCOL.md §4): 40 DynamoDB batches of 25. FanOutTimeout is the
// longest a store write may take before a publish fails (docs/PROTOCOL.md §5).
const (
	FanOutStreams   = 1000
	FanOutTimeout   = 10 * time.Second
	CapItems        = 120
	CapMax          = 100
	ClaimRacers     = 50
	PagingItems     = 7
	LargePayloadLen = 110 << 10
	// writeConcurrency bounds the store calls in flight where the suite
	// writes or reads many items.
	writeConcurrency = 16
)

// Run runs the suite. newStore is called once per subtest and must return a
// working store; it may register cleanups on the t it is given.
func Run(t *testing.T, newStore func(t *testing.T) notify.InboxStore) {
	type test struct {
		name string
		fn   func(t *testing.T, s notify.InboxStore, n names)
	}
	groups := []struct {
		name  string
		tests []test
	}{
		{"Append", []test{
			{"RoundTrip", testRoundTrip},
			{"OutOfOrder", testOutOfOrder},
			{"SameStreamTwice", testAppendTwice},
			{"FanOut", testFanOut},
		}},
		{"ListAfter", []test{
			{"Paging", testPaging},
			{"Exclusive", testExclusive},
			{"AcrossStreams", testAcrossStreams},
			{"TwoStreamsOnce", testTwoStreamsOnce},
			{"DuplicateAtPageEnd", testDuplicateAtPageEnd},
		}},
		{"ListLatest", []test{
			{"NewestAscending", testListLatest},
			{"TwoStreamsOnce", testListLatestOnce},
		}},
		{"Visibility", []test{
			{"OtherUserAndGroup", testVisibility},
			{"NoStreams", testNoStreams},
		}},
		{"Expiry", []test{
			{"NeverReturned", testExpiry},
			{"MoreIgnoresExpired", testExpiryMore},
		}},
		{"VisibleIDs", []test{
			{"OrderGiven", testVisibleIDs},
		}},
		{"Idempotency", []test{
			{"FirstClaimWins", testClaimFirstWins},
			{"Commit", testClaimCommit},
			{"ExpiredClaim", testClaimExpired},
			{"Release", testRelease},
			{"ConcurrentClaims", testConcurrentClaims},
		}},
		{"Unread", []test{
			{"MarkRead", testMarkRead},
			{"MarkAllRead", testMarkAllRead},
			{"Cap", testUnreadCap},
			{"PerUser", testReadPerUser},
			{"TwoStreamsOnce", testUnreadOnce},
			{"EmptyUserRefused", testEmptyUserRefused},
		}},
		{"ReadState", []test{
			{"WatermarkAndMarks", testReadStateOfListed},
			{"PerUser", testReadStatePerUser},
			{"ExpiredMarks", testReadStateExpired},
			{"FullPage", testReadStateFullPage},
		}},
		{"Context", []test{
			{"Canceled", testContextCanceled},
		}},
	}
	for _, g := range groups {
		t.Run(g.name, func(t *testing.T) {
			for _, tc := range g.tests {
				t.Run(tc.name, func(t *testing.T) {
					s := newStore(t)
					if s == nil {
						t.Fatal("newStore returned nil")
					}
					tc.fn(t, s, newNames(t))
				})
			}
		})
	}
}

// names makes streams, users and keys unique to one subtest.
type names struct{ p string }

func newNames(t *testing.T) names {
	var b [6]byte
	if _, err := rand.Read(b[:]); err != nil {
		t.Fatal(err)
	}
	return names{p: "it" + hex.EncodeToString(b[:])}
}

// user returns a user id.
func (n names) user(s string) string { return n.p + "." + s }

// userStream returns the stream of user s.
func (n names) userStream(s string) string { return notify.UserStream(n.user(s)) }

// groupStream returns the stream of group s.
func (n names) groupStream(s string) string { return notify.GroupStream("team:" + n.p + "." + s) }

// key returns an idempotency key.
func (n names) key(s string) string { return "wo-" + n.p + "-" + s }

// live is an expiry an hour from now; dead one an hour ago.
func live() time.Time { return time.Now().Add(time.Hour) }
func dead() time.Time { return time.Now().Add(-time.Hour) }

// item is a notification as the suite stores it.
type item = notify.StoredNotification

// newItem mints an id and returns the notification's JSON, with characters
// a store must keep byte-for-byte (non-ASCII, escapes, HTML-escaped <>&).
func newItem(t *testing.T, title string) item {
	t.Helper()
	return itemWithID(t, notify.NewID(time.Now()), title)
}

func itemWithID(t *testing.T, id, title string) item {
	t.Helper()
	return itemWithData(t, id, title, json.RawMessage(`{"workOrderId":"WO-1042","note":"Pumpe P-7 läuft aus \u2013 <b>dringend</b> & \"sofort\" 🔧"}`))
}

func itemWithData(t *testing.T, id, title string, data json.RawMessage) item {
	t.Helper()
	payload, err := json.Marshal(notify.Notification{
		ID: id, Type: "workorder.assigned", Title: title, Body: "Pump P-7 leaking at plant 3 <é>",
		Data: data, CreatedAt: notify.Timestamp{Time: time.Now()},
	})
	if err != nil {
		t.Fatal(err)
	}
	return item{ID: id, Payload: payload}
}

// newItems mints count items in id order.
func newItems(t *testing.T, count int, title string) []item {
	t.Helper()
	out := make([]item, count)
	for i := range out {
		out[i] = newItem(t, fmt.Sprintf("%s %d", title, i))
	}
	return out
}

// newID mints an id that is stored nowhere, between the ids minted before
// and after it.
func newID() string { return notify.NewID(time.Now()) }

func appendTo(t *testing.T, s notify.InboxStore, expiresAt time.Time, streams []string, items ...item) {
	t.Helper()
	for _, it := range items {
		if err := s.AppendNotification(t.Context(), it, streams, expiresAt); err != nil {
			t.Fatalf("AppendNotification(%s, %d streams): %v", it.ID, len(streams), err)
		}
	}
}

// appendConcurrently appends items to streams with at most writeConcurrency
// calls in flight.
func appendConcurrently(t *testing.T, s notify.InboxStore, expiresAt time.Time, streams []string, items []item) {
	t.Helper()
	concurrently(t, len(items), func(i int) error {
		if err := s.AppendNotification(t.Context(), items[i], streams, expiresAt); err != nil {
			return fmt.Errorf("AppendNotification(%s): %w", items[i].ID, err)
		}
		return nil
	})
}

// concurrently calls fn(0..count-1) with at most writeConcurrency calls in
// flight and fails the test with the first error.
func concurrently(t *testing.T, count int, fn func(i int) error) {
	t.Helper()
	var (
		wg    sync.WaitGroup
		sem   = make(chan struct{}, writeConcurrency)
		mu    sync.Mutex
		first error
	)
	for i := range count {
		sem <- struct{}{}
		wg.Go(func() {
			defer func() { <-sem }()
			if err := fn(i); err != nil {
				mu.Lock()
				if first == nil {
					first = err
				}
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	if first != nil {
		t.Fatal(first)
	}
}

func listAfter(t *testing.T, s notify.InboxStore, streams []string, after string, limit int) ([]item, bool) {
	t.Helper()
	page, more, err := s.ListAfter(t.Context(), streams, after, limit)
	if err != nil {
		t.Fatalf("ListAfter(%q, after %q, limit %d): %v", streams, after, limit, err)
	}
	return page, more
}

func listLatest(t *testing.T, s notify.InboxStore, streams []string, limit int) []item {
	t.Helper()
	page, err := s.ListLatest(t.Context(), streams, limit)
	if err != nil {
		t.Fatalf("ListLatest(%q, limit %d): %v", streams, limit, err)
	}
	return page
}

func countUnread(t *testing.T, s notify.InboxStore, user string, streams []string, max int) int {
	t.Helper()
	n, err := s.CountUnread(t.Context(), user, streams, max)
	if err != nil {
		t.Fatalf("CountUnread(%q, max %d): %v", user, max, err)
	}
	return n
}

func markRead(t *testing.T, s notify.InboxStore, user string, ids ...string) {
	t.Helper()
	if err := s.MarkRead(t.Context(), user, ids, live()); err != nil {
		t.Fatalf("MarkRead(%q, %d ids): %v", user, len(ids), err)
	}
}

func markAllRead(t *testing.T, s notify.InboxStore, user, upTo string) {
	t.Helper()
	if err := s.MarkAllRead(t.Context(), user, upTo); err != nil {
		t.Fatalf("MarkAllRead(%q, %q): %v", user, upTo, err)
	}
}

// readState returns the read flags of ids for user.
func readState(t *testing.T, s notify.InboxStore, user string, ids ...string) []bool {
	t.Helper()
	got, err := s.ReadState(t.Context(), user, ids)
	if err != nil {
		t.Fatalf("ReadState(%q, %d ids): %v", user, len(ids), err)
	}
	if len(got) != len(ids) {
		t.Fatalf("ReadState(%q, %d ids) = %d flags, want one per id", user, len(ids), len(got))
	}
	return got
}

// wantRead fails unless the read flags of the items listed are want (the
// ids marked read), item by item.
func wantRead(t *testing.T, what string, s notify.InboxStore, user string, listed []item, read ...string) {
	t.Helper()
	got := readState(t, s, user, ids(listed)...)
	for i, it := range listed {
		if w := slices.Contains(read, it.ID); got[i] != w {
			t.Errorf("%s: %s (%d of %d listed) read = %v, want %v", what, it.ID, i, len(listed), got[i], w)
		}
	}
}

// claim claims key for holder and returns who holds it then.
func claim(t *testing.T, s notify.InboxStore, key, holder string, expiresAt time.Time) (string, bool) {
	t.Helper()
	c, err := s.ClaimIdempotencyKey(t.Context(), key, holder, expiresAt)
	if err != nil {
		t.Fatalf("ClaimIdempotencyKey(%q, %s): %v", key, holder, err)
	}
	return c.Holder, c.Claimed
}

func release(t *testing.T, s notify.InboxStore, key, id string) {
	t.Helper()
	if err := s.ReleaseIdempotencyKey(t.Context(), key, id); err != nil {
		t.Fatalf("ReleaseIdempotencyKey(%q, %s): %v", key, id, err)
	}
}

func ids(items []item) []string {
	out := make([]string, len(items))
	for i, it := range items {
		out[i] = it.ID
	}
	return out
}

// wantPage fails unless got holds exactly want, in that order, with
// byte-for-byte equal payloads.
func wantPage(t *testing.T, what string, got, want []item) {
	t.Helper()
	if g, w := ids(got), ids(want); !slices.Equal(g, w) {
		t.Errorf("%s: got ids %q, want %q", what, g, w)
		return
	}
	for i := range got {
		if !bytes.Equal(got[i].Payload, want[i].Payload) {
			t.Errorf("%s: payload of %s changed:\n got %s\nwant %s", what, want[i].ID, clip(got[i].Payload), clip(want[i].Payload))
		}
	}
}

// wantIDs fails unless got is exactly want, in that order.
func wantIDs(t *testing.T, what string, got, want []string) {
	t.Helper()
	if !slices.Equal(got, want) {
		t.Errorf("%s: got ids %q, want %q", what, got, want)
	}
}

// wantAscending fails unless page's ids strictly increase, all after after.
func wantAscending(t *testing.T, what string, page []item, after string) {
	t.Helper()
	prev := after
	for _, it := range page {
		if it.ID <= prev {
			t.Errorf("%s: id %s follows %q: not strictly ascending", what, it.ID, prev)
			return
		}
		prev = it.ID
	}
}

func clip(b []byte) string {
	if len(b) > 200 {
		return string(b[:200]) + "..."
	}
	return string(b)
}

// byID returns want's items in id order, each once.
func byID(items ...[]item) []item {
	seen := make(map[string]bool)
	var out []item
	for _, its := range items {
		for _, it := range its {
			if !seen[it.ID] {
				seen[it.ID] = true
				out = append(out, it)
			}
		}
	}
	slices.SortFunc(out, func(a, b item) int { return strings.Compare(a.ID, b.ID) })
	return out
}

func testRoundTrip(t *testing.T, s notify.InboxStore, n names) {
	stream := []string{n.userStream("42")}
	items := newItems(t, 3, "WO-1042 assigned to you")
	blob, _ := json.Marshal(map[string]string{"blob": strings.Repeat("x", LargePayloadLen)})
	items = append(items, itemWithData(t, newID(), "large", blob))
	stored := make([]item, len(items))
	for i, it := range items {
		// The store gets its own copy; changing ours afterwards must not
		// change what it stored.
		stored[i] = item{ID: it.ID, Payload: bytes.Clone(it.Payload)}
		appendTo(t, s, live(), stream, stored[i])
		stored[i].Payload[len(stored[i].Payload)-1] = ' '
	}

	page, more := listAfter(t, s, stream, "", 10)
	wantPage(t, "ListAfter", page, items)
	if more {
		t.Error("ListAfter: more = true with every item returned")
	}
	wantPage(t, "ListLatest", listLatest(t, s, stream, 10), items)

	// The returned payload must not alias the store's.
	if len(page) > 0 {
		page[0].Payload[0] = 'X'
		again, _ := listAfter(t, s, stream, "", 1)
		wantPage(t, "ListAfter after changing a returned payload", again, items[:1])
	}
}

func testOutOfOrder(t *testing.T, s notify.InboxStore, n names) {
	stream := []string{n.userStream("42")}
	items := newItems(t, 5, "out of order")
	// Publishes on different machines store in a different order than their
	// ids: the later id first, and some in the middle.
	for _, i := range []int{4, 0, 3, 1, 2} {
		appendTo(t, s, live(), stream, items[i])
	}
	page, more := listAfter(t, s, stream, "", 10)
	wantPage(t, "ListAfter", page, items)
	if more {
		t.Error("ListAfter: more = true with every item returned")
	}
	page, _ = listAfter(t, s, stream, items[1].ID, 2)
	wantPage(t, "ListAfter(after the second, limit 2)", page, items[2:4])
	wantPage(t, "ListLatest(3)", listLatest(t, s, stream, 3), items[2:])
}

func testAppendTwice(t *testing.T, s notify.InboxStore, n names) {
	// A retried write stores the same notification in the same stream again:
	// it is still one notification.
	stream := []string{n.userStream("42")}
	it := newItem(t, "retried")
	appendTo(t, s, live(), stream, it)
	appendTo(t, s, live(), stream, it)
	page, more := listAfter(t, s, stream, "", 10)
	wantPage(t, "ListAfter", page, []item{it})
	if more {
		t.Error("ListAfter: more = true with every item returned")
	}
	if got := countUnread(t, s, n.user("42"), stream, 10); got != 1 {
		t.Errorf("CountUnread = %d, want 1", got)
	}
}

func testFanOut(t *testing.T, s notify.InboxStore, n names) {
	streams := make([]string, FanOutStreams)
	for i := range streams {
		streams[i] = n.userStream(fmt.Sprintf("u%04d", i))
	}
	it := newItem(t, "fan-out")
	ctx, cancel := context.WithTimeout(t.Context(), FanOutTimeout)
	defer cancel()
	start := time.Now()
	if err := s.AppendNotification(ctx, it, streams, live()); err != nil {
		t.Fatalf("AppendNotification to %d streams: %v (after %v)", len(streams), err, time.Since(start))
	}
	t.Logf("appended to %d streams in %v", len(streams), time.Since(start))

	concurrently(t, len(streams), func(i int) error {
		page, more, err := s.ListAfter(t.Context(), streams[i:i+1], "", 5)
		switch {
		case err != nil:
			return fmt.Errorf("ListAfter(%q): %w", streams[i], err)
		case more || len(page) != 1 || page[0].ID != it.ID || !bytes.Equal(page[0].Payload, it.Payload):
			return fmt.Errorf("ListAfter(%q) = %d items %q, more %v; want just %s", streams[i], len(page), ids(page), more, it.ID)
		}
		return nil
	})
	// A user of many groups lists many of these streams at once: once.
	page, _ := listAfter(t, s, streams[:52], "", 10)
	wantPage(t, "ListAfter(52 of the streams)", page, []item{it})
}

func testPaging(t *testing.T, s notify.InboxStore, n names) {
	stream := []string{n.userStream("42")}
	items := newItems(t, PagingItems, "page")
	appendTo(t, s, live(), stream, items...)

	for _, step := range []struct {
		after     string
		limit     int
		want      []item
		wantMore  bool
		what, why string
	}{
		{"", 3, items[0:3], true, "first page", "after \"\" starts at the oldest"},
		{items[2].ID, 3, items[3:6], true, "second page", "after the last id of the first page"},
		{items[5].ID, 3, items[6:7], false, "last page", "one left"},
		{items[6].ID, 3, nil, false, "after the newest", "nothing left"},
		{items[2].ID, 4, items[3:7], false, "limit equal to what is left", "more must be false"},
		{items[2].ID, 5, items[3:7], false, "limit above what is left", "more must be false"},
		{"", PagingItems, items, false, "all at once", "limit equal to the count"},
		{"", PagingItems - 1, items[:PagingItems-1], true, "all but one", "one more exists"},
		{"", 1, items[:1], true, "limit 1", "oldest only"},
	} {
		page, more := listAfter(t, s, stream, step.after, step.limit)
		what := fmt.Sprintf("%s (after %q, limit %d: %s)", step.what, step.after, step.limit, step.why)
		wantPage(t, what, page, step.want)
		if more != step.wantMore {
			t.Errorf("%s: more = %v, want %v", what, more, step.wantMore)
		}
	}

	// Paging with the last id of each page visits every item once.
	var all []item
	after := ""
	for range PagingItems + 1 {
		page, more := listAfter(t, s, stream, after, 3)
		all = append(all, page...)
		if !more {
			break
		}
		if len(page) == 0 {
			t.Fatal("ListAfter returned no items with more = true")
		}
		after = page[len(page)-1].ID
	}
	wantPage(t, "paging by 3", all, items)
}

func testExclusive(t *testing.T, s notify.InboxStore, n names) {
	stream := []string{n.userStream("42")}
	before := newID() // older than every item, stored nowhere
	a := newItems(t, 2, "a")
	mid := newID() // between a and b, stored nowhere
	b := newItems(t, 2, "b")
	appendTo(t, s, live(), stream, append(slices.Clone(a), b...)...)

	page, _ := listAfter(t, s, stream, a[0].ID, 10)
	wantPage(t, "after a stored id", page, append(a[1:2:2], b...))
	page, _ = listAfter(t, s, stream, mid, 10)
	wantPage(t, "after an id that is not stored", page, b)
	page, _ = listAfter(t, s, stream, before, 10)
	wantPage(t, "after an id older than all", page, append(slices.Clone(a), b...))
	page, _ = listAfter(t, s, stream, "00000000000000000000000000", 10)
	wantPage(t, "after the zero ULID", page, append(slices.Clone(a), b...))
	page, more := listAfter(t, s, stream, newID(), 10)
	wantPage(t, "after an id newer than all", page, nil)
	if more {
		t.Error("after an id newer than all: more = true")
	}
}

func testAcrossStreams(t *testing.T, s notify.InboxStore, n names) {
	// The broadcast stream is shared by every subtest (and, with a shared
	// table, by other runs): assert only about this subtest's items, listed
	// after an id minted before them.
	user, group := n.userStream("42"), n.groupStream("plant-3")
	streams := []string{user, group, notify.BroadcastStream}
	after := newID()
	var want, private []item
	mine := make(map[string]bool)
	// Interleaved: user, group, broadcast, broadcast, user, group, ...
	for i, stream := range []string{user, group, notify.BroadcastStream, notify.BroadcastStream, user, group, group, user, notify.BroadcastStream} {
		it := newItem(t, fmt.Sprintf("across %d", i))
		appendTo(t, s, live(), []string{stream}, it)
		want = append(want, it)
		mine[it.ID] = true
		if stream != notify.BroadcastStream {
			private = append(private, it)
		}
	}

	for _, limit := range []int{100, 2} {
		var got []item
		cursor := after
		for pages := 0; ; pages++ {
			if pages > 1000 {
				t.Fatalf("limit %d: more than 1000 pages", limit)
			}
			page, more := listAfter(t, s, streams, cursor, limit)
			if len(page) > limit {
				t.Errorf("limit %d: page of %d", limit, len(page))
			}
			wantAscending(t, fmt.Sprintf("limit %d", limit), page, cursor)
			for _, it := range page {
				if mine[it.ID] {
					got = append(got, it)
				}
			}
			if !more {
				break
			}
			if len(page) == 0 {
				t.Fatalf("limit %d: no items with more = true", limit)
			}
			cursor = page[len(page)-1].ID
		}
		wantPage(t, fmt.Sprintf("merged, limit %d", limit), got, want)
	}

	// Without the broadcast stream the assertions can be exact.
	wantPage(t, "ListLatest(user, group)", listLatest(t, s, []string{user, group}, 100), private)
	wantPage(t, "ListLatest(user, group, limit 3)", listLatest(t, s, []string{user, group}, 3), private[len(private)-3:])
	page, more := listAfter(t, s, []string{group, user}, "", 4)
	wantPage(t, "ListAfter(group, user, limit 4)", page, private[:4])
	if !more {
		t.Error("ListAfter(group, user, limit 4): more = false")
	}
}

func testTwoStreamsOnce(t *testing.T, s notify.InboxStore, n names) {
	user, group := n.userStream("42"), n.groupStream("plant-3")
	items := newItems(t, 6, "once")
	appendTo(t, s, live(), []string{user}, items[0], items[2])
	appendTo(t, s, live(), []string{user, group}, items[1], items[3]) // to the user and to a group of theirs
	appendTo(t, s, live(), []string{group}, items[4])
	appendTo(t, s, live(), []string{group, user}, items[5])

	for _, streams := range [][]string{{user, group}, {group, user}, {user, group, user}} {
		page, more := listAfter(t, s, streams, "", 10)
		wantPage(t, fmt.Sprintf("ListAfter(%q)", streams), page, items)
		if more {
			t.Errorf("ListAfter(%q): more = true with every item returned", streams)
		}
		page, more = listAfter(t, s, streams, "", 3)
		wantPage(t, fmt.Sprintf("ListAfter(%q, limit 3)", streams), page, items[:3])
		if !more {
			t.Errorf("ListAfter(%q, limit 3): more = false", streams)
		}
		page, more = listAfter(t, s, streams, items[2].ID, 3)
		wantPage(t, fmt.Sprintf("ListAfter(%q, after the third, limit 3)", streams), page, items[3:])
		if more {
			t.Errorf("ListAfter(%q, after the third, limit 3): more = true with nothing left", streams)
		}
	}
}

func testDuplicateAtPageEnd(t *testing.T, s notify.InboxStore, n names) {
	// The newest item is in both streams: its second copy is not "more".
	user, group := n.userStream("42"), n.groupStream("plant-3")
	streams := []string{user, group}
	items := newItems(t, 4, "edge")
	appendTo(t, s, live(), []string{user}, items[0])
	appendTo(t, s, live(), []string{group}, items[1])
	appendTo(t, s, live(), streams, items[2], items[3])

	// After item 2 with limit 1, after item 1 with limit 2...: the page ends
	// with the newest item, and only its duplicate is left.
	for limit := 1; limit <= 4; limit++ {
		after, what := "", "from the oldest"
		if limit < 4 {
			after, what = items[3-limit].ID, fmt.Sprintf("after item %d", 3-limit)
		}
		page, more := listAfter(t, s, streams, after, limit)
		wantPage(t, fmt.Sprintf("%s, limit %d", what, limit), page, items[4-limit:])
		if more {
			t.Errorf("%s, limit %d: more = true, but only duplicates are left", what, limit)
		}
	}
	page, more := listAfter(t, s, streams, items[1].ID, 1)
	wantPage(t, "after item 1, limit 1", page, items[2:3])
	if !more {
		t.Error("after item 1, limit 1: more = false with item 3 left")
	}
}

func testListLatest(t *testing.T, s notify.InboxStore, n names) {
	stream := []string{n.userStream("42")}
	items := newItems(t, 7, "latest")
	appendTo(t, s, live(), stream, items...)
	for _, tc := range []struct {
		limit int
		want  []item
	}{
		{1, items[6:]},
		{3, items[4:]},
		{7, items},
		{100, items},
	} {
		wantPage(t, fmt.Sprintf("ListLatest(limit %d)", tc.limit), listLatest(t, s, stream, tc.limit), tc.want)
	}
	wantPage(t, "ListLatest of an empty stream", listLatest(t, s, []string{n.userStream("nobody")}, 10), nil)
}

func testListLatestOnce(t *testing.T, s notify.InboxStore, n names) {
	user, group := n.userStream("42"), n.groupStream("plant-3")
	streams := []string{user, group}
	items := newItems(t, 6, "latest once")
	appendTo(t, s, live(), []string{user}, items[0], items[3])
	appendTo(t, s, live(), []string{group}, items[1])
	appendTo(t, s, live(), streams, items[2], items[4], items[5])
	for _, tc := range []struct {
		limit int
		want  []item
	}{
		{1, items[5:]},
		{2, items[4:]},
		{3, items[3:]},
		{5, items[1:]},
		{6, items},
		{50, items},
	} {
		wantPage(t, fmt.Sprintf("ListLatest(limit %d)", tc.limit), listLatest(t, s, streams, tc.limit), tc.want)
	}
	wantPage(t, "ListLatest(the user's stream twice)", listLatest(t, s, []string{user, user}, 10), byID([]item{items[0], items[2], items[3], items[4], items[5]}))
}

func testVisibility(t *testing.T, s notify.InboxStore, n names) {
	userA, userB := n.userStream("42"), n.userStream("43")
	plant3, plant4 := n.groupStream("plant-3"), n.groupStream("plant-4")
	// A group named like a user's stream is another stream than the user's.
	lookalike := notify.GroupStream(n.userStream("42"))

	toA, toB := newItem(t, "to A"), newItem(t, "to B")
	toPlant3, toPlant4 := newItem(t, "to plant-3"), newItem(t, "to plant-4")
	toLookalike := newItem(t, "to group user:42")
	appendTo(t, s, live(), []string{userA}, toA)
	appendTo(t, s, live(), []string{userB}, toB)
	appendTo(t, s, live(), []string{plant3}, toPlant3)
	appendTo(t, s, live(), []string{plant4}, toPlant4)
	appendTo(t, s, live(), []string{lookalike}, toLookalike)

	aStreams := []string{userA, plant3}
	want := []item{toA, toPlant3}
	page, more := listAfter(t, s, aStreams, "", 10)
	wantPage(t, "A's ListAfter", page, want)
	if more {
		t.Error("A's ListAfter: more = true")
	}
	wantPage(t, "A's ListLatest", listLatest(t, s, aStreams, 10), want)
	if got := countUnread(t, s, n.user("42"), aStreams, 10); got != 2 {
		t.Errorf("A's CountUnread = %d, want 2", got)
	}
	vis, err := s.VisibleIDs(t.Context(), aStreams, []string{toA.ID, toB.ID, toPlant3.ID, toPlant4.ID, toLookalike.ID})
	if err != nil {
		t.Fatalf("VisibleIDs: %v", err)
	}
	wantIDs(t, "A's VisibleIDs", vis, []string{toA.ID, toPlant3.ID})

	page, _ = listAfter(t, s, []string{userB}, "", 10)
	wantPage(t, "B's ListAfter", page, []item{toB})
	page, _ = listAfter(t, s, []string{lookalike}, "", 10)
	wantPage(t, "group user:42's ListAfter", page, []item{toLookalike})
}

func testNoStreams(t *testing.T, s notify.InboxStore, n names) {
	it := newItem(t, "to nobody listed")
	appendTo(t, s, live(), []string{n.userStream("42")}, it)
	for _, streams := range [][]string{nil, {}, {n.userStream("43")}} {
		page, more := listAfter(t, s, streams, "", 10)
		if len(page) != 0 || more {
			t.Errorf("ListAfter(%q) = %q, %v; want nothing", streams, ids(page), more)
		}
		if page := listLatest(t, s, streams, 10); len(page) != 0 {
			t.Errorf("ListLatest(%q) = %q, want nothing", streams, ids(page))
		}
		vis, err := s.VisibleIDs(t.Context(), streams, []string{it.ID})
		if err != nil {
			t.Fatalf("VisibleIDs(%q): %v", streams, err)
		}
		if len(vis) != 0 {
			t.Errorf("VisibleIDs(%q) = %q, want none", streams, vis)
		}
		if got := countUnread(t, s, n.user("42"), streams, 10); got != 0 {
			t.Errorf("CountUnread(%q) = %d, want 0", streams, got)
		}
	}
}

func testExpiry(t *testing.T, s notify.InboxStore, n names) {
	user, group := n.userStream("42"), n.groupStream("plant-3")
	streams := []string{user, group}
	items := newItems(t, 6, "expiry")
	// Expired items at the start, in the middle and at the end, stored
	// after the live ones (a store may not have removed them yet).
	expired := []item{items[0], items[2], items[5]}
	alive := []item{items[1], items[3], items[4]}
	appendTo(t, s, live(), []string{user}, items[1], items[4])
	appendTo(t, s, live(), []string{group}, items[3])
	appendTo(t, s, dead(), []string{user}, items[0], items[5])
	appendTo(t, s, dead(), streams, items[2])

	page, more := listAfter(t, s, streams, "", 10)
	wantPage(t, "ListAfter", page, alive)
	if more {
		t.Error("ListAfter: more = true with only expired items left")
	}
	page, _ = listAfter(t, s, streams, items[0].ID, 10)
	wantPage(t, "ListAfter(after the first)", page, alive)
	wantPage(t, "ListLatest", listLatest(t, s, streams, 10), alive)
	wantPage(t, "ListLatest(limit 2)", listLatest(t, s, streams, 2), alive[1:])
	wantPage(t, "ListLatest(limit 1)", listLatest(t, s, streams, 1), alive[2:])

	vis, err := s.VisibleIDs(t.Context(), streams, ids(items))
	if err != nil {
		t.Fatalf("VisibleIDs: %v", err)
	}
	wantIDs(t, "VisibleIDs", vis, ids(alive))
	if got := countUnread(t, s, n.user("42"), streams, 10); got != len(alive) {
		t.Errorf("CountUnread = %d, want %d (expired items %q are not counted)", got, len(alive), ids(expired))
	}
	if got := countUnread(t, s, n.user("42"), streams, 2); got != 2 {
		t.Errorf("CountUnread(max 2) = %d, want 2", got)
	}
}

func testExpiryMore(t *testing.T, s notify.InboxStore, n names) {
	stream := []string{n.userStream("42")}
	items := newItems(t, 6, "expiry more")
	appendTo(t, s, live(), stream, items[0], items[2], items[3])
	appendTo(t, s, dead(), stream, items[1], items[4], items[5])

	page, more := listAfter(t, s, stream, "", 2)
	wantPage(t, "limit 2", page, []item{items[0], items[2]})
	if !more {
		t.Error("limit 2: more = false with item 3 left")
	}
	page, more = listAfter(t, s, stream, items[2].ID, 2)
	wantPage(t, "after item 2, limit 2", page, items[3:4])
	if more {
		t.Error("after item 2, limit 2: more = true with only expired items left")
	}
	page, more = listAfter(t, s, stream, "", 3)
	wantPage(t, "limit 3", page, []item{items[0], items[2], items[3]})
	if more {
		t.Error("limit 3: more = true with only expired items left")
	}
	page, more = listAfter(t, s, stream, items[3].ID, 3)
	if len(page) != 0 || more {
		t.Errorf("after the last live item: %q, more %v; want nothing", ids(page), more)
	}
}

func testVisibleIDs(t *testing.T, s notify.InboxStore, n names) {
	user, group, other := n.userStream("42"), n.groupStream("plant-3"), n.userStream("43")
	items := newItems(t, 5, "visible")
	appendTo(t, s, live(), []string{user}, items[0], items[3])
	appendTo(t, s, live(), []string{group}, items[1])
	appendTo(t, s, live(), []string{user, group}, items[4])
	appendTo(t, s, live(), []string{other}, items[2])
	unknown := newID()

	for _, tc := range []struct {
		ask, want []string
	}{
		{[]string{items[4].ID, items[2].ID, unknown, items[0].ID, items[1].ID, items[3].ID},
			[]string{items[4].ID, items[0].ID, items[1].ID, items[3].ID}},
		{[]string{items[1].ID, items[0].ID}, []string{items[1].ID, items[0].ID}},
		{[]string{items[2].ID, unknown}, nil},
		{nil, nil},
		// Asked twice, echoed once (the `read` answer lists ids now read).
		{[]string{items[3].ID, items[0].ID, items[3].ID}, []string{items[3].ID, items[0].ID}},
	} {
		got, err := s.VisibleIDs(t.Context(), []string{user, group}, tc.ask)
		if err != nil {
			t.Fatalf("VisibleIDs(%q): %v", tc.ask, err)
		}
		wantIDs(t, fmt.Sprintf("VisibleIDs(%q)", tc.ask), got, tc.want)
	}
}

func testClaimFirstWins(t *testing.T, s notify.InboxStore, n names) {
	key := n.key("assigned-v1")
	first, second := newID(), newID()
	if got, claimed := claim(t, s, key, first, live()); got != first || !claimed {
		t.Errorf("first claim = %s, %v; want %s, true", got, claimed, first)
	}
	if got, claimed := claim(t, s, key, second, live()); got != first || claimed {
		t.Errorf("second claim = %s, %v; want %s, false", got, claimed, first)
	}
	// The holder claiming again is still a duplicate.
	if got, claimed := claim(t, s, key, first, live()); got != first || claimed {
		t.Errorf("claim by the holder = %s, %v; want %s, false", got, claimed, first)
	}
	// Keys are independent.
	other := newID()
	if got, claimed := claim(t, s, n.key("assigned-v2"), other, live()); got != other || !claimed {
		t.Errorf("claim of another key = %s, %v; want %s, true", got, claimed, other)
	}
}

func testClaimCommit(t *testing.T, s notify.InboxStore, n names) {
	key := n.key("commit")
	holder, other, id := newID(), newID(), newID()
	claim(t, s, key, holder, live())
	c, err := s.ClaimIdempotencyKey(t.Context(), key, newID(), live())
	if err != nil || c.Claimed || c.Committed || c.Holder != holder || c.ID != "" {
		t.Fatalf("claim of a pending key = %+v, %v; want held by %s, no id, not committed", c, err, holder)
	}
	// Only the holder commits; anyone else is told the claim is lost.
	if err := s.CommitIdempotencyKey(t.Context(), key, other, id, live()); notify.ErrorCode(err) != notify.ECONFLICT {
		t.Fatalf("CommitIdempotencyKey by another holder = %v, want ErrClaimLost", err)
	}
	if c, _ = s.ClaimIdempotencyKey(t.Context(), key, newID(), live()); c.Committed {
		t.Error("a commit by another holder committed the claim")
	}
	if err := s.CommitIdempotencyKey(t.Context(), key, holder, id, live()); err != nil {
		t.Fatalf("CommitIdempotencyKey: %v", err)
	}
	if c, _ = s.ClaimIdempotencyKey(t.Context(), key, newID(), live()); c.Claimed || !c.Committed || c.ID != id || c.Holder != holder {
		t.Errorf("claim after commit = %+v, want committed with id %s", c, id)
	}
	// A committed claim is never released.
	release(t, s, key, holder)
	if c, _ = s.ClaimIdempotencyKey(t.Context(), key, newID(), live()); !c.Committed || c.ID != id {
		t.Errorf("claim after releasing a committed key = %+v, want still committed with %s", c, id)
	}
	// A pending claim is a lease: its holder may still commit after it ran
	// out, as long as nobody took the key over, and that extends it.
	short := n.key("lease")
	claim(t, s, short, holder, dead())
	if err := s.CommitIdempotencyKey(t.Context(), short, holder, id, live()); err != nil {
		t.Fatal(err)
	}
	if c, _ = s.ClaimIdempotencyKey(t.Context(), short, other, live()); c.Claimed || c.ID != id || !c.Committed {
		t.Errorf("claim after a commit that extended an expired lease = %+v, want committed with %s", c, id)
	}
	// Once the lease ran out and another call took the key over, the old
	// holder's commit is refused: only one of them may send.
	taken := n.key("taken-over")
	late, successor := newID(), newID()
	claim(t, s, taken, late, dead())
	if got, claimed := claim(t, s, taken, successor, live()); got != successor || !claimed {
		t.Fatalf("claim over an expired lease = %s, %v; want %s, true", got, claimed, successor)
	}
	if err := s.CommitIdempotencyKey(t.Context(), taken, late, newID(), live()); notify.ErrorCode(err) != notify.ECONFLICT {
		t.Errorf("commit by the holder whose lease was taken over = %v, want ErrClaimLost", err)
	}
	if err := s.CommitIdempotencyKey(t.Context(), taken, successor, id, live()); err != nil {
		t.Errorf("commit by the successor: %v", err)
	}
}

func testClaimExpired(t *testing.T, s notify.InboxStore, n names) {
	key := n.key("expired")
	old, fresh, late := newID(), newID(), newID()
	// Nobody held it unexpired: the claim is recorded, already expired.
	if got, claimed := claim(t, s, key, old, dead()); got != old || !claimed {
		t.Errorf("claim = %s, %v; want %s, true", got, claimed, old)
	}
	if got, claimed := claim(t, s, key, fresh, live()); got != fresh || !claimed {
		t.Errorf("claim over an expired claim = %s, %v; want %s, true", got, claimed, fresh)
	}
	if got, claimed := claim(t, s, key, late, live()); got != fresh || claimed {
		t.Errorf("claim after that = %s, %v; want %s, false", got, claimed, fresh)
	}
}

func testRelease(t *testing.T, s notify.InboxStore, n names) {
	key := n.key("release")
	first, stranger, retry, after := newID(), newID(), newID(), newID()
	claim(t, s, key, first, live())

	// Another publish's id does not free the key.
	release(t, s, key, stranger)
	if got, claimed := claim(t, s, key, retry, live()); got != first || claimed {
		t.Errorf("claim after a release by another id = %s, %v; want %s, false", got, claimed, first)
	}
	// The holder frees it: a retry claims it.
	release(t, s, key, first)
	if got, claimed := claim(t, s, key, retry, live()); got != retry || !claimed {
		t.Errorf("claim after the holder released = %s, %v; want %s, true", got, claimed, retry)
	}
	// The old holder releasing again does not free the new claim.
	release(t, s, key, first)
	if got, claimed := claim(t, s, key, after, live()); got != retry || claimed {
		t.Errorf("claim after a stale release = %s, %v; want %s, false", got, claimed, retry)
	}
	// Releasing a key nobody claimed is not an error.
	release(t, s, n.key("never-claimed"), newID())
}

func testConcurrentClaims(t *testing.T, s notify.InboxStore, n names) {
	key := n.key("race")
	type result struct {
		id, first string
		claimed   bool
		err       error
	}
	results := make([]result, ClaimRacers)
	for i := range results {
		results[i].id = newID()
	}
	var wg sync.WaitGroup
	start := make(chan struct{})
	for i := range results {
		wg.Go(func() {
			<-start
			r := &results[i]
			var c notify.IdempotencyClaim
			c, r.err = s.ClaimIdempotencyKey(t.Context(), key, r.id, live())
			r.first, r.claimed = c.Holder, c.Claimed
		})
	}
	close(start)
	wg.Wait()

	var winners []string
	firsts := make(map[string]int)
	for _, r := range results {
		if r.err != nil {
			t.Fatalf("ClaimIdempotencyKey(%s): %v", r.id, r.err)
		}
		if r.claimed {
			winners = append(winners, r.id)
			if r.first != r.id {
				t.Errorf("winning claim %s returned firstID %s", r.id, r.first)
			}
		}
		firsts[r.first]++
	}
	if len(winners) != 1 {
		t.Fatalf("%d of %d concurrent claims won (%q), want exactly 1", len(winners), ClaimRacers, winners)
	}
	if firsts[winners[0]] != ClaimRacers {
		t.Errorf("claims reported firstIDs %v, want all %d to report the winner %s", firsts, ClaimRacers, winners[0])
	}
}

func testMarkRead(t *testing.T, s notify.InboxStore, n names) {
	user := n.user("42")
	streams := []string{n.userStream("42"), n.groupStream("plant-3")}
	items := newItems(t, 5, "read")
	appendTo(t, s, live(), streams[:1], items[:3]...)
	appendTo(t, s, live(), streams[1:], items[3:]...)

	if got := countUnread(t, s, user, streams, 100); got != 5 {
		t.Errorf("CountUnread before reading = %d, want 5", got)
	}
	markRead(t, s, user, items[1].ID, items[4].ID)
	if got := countUnread(t, s, user, streams, 100); got != 3 {
		t.Errorf("CountUnread after reading 2 = %d, want 3", got)
	}
	// Reading again, or reading an id stored nowhere, changes nothing.
	markRead(t, s, user, items[1].ID, newID())
	if got := countUnread(t, s, user, streams, 100); got != 3 {
		t.Errorf("CountUnread after reading again = %d, want 3", got)
	}
	markRead(t, s, user, items[0].ID, items[2].ID, items[3].ID)
	if got := countUnread(t, s, user, streams, 100); got != 0 {
		t.Errorf("CountUnread after reading all = %d, want 0", got)
	}
	// A new notification is unread.
	later := newItem(t, "later")
	appendTo(t, s, live(), streams[1:], later)
	if got := countUnread(t, s, user, streams, 100); got != 1 {
		t.Errorf("CountUnread after a new one = %d, want 1", got)
	}
}

func testMarkAllRead(t *testing.T, s notify.InboxStore, n names) {
	user := n.user("42")
	streams := []string{n.userStream("42"), n.groupStream("plant-3")}
	items := newItems(t, 4, "all read")
	mid := newID() // between items[3] and items[4], stored nowhere
	items = append(items, newItems(t, 4, "all read, later")...)
	appendTo(t, s, live(), streams[:1], items[0], items[2], items[4], items[6])
	appendTo(t, s, live(), streams[1:], items[1], items[3], items[5], items[7])

	markAllRead(t, s, user, items[2].ID) // inclusive
	if got := countUnread(t, s, user, streams, 100); got != 5 {
		t.Errorf("CountUnread after MarkAllRead(item 2) = %d, want 5", got)
	}
	markAllRead(t, s, user, items[0].ID) // lower: does not un-read
	if got := countUnread(t, s, user, streams, 100); got != 5 {
		t.Errorf("CountUnread after a lower MarkAllRead = %d, want still 5", got)
	}
	markAllRead(t, s, user, mid) // an id that is not stored
	if got := countUnread(t, s, user, streams, 100); got != 4 {
		t.Errorf("CountUnread after MarkAllRead(between items 3 and 4) = %d, want 4", got)
	}
	markRead(t, s, user, items[6].ID) // individual marks above the mark
	if got := countUnread(t, s, user, streams, 100); got != 3 {
		t.Errorf("CountUnread after also reading item 6 = %d, want 3", got)
	}
	markAllRead(t, s, user, items[7].ID)
	if got := countUnread(t, s, user, streams, 100); got != 0 {
		t.Errorf("CountUnread after MarkAllRead(newest) = %d, want 0", got)
	}
	markAllRead(t, s, user, items[1].ID)
	if got := countUnread(t, s, user, streams, 100); got != 0 {
		t.Errorf("CountUnread after a lower MarkAllRead = %d, want still 0", got)
	}
	later := newItem(t, "after all read")
	appendTo(t, s, live(), streams[:1], later)
	if got := countUnread(t, s, user, streams, 100); got != 1 {
		t.Errorf("CountUnread after a new one = %d, want 1", got)
	}
}

func testUnreadCap(t *testing.T, s notify.InboxStore, n names) {
	user := n.user("42")
	streams := []string{n.userStream("42"), n.groupStream("plant-3")}
	items := newItems(t, CapItems, "cap")
	appendConcurrently(t, s, live(), streams[:1], items[:CapItems/2])
	appendConcurrently(t, s, live(), streams[1:], items[CapItems/2:])

	if got := countUnread(t, s, user, streams, CapMax); got != CapMax {
		t.Errorf("CountUnread(max %d) of %d = %d, want %d", CapMax, CapItems, got, CapMax)
	}
	if got := countUnread(t, s, user, streams, 2*CapItems); got != CapItems {
		t.Errorf("CountUnread(max %d) of %d = %d, want %d", 2*CapItems, CapItems, got, CapItems)
	}
	// The 30 newest read: the count walks past them.
	markRead(t, s, user, ids(items[CapItems-30:])...)
	if got := countUnread(t, s, user, streams, CapMax); got != CapItems-30 {
		t.Errorf("CountUnread(max %d) with the 30 newest read = %d, want %d", CapMax, got, CapItems-30)
	}
	markAllRead(t, s, user, items[CapItems/2-1].ID)
	if got := countUnread(t, s, user, streams, CapMax); got != CapItems/2-30 {
		t.Errorf("CountUnread(max %d) after MarkAllRead(item %d) = %d, want %d", CapMax, CapItems/2-1, got, CapItems/2-30)
	}
}

func testReadPerUser(t *testing.T, s notify.InboxStore, n names) {
	a, b := n.user("42"), n.user("43")
	group := n.groupStream("plant-3")
	aStreams := []string{n.userStream("42"), group}
	bStreams := []string{n.userStream("43"), group}
	shared := newItems(t, 3, "shared")
	toA, toB := newItem(t, "to A"), newItem(t, "to B")
	appendTo(t, s, live(), []string{group}, shared...)
	appendTo(t, s, live(), aStreams[:1], toA)
	appendTo(t, s, live(), bStreams[:1], toB)

	markRead(t, s, a, ids(shared)...)
	if got := countUnread(t, s, a, aStreams, 100); got != 1 {
		t.Errorf("A's CountUnread after reading the group's = %d, want 1", got)
	}
	if got := countUnread(t, s, b, bStreams, 100); got != 4 {
		t.Errorf("B's CountUnread after A read the group's = %d, want 4", got)
	}
	markAllRead(t, s, a, newID())
	if got := countUnread(t, s, a, aStreams, 100); got != 0 {
		t.Errorf("A's CountUnread after MarkAllRead = %d, want 0", got)
	}
	if got := countUnread(t, s, b, bStreams, 100); got != 4 {
		t.Errorf("B's CountUnread after A's MarkAllRead = %d, want 4", got)
	}
	markRead(t, s, b, shared[0].ID)
	if got := countUnread(t, s, b, bStreams, 100); got != 3 {
		t.Errorf("B's CountUnread after reading one = %d, want 3", got)
	}
}

func testUnreadOnce(t *testing.T, s notify.InboxStore, n names) {
	user := n.user("42")
	streams := []string{n.userStream("42"), n.groupStream("plant-3"), n.groupStream("night")}
	items := newItems(t, 4, "unread once")
	appendTo(t, s, live(), streams, items[0], items[3])
	appendTo(t, s, live(), streams[:2], items[1])
	appendTo(t, s, live(), streams[2:], items[2])
	if got := countUnread(t, s, user, streams, 100); got != 4 {
		t.Errorf("CountUnread = %d, want 4 (each notification once)", got)
	}
	if got := countUnread(t, s, user, streams, 3); got != 3 {
		t.Errorf("CountUnread(max 3) = %d, want 3", got)
	}
	markRead(t, s, user, items[3].ID)
	if got := countUnread(t, s, user, streams, 100); got != 3 {
		t.Errorf("CountUnread after reading one in three streams = %d, want 3", got)
	}
	vis, err := s.VisibleIDs(t.Context(), streams, ids(items))
	if err != nil {
		t.Fatalf("VisibleIDs: %v", err)
	}
	wantIDs(t, "VisibleIDs", vis, ids(items))
}

func testEmptyUserRefused(t *testing.T, s notify.InboxStore, n names) {
	it := newItem(t, "nobody's")
	appendTo(t, s, live(), []string{n.userStream("42")}, it)
	if err := s.MarkRead(t.Context(), "", []string{it.ID}, live()); notify.ErrorCode(err) != notify.EINVALID {
		t.Errorf("MarkRead with an empty user id = %v, want EINVALID", err)
	}
	if err := s.MarkAllRead(t.Context(), "", it.ID); notify.ErrorCode(err) != notify.EINVALID {
		t.Errorf("MarkAllRead with an empty user id = %v, want EINVALID", err)
	}
	if _, err := s.ReadState(t.Context(), "", []string{it.ID}); notify.ErrorCode(err) != notify.EINVALID {
		t.Errorf("ReadState with an empty user id = %v, want EINVALID", err)
	}
}

// The read flags of what ListLatest and ListAfter return: at or below the
// user's watermark, or marked one by one; in the order asked, each asked
// once or more.
func testReadStateOfListed(t *testing.T, s notify.InboxStore, n names) {
	user := n.user("42")
	streams := []string{n.userStream("42"), n.groupStream("plant-3")}
	items := newItems(t, 3, "read state")
	mid := newID() // between items[2] and items[3], stored nowhere
	items = append(items, newItems(t, 4, "read state, later")...)
	appendTo(t, s, live(), streams[:1], items[0], items[2], items[4], items[6])
	appendTo(t, s, live(), streams[1:], items[1], items[3], items[5])

	listed := listLatest(t, s, streams, 10)
	wantPage(t, "ListLatest", listed, items)
	wantRead(t, "nothing read", s, user, listed)
	if got := readState(t, s, user); len(got) != 0 {
		t.Errorf("ReadState of no ids = %v, want none", got)
	}

	markRead(t, s, user, items[1].ID, items[5].ID)
	wantRead(t, "two marked", s, user, listed, items[1].ID, items[5].ID)

	markAllRead(t, s, user, mid) // items 0..2 by the watermark
	wantRead(t, "watermark between items 2 and 3, and the marks", s, user, listed,
		items[0].ID, items[1].ID, items[2].ID, items[5].ID)
	page, _ := listAfter(t, s, streams, items[2].ID, 2)
	wantRead(t, "ListAfter(item 2, limit 2)", s, user, page, items[5].ID)

	// In the order asked, an id asked twice answered twice, an empty id
	// unread; an id stored nowhere is answered from the read state alone.
	got := readState(t, s, user, items[6].ID, items[5].ID, "", items[0].ID, items[5].ID, mid, newID())
	if want := []bool{false, true, false, true, true, true, false}; !slices.Equal(got, want) {
		t.Errorf("ReadState(6, 5, \"\", 0, 5, mid, new) = %v, want %v", got, want)
	}

	markAllRead(t, s, user, items[0].ID) // lower: un-reads nothing
	wantRead(t, "after a lower watermark", s, user, listed, items[0].ID, items[1].ID, items[2].ID, items[5].ID)
	markAllRead(t, s, user, items[6].ID)
	wantRead(t, "watermark at the newest", s, user, listed, ids(items)...)
	later := newItem(t, "after all read")
	appendTo(t, s, live(), streams[:1], later)
	wantRead(t, "a new one after all read", s, user, listLatest(t, s, streams, 10), ids(items)...)
}

// Another user's marks and watermark do not count.
func testReadStatePerUser(t *testing.T, s notify.InboxStore, n names) {
	a, b := n.user("42"), n.user("43")
	group := []string{n.groupStream("plant-3")}
	shared := newItems(t, 4, "shared read state")
	appendTo(t, s, live(), group, shared...)
	listed := listLatest(t, s, group, 10)

	markRead(t, s, a, shared[1].ID, shared[3].ID)
	wantRead(t, "A after A read two", s, a, listed, shared[1].ID, shared[3].ID)
	wantRead(t, "B after A read two", s, b, listed)
	markAllRead(t, s, a, shared[2].ID)
	wantRead(t, "B after A's watermark", s, b, listed)
	markRead(t, s, b, shared[0].ID)
	wantRead(t, "B after B read one", s, b, listed, shared[0].ID)
	wantRead(t, "A after B read one", s, a, listed, ids(shared)...)
	// A user id that extends another's is another user.
	wantRead(t, "user 4", s, n.user("4"), listed)
}

// An expired read mark is unread, unless the watermark covers it.
func testReadStateExpired(t *testing.T, s notify.InboxStore, n names) {
	user := n.user("42")
	stream := []string{n.userStream("42")}
	items := newItems(t, 4, "expired marks")
	appendTo(t, s, live(), stream, items...)
	listed := listLatest(t, s, stream, 10)

	if err := s.MarkRead(t.Context(), user, ids(items[:3]), dead()); err != nil {
		t.Fatalf("MarkRead(expired): %v", err)
	}
	markRead(t, s, user, items[3].ID)
	wantRead(t, "three expired marks and a live one", s, user, listed, items[3].ID)
	if got := countUnread(t, s, user, stream, 100); got != 3 {
		t.Errorf("CountUnread = %d, want 3 (expired marks do not count)", got)
	}
	markAllRead(t, s, user, items[0].ID)
	wantRead(t, "the watermark over an expired mark", s, user, listed, items[0].ID, items[3].ID)
}

// A sync page's worth of ids (notify.MaxSyncLimit) in one call.
func testReadStateFullPage(t *testing.T, s notify.InboxStore, n names) {
	user := n.user("42")
	stream := []string{n.userStream("42")}
	items := newItems(t, notify.MaxSyncLimit, "full page")
	appendConcurrently(t, s, live(), stream, items)
	listed := listLatest(t, s, stream, notify.MaxSyncLimit)
	wantPage(t, "ListLatest", listed, items)

	var read []string
	for i := 0; i < len(items); i += 7 {
		read = append(read, items[i].ID)
	}
	markRead(t, s, user, read...)
	wantRead(t, "every seventh marked", s, user, listed, read...)
	markAllRead(t, s, user, items[9].ID)
	for _, it := range items[:10] {
		if !slices.Contains(read, it.ID) {
			read = append(read, it.ID)
		}
	}
	wantRead(t, "and the first ten by the watermark", s, user, listed, read...)
}

func testContextCanceled(t *testing.T, s notify.InboxStore, n names) {
	stream := []string{n.userStream("42")}
	it := newItem(t, "stored")
	appendTo(t, s, live(), stream, it)
	key := n.key("canceled")
	claim(t, s, key, it.ID, live())

	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	if err := s.AppendNotification(ctx, newItem(t, "unsaved"), stream, live()); err == nil {
		t.Error("AppendNotification with a canceled context returned nil")
	}
	if _, err := s.ClaimIdempotencyKey(ctx, n.key("canceled-2"), newID(), live()); err == nil {
		t.Error("ClaimIdempotencyKey with a canceled context returned nil")
	}
	if err := s.ReleaseIdempotencyKey(ctx, key, it.ID); err == nil {
		t.Error("ReleaseIdempotencyKey with a canceled context returned nil")
	}
	if _, _, err := s.ListAfter(ctx, stream, "", 10); err == nil {
		t.Error("ListAfter with a canceled context returned nil")
	}
	if _, err := s.ListLatest(ctx, stream, 10); err == nil {
		t.Error("ListLatest with a canceled context returned nil")
	}
	if _, err := s.VisibleIDs(ctx, stream, []string{it.ID}); err == nil {
		t.Error("VisibleIDs with a canceled context returned nil")
	}
	if err := s.MarkRead(ctx, n.user("42"), []string{it.ID}, live()); err == nil {
		t.Error("MarkRead with a canceled context returned nil")
	}
	if err := s.MarkAllRead(ctx, n.user("42"), it.ID); err == nil {
		t.Error("MarkAllRead with a canceled context returned nil")
	}
	if _, err := s.CountUnread(ctx, n.user("42"), stream, 10); err == nil {
		t.Error("CountUnread with a canceled context returned nil")
	}
	if _, err := s.ReadState(ctx, n.user("42"), []string{it.ID}); err == nil {
		t.Error("ReadState with a canceled context returned nil")
	}
	// What failed changed nothing that a later call sees.
	if got := countUnread(t, s, n.user("42"), stream, 10); got != 1 {
		t.Errorf("CountUnread after canceled reads = %d, want 1", got)
	}
	if got, claimed := claim(t, s, key, newID(), live()); got != it.ID || claimed {
		t.Errorf("claim after a canceled release = %s, %v; want %s, false", got, claimed, it.ID)
	}
}

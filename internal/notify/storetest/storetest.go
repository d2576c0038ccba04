// Package storetest is the behaviour suite every notify.ConnectionStore must
// pass. An implementation's test calls Run with a constructor:
//
//	func TestStore(t *testing.T) {
//		storetest.Run(t, func(t *testing.T) notify.ConnectionStore { return memory.New() })
//	}
//
// The suite makes no assumption about timing or about the store being empty:
// every subtest uses ids, users and groups of its own, so a constructor may
// hand out stores that share one table. Broadcast checks therefore only
// assert about the subtest's own connections. Times are relative to
// time.Now(), since stores use the wall clock for expiry.
package storetest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/workorders/notify/internal/notify"
)

// PaginationConnections is how many connections the pagination subtest
// saves, each with PaginationGroups groups of 100 characters, so that the
// items exceed DynamoDB's 1 MB page several times over.
const (
	PaginationConnections = 1200
	PaginationGroups      = 40
	saveConcurrency       = 16
)

// Run runs the suite. newStore is called once per subtest and must return a
// working store; it may register cleanups on the t it is given.
func Run(t *testing.T, newStore func(t *testing.T) notify.ConnectionStore) {
	type test struct {
		name string
		fn   func(t *testing.T, s notify.ConnectionStore, n names)
	}
	groups := []struct {
		name  string
		tests []test
	}{
		{"Save", []test{
			{"SaveAndGet", testSaveAndGet},
			{"SaveWithoutGroups", testSaveWithoutGroups},
			{"GetUnknown", testGetUnknown},
			{"Expired", testExpired},
			{"TokenExpiry", testTokenExpiry},
			{"UserRequired", testUserRequired},
			{"ExpiryRequired", testExpiryRequired},
			{"ConnectedAtRequired", testConnectedAtRequired},
			{"GroupListedTwice", testGroupListedTwice},
		}},
		{"Revocation", []test{
			{"LatestWins", testRevocation},
			{"Expires", testRevocationExpires},
		}},
		{"Delete", []test{
			{"RemovesConnectionAndMemberships", testDelete},
			{"Unknown", testDeleteUnknown},
			{"OneOfTwoTabs", testDeleteOneOfTwoTabs},
			{"Gone", testDeleteGone},
		}},
		{"ForEachTarget", []test{
			{"ByUser", testByUser},
			{"ByGroup", testByGroup},
			{"UsersAndGroups", testUsersAndGroups},
			{"Broadcast", testBroadcast},
			{"SeparateNamespaces", testNamespaces},
			{"UnknownTargets", testUnknownTargets},
			{"Pagination", testPagination},
			{"FnErrorStops", testFnErrorStops},
			{"FnNotConcurrent", testFnNotConcurrent},
		}},
		{"Concurrency", []test{
			{"SavesAndDeletes", testConcurrentSavesAndDeletes},
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

// names makes ids, users and groups unique to one subtest.
type names struct{ p string }

func newNames(t *testing.T) names {
	var b [6]byte
	if _, err := rand.Read(b[:]); err != nil {
		t.Fatal(err)
	}
	return names{p: "st" + hex.EncodeToString(b[:])}
}

// conn returns a connection id shaped like API Gateway's (which may end in '=').
func (n names) conn(s string) string { return n.p + s + "=" }

// user returns a user id.
func (n names) user(s string) string { return n.p + "." + s }

// group returns a group name.
func (n names) group(s string) string { return "team:" + n.p + "." + s }

// mine reports whether id was made by n.conn.
func (n names) mine(id string) bool { return strings.HasPrefix(id, n.p) }

// newConn returns a connection connected now that expires in two hours.
func newConn(id, user string, groups ...string) notify.Connection {
	now := time.Now()
	return notify.Connection{
		ID:          id,
		UserID:      user,
		Groups:      groups,
		ConnectedAt: now,
		ExpiresAt:   now.Add(2 * time.Hour),
	}
}

func save(t *testing.T, s notify.ConnectionStore, cs ...notify.Connection) {
	t.Helper()
	for _, c := range cs {
		if err := s.SaveConnection(t.Context(), c); err != nil {
			t.Fatalf("SaveConnection(%q): %v", c.ID, err)
		}
	}
}

// saveConcurrently saves cs with at most saveConcurrency saves in flight.
func saveConcurrently(t *testing.T, s notify.ConnectionStore, cs []notify.Connection) {
	t.Helper()
	var (
		wg    sync.WaitGroup
		sem   = make(chan struct{}, saveConcurrency)
		mu    sync.Mutex
		first error
	)
	for _, c := range cs {
		sem <- struct{}{}
		wg.Go(func() {
			defer func() { <-sem }()
			if err := s.SaveConnection(t.Context(), c); err != nil {
				mu.Lock()
				if first == nil {
					first = fmt.Errorf("SaveConnection(%q): %w", c.ID, err)
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

func mustDelete(t *testing.T, s notify.ConnectionStore, id string) {
	t.Helper()
	if err := s.DeleteConnection(t.Context(), id); err != nil {
		t.Fatalf("DeleteConnection(%q): %v", id, err)
	}
}

// walk runs ForEachTarget and returns every connection it handed to fn,
// failing the test if fn is ever called concurrently.
func walk(ctx context.Context, s notify.ConnectionStore, target notify.Target) ([]notify.Connection, error) {
	var (
		busy    atomic.Bool
		overlap atomic.Bool
		mu      sync.Mutex // keeps the race detector quiet if fn does overlap
		all     []notify.Connection
	)
	err := s.ForEachTarget(ctx, target, func(page []notify.Connection) error {
		if busy.CompareAndSwap(false, true) {
			defer busy.Store(false)
		} else {
			overlap.Store(true)
		}
		mu.Lock()
		defer mu.Unlock()
		all = append(all, page...)
		return nil
	})
	if overlap.Load() {
		return all, errors.New("fn called concurrently")
	}
	return all, err
}

// reach returns the set of this subtest's connection ids that target reaches.
func reach(t *testing.T, s notify.ConnectionStore, n names, target notify.Target) map[string]notify.Connection {
	t.Helper()
	cs, err := walk(t.Context(), s, target)
	if err != nil {
		t.Fatalf("ForEachTarget(%+v): %v", target, err)
	}
	out := make(map[string]notify.Connection)
	for _, c := range cs {
		if n.mine(c.ID) {
			out[c.ID] = c
		}
	}
	return out
}

// wantIDs fails unless got holds exactly the ids want.
func wantIDs(t *testing.T, what string, got map[string]notify.Connection, want ...string) {
	t.Helper()
	var ids []string
	for id := range got {
		ids = append(ids, id)
	}
	slices.Sort(ids)
	want = slices.Clone(want)
	slices.Sort(want)
	if !slices.Equal(ids, want) {
		t.Errorf("%s: got connections %q, want %q", what, ids, want)
	}
}

func wantNotFound(t *testing.T, s notify.ConnectionStore, id string) {
	t.Helper()
	c, err := s.GetConnection(t.Context(), id)
	if err == nil {
		t.Errorf("GetConnection(%q) = %+v, want ENOTFOUND", id, c)
		return
	}
	if code := notify.ErrorCode(err); code != notify.ENOTFOUND {
		t.Errorf("GetConnection(%q): error code %q (%v), want %q", id, code, err, notify.ENOTFOUND)
	}
}

// sameMillis reports whether a and b are within a millisecond of each other
// (the stores keep ConnectedAt to millisecond precision).
func sameMillis(a, b time.Time) bool {
	d := a.Sub(b)
	return d > -time.Millisecond && d < time.Millisecond
}

func sortedGroups(g []string) []string {
	g = slices.Clone(g)
	slices.Sort(g)
	return g
}

func testSaveAndGet(t *testing.T, s notify.ConnectionStore, n names) {
	want := newConn(n.conn("a"), n.user("42"), n.group("plant-3"), "role:"+n.p+".dispatcher")
	want.ConnectedAt = want.ConnectedAt.Add(123456 * time.Nanosecond) // not a whole millisecond
	save(t, s, want)

	got, err := s.GetConnection(t.Context(), want.ID)
	if err != nil {
		t.Fatalf("GetConnection: %v", err)
	}
	if got.ID != want.ID {
		t.Errorf("ID = %q, want %q", got.ID, want.ID)
	}
	if got.UserID != want.UserID {
		t.Errorf("UserID = %q, want %q", got.UserID, want.UserID)
	}
	if g, w := sortedGroups(got.Groups), sortedGroups(want.Groups); !slices.Equal(g, w) {
		t.Errorf("Groups = %q, want %q", g, w)
	}
	if !sameMillis(got.ConnectedAt, want.ConnectedAt) {
		t.Errorf("ConnectedAt = %v, want %v to the millisecond", got.ConnectedAt, want.ConnectedAt)
	}

	// The returned value must not alias the store's.
	if len(got.Groups) > 0 {
		got.Groups[0] = "changed"
		again, err := s.GetConnection(t.Context(), want.ID)
		if err != nil {
			t.Fatalf("GetConnection: %v", err)
		}
		if slices.Contains(again.Groups, "changed") {
			t.Error("changing a returned connection's Groups changed the stored connection")
		}
	}
}

func testSaveWithoutGroups(t *testing.T, s notify.ConnectionStore, n names) {
	want := newConn(n.conn("a"), n.user("42"))
	save(t, s, want)
	got, err := s.GetConnection(t.Context(), want.ID)
	if err != nil {
		t.Fatalf("GetConnection: %v", err)
	}
	if got.UserID != want.UserID || len(got.Groups) != 0 {
		t.Errorf("got UserID %q Groups %q, want %q and no groups", got.UserID, got.Groups, want.UserID)
	}
	wantIDs(t, "by user", reach(t, s, n, notify.Target{Users: []string{want.UserID}}), want.ID)
}

func testGetUnknown(t *testing.T, s notify.ConnectionStore, n names) {
	wantNotFound(t, s, n.conn("unknown"))
}

func testExpired(t *testing.T, s notify.ConnectionStore, n names) {
	now := time.Now()
	old := newConn(n.conn("old"), n.user("42"), n.group("plant-3"))
	old.ConnectedAt = now.Add(-3 * time.Hour)
	old.ExpiresAt = now.Add(-time.Minute)
	live := newConn(n.conn("live"), n.user("42"), n.group("plant-3"))
	save(t, s, old, live)

	wantNotFound(t, s, old.ID)
	if _, err := s.GetConnection(t.Context(), live.ID); err != nil {
		t.Errorf("GetConnection(live): %v", err)
	}
	wantIDs(t, "by user", reach(t, s, n, notify.Target{Users: []string{old.UserID}}), live.ID)
	wantIDs(t, "by group", reach(t, s, n, notify.Target{Groups: []string{n.group("plant-3")}}), live.ID)
	wantIDs(t, "broadcast", reach(t, s, n, notify.Target{Broadcast: true}), live.ID)
}

// The token's exp travels with the connection, to the second, on every
// read: a publish must be able to close a connection whose token expired.
func testTokenExpiry(t *testing.T, s notify.ConnectionStore, n names) {
	exp := time.Now().Add(10 * time.Minute).Truncate(time.Second)
	c := newConn(n.conn("a"), n.user("42"), n.group("plant-3"))
	c.TokenExpiresAt = exp
	none := newConn(n.conn("b"), n.user("42"))
	save(t, s, c, none)
	got, err := s.GetConnection(t.Context(), c.ID)
	if err != nil {
		t.Fatal(err)
	}
	if !got.TokenExpiresAt.Equal(exp) {
		t.Errorf("GetConnection: TokenExpiresAt = %v, want %v", got.TokenExpiresAt, exp)
	}
	if got, _ := s.GetConnection(t.Context(), none.ID); !got.TokenExpiresAt.IsZero() {
		t.Errorf("a connection without a token exp came back with %v", got.TokenExpiresAt)
	}
	for _, target := range []notify.Target{
		{Users: []string{c.UserID}}, {Groups: []string{n.group("plant-3")}}, {Broadcast: true},
	} {
		found := false
		err := s.ForEachTarget(t.Context(), target, func(page []notify.Connection) error {
			for _, p := range page {
				if p.ID == c.ID {
					found = true
					if !p.TokenExpiresAt.Equal(exp) {
						t.Errorf("ForEachTarget(%+v): TokenExpiresAt = %v, want %v", target, p.TokenExpiresAt, exp)
					}
				}
			}
			return nil
		})
		if err != nil || !found {
			t.Errorf("ForEachTarget(%+v): found %v, %v", target, found, err)
		}
	}
}

// Both stores refuse a connection without a user: it could never be
// reached nor capped.
func testUserRequired(t *testing.T, s notify.ConnectionStore, n names) {
	c := newConn(n.conn("nouser"), "")
	if err := s.SaveConnection(t.Context(), c); notify.ErrorCode(err) != notify.EINVALID {
		t.Errorf("SaveConnection without a user = %v, want EINVALID", err)
	}
	wantNotFound(t, s, c.ID)
}

// Neither store has a default lifetime: the service decides it
// (Service.ConnectionTTL) and always sets ExpiresAt.
func testExpiryRequired(t *testing.T, s notify.ConnectionStore, n names) {
	c := newConn(n.conn("noexpiry"), n.user("42"), n.group("plant-3"))
	c.ExpiresAt = time.Time{}
	if err := s.SaveConnection(t.Context(), c); notify.ErrorCode(err) != notify.EINVALID {
		t.Errorf("SaveConnection without ExpiresAt = %v, want EINVALID", err)
	}
	wantNotFound(t, s, c.ID)
	wantIDs(t, "by user", reach(t, s, n, notify.Target{Users: []string{c.UserID}}))
}

// Neither store defaults ConnectedAt either: Service.Connect always sets it,
// and the 10-second rule on 410 (DeleteGoneConnection) depends on it.
func testConnectedAtRequired(t *testing.T, s notify.ConnectionStore, n names) {
	c := newConn(n.conn("noconnectedat"), n.user("42"), n.group("plant-3"))
	c.ConnectedAt = time.Time{}
	if err := s.SaveConnection(t.Context(), c); notify.ErrorCode(err) != notify.EINVALID {
		t.Errorf("SaveConnection without ConnectedAt = %v, want EINVALID", err)
	}
	wantNotFound(t, s, c.ID)
	wantIDs(t, "by user", reach(t, s, n, notify.Target{Users: []string{c.UserID}}))
}

// A group listed twice is stored once: the connection comes back with each
// group once and is reached once by that group.
func testGroupListedTwice(t *testing.T, s notify.ConnectionStore, n names) {
	g, other := n.group("plant-3"), n.group("night")
	c := newConn(n.conn("a"), n.user("42"), g, other, g)
	save(t, s, c)
	got, err := s.GetConnection(t.Context(), c.ID)
	if err != nil {
		t.Fatalf("GetConnection: %v", err)
	}
	if gs, want := sortedGroups(got.Groups), sortedGroups([]string{g, other}); !slices.Equal(gs, want) {
		t.Errorf("Groups = %q, want each group once: %q", got.Groups, want)
	}
	cs, err := walk(t.Context(), s, notify.Target{Groups: []string{g}})
	if err != nil {
		t.Fatalf("ForEachTarget: %v", err)
	}
	if k := len(slices.DeleteFunc(cs, func(x notify.Connection) bool { return x.ID != c.ID })); k != 1 {
		t.Errorf("group %s reached the connection %d times, want once", g, k)
	}
	mustDelete(t, s, c.ID)
	wantIDs(t, "by group after delete", reach(t, s, n, notify.Target{Groups: []string{g}}))
}

func revokedAt(t *testing.T, s notify.ConnectionStore, user string) time.Time {
	t.Helper()
	at, err := s.RevokedAt(t.Context(), user)
	if err != nil {
		t.Fatalf("RevokedAt(%q): %v", user, err)
	}
	return at
}

func revoke(t *testing.T, s notify.ConnectionStore, user string, at, expiresAt time.Time) {
	t.Helper()
	if err := s.RevokeUser(t.Context(), user, at, expiresAt); err != nil {
		t.Fatalf("RevokeUser(%q, %v): %v", user, at, err)
	}
}

func testRevocation(t *testing.T, s notify.ConnectionStore, n names) {
	user, other := n.user("42"), n.user("7")
	if at := revokedAt(t, s, user); !at.IsZero() {
		t.Fatalf("never revoked: RevokedAt = %v, want zero", at)
	}
	now := time.Now().Truncate(time.Second)
	week := now.Add(notify.RevocationWindow)
	revoke(t, s, user, now, week)
	if at := revokedAt(t, s, user); !at.Equal(now) {
		t.Errorf("RevokedAt = %v, want %v", at, now)
	}
	// An earlier revocation (a slow, older request) does not move it back.
	revoke(t, s, user, now.Add(-time.Minute), week)
	if at := revokedAt(t, s, user); !at.Equal(now) {
		t.Errorf("after an earlier revocation RevokedAt = %v, want %v", at, now)
	}
	later := now.Add(3 * time.Second)
	revoke(t, s, user, later, later.Add(notify.RevocationWindow))
	if at := revokedAt(t, s, user); !at.Equal(later) {
		t.Errorf("after a later revocation RevokedAt = %v, want %v", at, later)
	}
	if at := revokedAt(t, s, other); !at.IsZero() {
		t.Errorf("another user: RevokedAt = %v, want zero", at)
	}
	// Users and groups are separate: revoking user X says nothing of a
	// connection's group X (groups are never revoked).
	if err := s.RevokeUser(t.Context(), "", now, week); notify.ErrorCode(err) != notify.EINVALID {
		t.Errorf("RevokeUser without a user = %v, want EINVALID", err)
	}
}

func testRevocationExpires(t *testing.T, s notify.ConnectionStore, n names) {
	user := n.user("42")
	now := time.Now().Truncate(time.Second)
	revoke(t, s, user, now.Add(-8*24*time.Hour), now.Add(-time.Hour))
	if at := revokedAt(t, s, user); !at.IsZero() {
		t.Errorf("an expired revocation: RevokedAt = %v, want zero", at)
	}
	// A new revocation replaces an expired one even if it is "earlier"
	// than nothing at all.
	revoke(t, s, user, now, now.Add(time.Hour))
	if at := revokedAt(t, s, user); !at.Equal(now) {
		t.Errorf("RevokedAt after an expired one = %v, want %v", at, now)
	}
}

func testDelete(t *testing.T, s notify.ConnectionStore, n names) {
	c := newConn(n.conn("a"), n.user("42"), n.group("plant-3"), n.group("night"))
	other := newConn(n.conn("b"), n.user("7"), n.group("plant-3"))
	save(t, s, c, other)
	mustDelete(t, s, c.ID)

	wantNotFound(t, s, c.ID)
	wantIDs(t, "by user", reach(t, s, n, notify.Target{Users: []string{c.UserID}}))
	wantIDs(t, "by group", reach(t, s, n, notify.Target{Groups: []string{n.group("plant-3")}}), other.ID)
	wantIDs(t, "by other group", reach(t, s, n, notify.Target{Groups: []string{n.group("night")}}))
	wantIDs(t, "broadcast", reach(t, s, n, notify.Target{Broadcast: true}), other.ID)

	// Deleting twice is still not an error.
	mustDelete(t, s, c.ID)
}

func testDeleteUnknown(t *testing.T, s notify.ConnectionStore, n names) {
	mustDelete(t, s, n.conn("unknown"))
}

func testDeleteOneOfTwoTabs(t *testing.T, s notify.ConnectionStore, n names) {
	tab1 := newConn(n.conn("tab1"), n.user("42"), n.group("plant-3"))
	tab2 := newConn(n.conn("tab2"), n.user("42"), n.group("plant-3"))
	save(t, s, tab1, tab2)
	mustDelete(t, s, tab1.ID)

	wantNotFound(t, s, tab1.ID)
	if _, err := s.GetConnection(t.Context(), tab2.ID); err != nil {
		t.Errorf("GetConnection(tab2): %v", err)
	}
	wantIDs(t, "by user", reach(t, s, n, notify.Target{Users: []string{tab1.UserID}}), tab2.ID)
	wantIDs(t, "by group", reach(t, s, n, notify.Target{Groups: []string{n.group("plant-3")}}), tab2.ID)
}

func testDeleteGone(t *testing.T, s notify.ConnectionStore, n names) {
	now := time.Now()
	cutoff := now.Add(-10 * time.Second)

	old := newConn(n.conn("old"), n.user("42"), n.group("plant-3"))
	old.ConnectedAt = now.Add(-time.Minute)
	fresh := newConn(n.conn("fresh"), n.user("42"), n.group("plant-3"))
	// Exactly at the cutoff is not before it. A whole millisecond, so that
	// millisecond storage keeps it exact.
	edgeAt := cutoff.Truncate(time.Millisecond)
	edge := newConn(n.conn("edge"), n.user("42"), n.group("plant-3"))
	edge.ConnectedAt = edgeAt
	save(t, s, old, fresh, edge)

	removed, err := s.DeleteGoneConnection(t.Context(), old.ID, cutoff)
	if err != nil || !removed {
		t.Errorf("DeleteGoneConnection(old) = %v, %v; want true, nil", removed, err)
	}
	wantNotFound(t, s, old.ID)

	removed, err = s.DeleteGoneConnection(t.Context(), fresh.ID, cutoff)
	if err != nil || removed {
		t.Errorf("DeleteGoneConnection(fresh) = %v, %v; want false, nil", removed, err)
	}
	if _, err := s.GetConnection(t.Context(), fresh.ID); err != nil {
		t.Errorf("GetConnection(fresh) after DeleteGoneConnection: %v", err)
	}

	removed, err = s.DeleteGoneConnection(t.Context(), edge.ID, edgeAt)
	if err != nil || removed {
		t.Errorf("DeleteGoneConnection(connected exactly at cutoff) = %v, %v; want false, nil", removed, err)
	}

	removed, err = s.DeleteGoneConnection(t.Context(), n.conn("unknown"), cutoff)
	if err != nil || removed {
		t.Errorf("DeleteGoneConnection(unknown) = %v, %v; want false, nil", removed, err)
	}

	// The removed connection's memberships went with it.
	wantIDs(t, "by user", reach(t, s, n, notify.Target{Users: []string{n.user("42")}}), fresh.ID, edge.ID)
	wantIDs(t, "by group", reach(t, s, n, notify.Target{Groups: []string{n.group("plant-3")}}), fresh.ID, edge.ID)
	wantIDs(t, "broadcast", reach(t, s, n, notify.Target{Broadcast: true}), fresh.ID, edge.ID)
}

func testByUser(t *testing.T, s notify.ConnectionStore, n names) {
	a1 := newConn(n.conn("a1"), n.user("42"), n.group("plant-3"))
	a1.ConnectedAt = a1.ConnectedAt.Add(-time.Minute + 777*time.Microsecond)
	a2 := newConn(n.conn("a2"), n.user("42"))
	b := newConn(n.conn("b"), n.user("7"), n.group("plant-3"))
	save(t, s, a1, a2, b)

	got := reach(t, s, n, notify.Target{Users: []string{n.user("42")}})
	wantIDs(t, "by user", got, a1.ID, a2.ID)
	// Callers need UserID and ConnectedAt (the 10-second rule on 410).
	for _, want := range []notify.Connection{a1, a2} {
		c, ok := got[want.ID]
		if !ok {
			continue
		}
		if c.UserID != want.UserID {
			t.Errorf("%s: UserID = %q, want %q", want.ID, c.UserID, want.UserID)
		}
		if !sameMillis(c.ConnectedAt, want.ConnectedAt) {
			t.Errorf("%s: ConnectedAt = %v, want %v to the millisecond", want.ID, c.ConnectedAt, want.ConnectedAt)
		}
	}
}

func testByGroup(t *testing.T, s notify.ConnectionStore, n names) {
	a := newConn(n.conn("a"), n.user("42"), n.group("plant-3"), n.group("night"))
	b := newConn(n.conn("b"), n.user("7"), n.group("plant-3"))
	c := newConn(n.conn("c"), n.user("8"), n.group("plant-4"))
	save(t, s, a, b, c)

	wantIDs(t, "plant-3", reach(t, s, n, notify.Target{Groups: []string{n.group("plant-3")}}), a.ID, b.ID)
	wantIDs(t, "night", reach(t, s, n, notify.Target{Groups: []string{n.group("night")}}), a.ID)
	wantIDs(t, "plant-4", reach(t, s, n, notify.Target{Groups: []string{n.group("plant-4")}}), c.ID)
}

func testUsersAndGroups(t *testing.T, s notify.ConnectionStore, n names) {
	a := newConn(n.conn("a"), n.user("42"), n.group("plant-3")) // by user and by group
	b := newConn(n.conn("b"), n.user("43"))                     // by the second user
	c := newConn(n.conn("c"), n.user("7"), n.group("plant-3"))  // by group only
	d := newConn(n.conn("d"), n.user("8"), n.group("night"))    // by the second group
	e := newConn(n.conn("e"), n.user("9"), n.group("plant-4"))  // not targeted
	save(t, s, a, b, c, d, e)

	target := notify.Target{
		Users:  []string{n.user("42"), n.user("43")},
		Groups: []string{n.group("plant-3"), n.group("night")},
	}
	wantIDs(t, "users and groups", reach(t, s, n, target), a.ID, b.ID, c.ID, d.ID)
}

func testBroadcast(t *testing.T, s notify.ConnectionStore, n names) {
	a := newConn(n.conn("a"), n.user("42"), n.group("plant-3"))
	b := newConn(n.conn("b"), n.user("43"))
	c := newConn(n.conn("c"), n.user("7"), n.group("night"), n.group("plant-3"))
	save(t, s, a, b, c)
	wantIDs(t, "broadcast", reach(t, s, n, notify.Target{Broadcast: true}), a.ID, b.ID, c.ID)
	// Broadcast with users and groups too still reaches everyone.
	wantIDs(t, "broadcast with users", reach(t, s, n, notify.Target{Broadcast: true, Users: []string{n.user("42")}}), a.ID, b.ID, c.ID)
}

func testNamespaces(t *testing.T, s notify.ConnectionStore, n names) {
	u := n.user("43")
	g := "user:" + u
	userConn := newConn(n.conn("u"), u)
	groupConn := newConn(n.conn("g"), n.user("7"), g)
	plainConn := newConn(n.conn("p"), n.user("8"), u) // a group named like the user
	save(t, s, userConn, groupConn, plainConn)

	wantIDs(t, "user "+u, reach(t, s, n, notify.Target{Users: []string{u}}), userConn.ID)
	wantIDs(t, "group "+g, reach(t, s, n, notify.Target{Groups: []string{g}}), groupConn.ID)
	wantIDs(t, "group "+u, reach(t, s, n, notify.Target{Groups: []string{u}}), plainConn.ID)
	wantIDs(t, "user "+g, reach(t, s, n, notify.Target{Users: []string{g}}))
}

func testUnknownTargets(t *testing.T, s notify.ConnectionStore, n names) {
	save(t, s, newConn(n.conn("a"), n.user("42"), n.group("plant-3")))
	for _, target := range []notify.Target{
		{Users: []string{n.user("unknown")}},
		{Groups: []string{n.group("unknown")}},
		{Users: []string{n.user("unknown")}, Groups: []string{n.group("unknown")}},
	} {
		cs, err := walk(t.Context(), s, target)
		if err != nil {
			t.Errorf("ForEachTarget(%+v): %v", target, err)
		}
		if len(cs) != 0 {
			t.Errorf("ForEachTarget(%+v) returned %d connections, want none", target, len(cs))
		}
	}
}

// bigGroups returns count group names of 100 characters.
func bigGroups(n names, count int) []string {
	out := make([]string, count)
	for i := range out {
		g := n.group(fmt.Sprintf("big%02d-", i))
		out[i] = g + strings.Repeat("x", 100-len(g))
	}
	return out
}

func testPagination(t *testing.T, s notify.ConnectionStore, n names) {
	groups := bigGroups(n, PaginationGroups)
	cs := make([]notify.Connection, PaginationConnections)
	for i := range cs {
		cs[i] = newConn(n.conn(fmt.Sprintf("p%05d", i)), n.user(fmt.Sprintf("u%03d", i%100)), groups...)
	}
	start := time.Now()
	saveConcurrently(t, s, cs)
	t.Logf("saved %d connections of %d groups in %v", len(cs), len(groups), time.Since(start))
	want := make([]string, len(cs))
	for i, c := range cs {
		want[i] = c.ID
	}

	for _, tc := range []struct {
		name   string
		target notify.Target
	}{
		{"ByGroup", notify.Target{Groups: []string{groups[0]}}},
		{"ByLastGroup", notify.Target{Groups: []string{groups[len(groups)-1]}}},
		{"Broadcast", notify.Target{Broadcast: true}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var (
				pages         int
				busy, overlap atomic.Bool
				mu            sync.Mutex // keeps the race detector quiet if fn does overlap
				got           = make(map[string]notify.Connection)
			)
			err := s.ForEachTarget(t.Context(), tc.target, func(page []notify.Connection) error {
				if busy.CompareAndSwap(false, true) {
					defer busy.Store(false)
				} else {
					overlap.Store(true)
				}
				mu.Lock()
				defer mu.Unlock()
				pages++
				for _, c := range page {
					if n.mine(c.ID) {
						got[c.ID] = c
					}
				}
				return nil
			})
			if err != nil {
				t.Fatalf("ForEachTarget: %v", err)
			}
			if overlap.Load() {
				t.Error("fn was called concurrently")
			}
			t.Logf("%d pages", pages)
			if len(got) != len(want) {
				t.Errorf("got %d of %d connections", len(got), len(want))
			}
			wantIDs(t, tc.name, got, want...)
		})
	}

	t.Run("FnErrorStops", func(t *testing.T) {
		stop := errors.New("stop")
		calls := 0
		err := s.ForEachTarget(t.Context(), notify.Target{Broadcast: true}, func([]notify.Connection) error {
			calls++
			return stop
		})
		if !errors.Is(err, stop) {
			t.Errorf("ForEachTarget = %v, want fn's error", err)
		}
		if calls != 1 {
			t.Errorf("fn called %d times after returning an error, want once", calls)
		}
	})

	t.Run("CanceledMidWalk", func(t *testing.T) {
		ctx, cancel := context.WithCancel(t.Context())
		defer cancel()
		seen := make(map[string]bool)
		err := s.ForEachTarget(ctx, notify.Target{Groups: []string{groups[0]}}, func(page []notify.Connection) error {
			for _, c := range page {
				seen[c.ID] = true
			}
			cancel()
			return nil
		})
		// A walk that finished may report success; one cut short must not.
		if err == nil && len(seen) < len(want) {
			t.Errorf("ForEachTarget canceled mid-walk returned nil after %d of %d connections", len(seen), len(want))
		}
	})
}

func testFnErrorStops(t *testing.T, s notify.ConnectionStore, n names) {
	var users []string
	for i := range 10 {
		u := n.user(fmt.Sprintf("u%d", i))
		users = append(users, u)
		save(t, s, newConn(n.conn(fmt.Sprintf("c%d", i)), u))
	}
	stop := errors.New("stop")
	calls := 0
	err := s.ForEachTarget(t.Context(), notify.Target{Users: users}, func(page []notify.Connection) error {
		calls++
		return stop
	})
	if !errors.Is(err, stop) {
		t.Errorf("ForEachTarget = %v, want fn's error", err)
	}
	if calls != 1 {
		t.Errorf("fn called %d times after returning an error, want once", calls)
	}
}

func testFnNotConcurrent(t *testing.T, s notify.ConnectionStore, n names) {
	var (
		target notify.Target
		cs     []notify.Connection
		want   []string
	)
	for i := range 20 {
		u, g := n.user(fmt.Sprintf("u%d", i)), n.group(fmt.Sprintf("g%d", i))
		target.Users = append(target.Users, u)
		target.Groups = append(target.Groups, g)
		for j := range 3 {
			c := newConn(n.conn(fmt.Sprintf("c%d-%d", i, j)), u, g)
			cs = append(cs, c)
			want = append(want, c.ID)
		}
	}
	saveConcurrently(t, s, cs)

	var (
		busy    atomic.Bool
		overlap atomic.Bool
		mu      sync.Mutex // only guards got against the race detector if fn does overlap
		got     = make(map[string]notify.Connection)
	)
	err := s.ForEachTarget(t.Context(), target, func(page []notify.Connection) error {
		if !busy.CompareAndSwap(false, true) {
			overlap.Store(true)
		} else {
			defer busy.Store(false)
		}
		time.Sleep(2 * time.Millisecond) // widen the window in which overlap shows
		mu.Lock()
		for _, c := range page {
			got[c.ID] = c
		}
		mu.Unlock()
		return nil
	})
	if err != nil {
		t.Fatalf("ForEachTarget: %v", err)
	}
	if overlap.Load() {
		t.Error("fn was called concurrently")
	}
	wantIDs(t, "all targets", got, want...)
}

func testConcurrentSavesAndDeletes(t *testing.T, s notify.ConnectionStore, n names) {
	const goroutines = 50
	const users = 5
	group := n.group("all")
	conns := make([]notify.Connection, goroutines)
	for i := range conns {
		conns[i] = newConn(n.conn(fmt.Sprintf("c%02d", i)), n.user(fmt.Sprintf("u%d", i%users)), group, n.group(fmt.Sprintf("g%d", i%3)))
	}
	// Goroutines 0..39: even ones save then delete their own connection, odd
	// ones save theirs. Goroutines 40..49 race in pairs: one saves a
	// connection while the other deletes it; either outcome is fine but it
	// must be whole.
	var (
		wg    sync.WaitGroup
		start = make(chan struct{})
		errs  = make(chan error, goroutines)
	)
	for i := range goroutines {
		wg.Go(func() {
			<-start
			ctx := t.Context()
			switch {
			case i < 40 && i%2 == 0:
				if err := s.SaveConnection(ctx, conns[i]); err != nil {
					errs <- err
					return
				}
				errs <- s.DeleteConnection(ctx, conns[i].ID)
			case i < 40:
				errs <- s.SaveConnection(ctx, conns[i])
			case i%2 == 0:
				errs <- s.SaveConnection(ctx, conns[i])
			default:
				errs <- s.DeleteConnection(ctx, conns[i-1].ID)
			}
		})
	}
	close(start)
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatalf("concurrent save/delete: %v", err)
		}
	}

	byGroup := reach(t, s, n, notify.Target{Groups: []string{group}})
	broadcast := reach(t, s, n, notify.Target{Broadcast: true})
	byUser := make([]map[string]notify.Connection, users)
	for u := range users {
		byUser[u] = reach(t, s, n, notify.Target{Users: []string{n.user(fmt.Sprintf("u%d", u))}})
	}
	bySub := make([]map[string]notify.Connection, 3)
	for g := range 3 {
		bySub[g] = reach(t, s, n, notify.Target{Groups: []string{n.group(fmt.Sprintf("g%d", g))}})
	}

	present := 0
	for i := 0; i < goroutines; i++ {
		if i >= 40 && i%2 == 1 {
			continue // the deleting half of a pair has no connection of its own
		}
		c := conns[i]
		_, getErr := s.GetConnection(t.Context(), c.ID)
		if getErr != nil && notify.ErrorCode(getErr) != notify.ENOTFOUND {
			t.Fatalf("GetConnection(%q): %v", c.ID, getErr)
		}
		_, inGroup := byGroup[c.ID]
		_, inBroadcast := broadcast[c.ID]
		_, inUser := byUser[i%users][c.ID]
		_, inSub := bySub[i%3][c.ID]
		state := []bool{getErr == nil, inUser, inGroup, inSub, inBroadcast}
		all := !slices.Contains(state, false)
		none := !slices.Contains(state, true)
		switch {
		case !all && !none:
			t.Errorf("%s half stored: found by get, user, group, other group, broadcast = %v", c.ID, state)
		case i < 40 && i%2 == 0 && !none:
			t.Errorf("%s was saved then deleted but is still stored", c.ID)
		case i < 40 && i%2 == 1 && !all:
			t.Errorf("%s was saved but is missing", c.ID)
		}
		if all {
			present++
		}
	}
	t.Logf("%d connections present", present)
	// Nothing but this subtest's present connections in the indexes.
	if len(byGroup) != present || len(broadcast) != present {
		t.Errorf("group reaches %d and broadcast %d connections, want %d", len(byGroup), len(broadcast), present)
	}
}

func testContextCanceled(t *testing.T, s notify.ConnectionStore, n names) {
	stored := newConn(n.conn("stored"), n.user("42"), n.group("plant-3"))
	save(t, s, stored)

	ctx, cancel := context.WithCancel(t.Context())
	cancel()

	unsaved := newConn(n.conn("unsaved"), n.user("42"), n.group("plant-3"))
	if err := s.SaveConnection(ctx, unsaved); err == nil {
		t.Error("SaveConnection with a canceled context returned nil")
	} else {
		// "On error nothing of c is left stored."
		wantNotFound(t, s, unsaved.ID)
		wantIDs(t, "by user after a failed save", reach(t, s, n, notify.Target{Users: []string{unsaved.UserID}}), stored.ID)
	}
	if _, err := s.GetConnection(ctx, stored.ID); err == nil {
		t.Error("GetConnection with a canceled context returned nil")
	}
	if err := s.DeleteConnection(ctx, stored.ID); err == nil {
		t.Error("DeleteConnection with a canceled context returned nil")
	}
	if _, err := s.DeleteGoneConnection(ctx, stored.ID, time.Now().Add(time.Hour)); err == nil {
		t.Error("DeleteGoneConnection with a canceled context returned nil")
	}
	for _, target := range []notify.Target{
		{Users: []string{stored.UserID}},
		{Groups: []string{n.group("plant-3")}},
		{Broadcast: true},
	} {
		if _, err := walk(ctx, s, target); err == nil {
			t.Errorf("ForEachTarget(%+v) with a canceled context returned nil", target)
		}
	}
}

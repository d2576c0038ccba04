package memory

import (
	"bytes"
	"context"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/workorders/notify/internal/notify"
)

var _ notify.InboxStore = (*Store)(nil)

// minClaimSweep is the fewest idempotency claims held before the store
// looks for expired ones to forget.
const minClaimSweep = 1024

// inbox is the notify.InboxStore half of a Store. It has a lock of its own,
// so that publishes and syncs never wait on connections coming and going.
//
// Each stream is a slice of entries sorted by id: ids may arrive out of
// order (publishes on several machines), so an append inserts in place.
// One notification appended to many streams is one entry shared by all of
// them. Expiry is checked on every read; expired entries at the old end of a
// stream are dropped when the stream is next appended to, expired claims
// when the claims have doubled since the last sweep, and a user's expired
// read marks when that user next marks something read.
type inbox struct {
	mu       sync.RWMutex
	streams  map[string][]*entry             // stream -> entries ascending by id
	claims   map[string]claim                // idempotency key -> its claim
	sweepAt  int                             // sweep claims when there are this many
	readIDs  map[string]map[string]time.Time // user id -> notification id -> mark's expiry
	readUpTo map[string]string               // user id -> MarkAllRead's highest upTo
}

// entry is one stored notification. Entries are never mutated once stored:
// a second append of the same id replaces the entry, so readers may keep
// pointers after the lock is released.
type entry struct {
	id        string
	payload   []byte
	expiresAt time.Time
}

// claim is who holds an idempotency key, until when, and the id of its
// notification once committed.
type claim struct {
	holder    string
	id        string
	expiresAt time.Time
	committed bool
}

func newInbox() *inbox {
	return &inbox{
		streams:  make(map[string][]*entry),
		claims:   make(map[string]claim),
		sweepAt:  minClaimSweep,
		readIDs:  make(map[string]map[string]time.Time),
		readUpTo: make(map[string]string),
	}
}

// past reports whether expiresAt has passed at now. A zero expiresAt never
// passes.
func past(expiresAt, now time.Time) bool {
	return !expiresAt.IsZero() && !now.Before(expiresAt)
}

// ClaimIdempotencyKey records that key belongs to holder until expiresAt,
// unless an unexpired claim holds it: then it returns that claim with
// Claimed false. A claim already expired when made is still recorded (and
// loses to the next claim).
func (s *Store) ClaimIdempotencyKey(ctx context.Context, key, holder string, expiresAt time.Time) (notify.IdempotencyClaim, error) {
	if err := ctx.Err(); err != nil {
		return notify.IdempotencyClaim{}, err
	}
	if key == "" || holder == "" {
		return notify.IdempotencyClaim{}, notify.Errorf(notify.EINVALID, "idempotency key and holder must not be empty")
	}
	now := s.now()
	in := s.inbox
	in.mu.Lock()
	defer in.mu.Unlock()
	if c, ok := in.claims[key]; ok && !past(c.expiresAt, now) {
		return notify.IdempotencyClaim{Holder: c.holder, ID: c.id, Committed: c.committed, ExpiresAt: c.expiresAt}, nil
	}
	in.claims[key] = claim{holder: holder, expiresAt: expiresAt}
	if len(in.claims) >= in.sweepAt {
		in.sweepClaims(now)
	}
	return notify.IdempotencyClaim{Holder: holder, Claimed: true, ExpiresAt: expiresAt}, nil
}

// CommitIdempotencyKey records id on the claim of key, marks it committed
// and extends it to expiresAt, if holder holds it; otherwise it returns
// notify.ErrClaimLost.
func (s *Store) CommitIdempotencyKey(ctx context.Context, key, holder, id string, expiresAt time.Time) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	in := s.inbox
	in.mu.Lock()
	defer in.mu.Unlock()
	c, ok := in.claims[key]
	if !ok || c.holder != holder {
		return notify.ErrClaimLost
	}
	in.claims[key] = claim{holder: holder, id: id, expiresAt: expiresAt, committed: true}
	return nil
}

// sweepClaims forgets expired claims, and sets the next sweep for when the
// claims have doubled, so that sweeping costs O(1) per claim. The caller
// holds the write lock.
func (in *inbox) sweepClaims(now time.Time) {
	for k, c := range in.claims {
		if past(c.expiresAt, now) {
			delete(in.claims, k)
		}
	}
	in.sweepAt = max(2*len(in.claims), minClaimSweep)
}

// ReleaseIdempotencyKey removes the claim of key if holder holds it and it
// is not committed. Releasing a key that is unclaimed, committed or held by
// another does nothing.
func (s *Store) ReleaseIdempotencyKey(ctx context.Context, key, holder string) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	in := s.inbox
	in.mu.Lock()
	defer in.mu.Unlock()
	if c, ok := in.claims[key]; ok && c.holder == holder && !c.committed {
		delete(in.claims, key)
	}
	return nil
}

// AppendNotification stores n in each of streams, in id order, to expire
// at expiresAt. The payload is copied. Appending an id a stream already
// holds replaces it, so a retried append stores it once. Appending to no
// stream stores nothing.
func (s *Store) AppendNotification(ctx context.Context, n notify.StoredNotification, streams []string, expiresAt time.Time) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if n.ID == "" {
		return notify.Errorf(notify.EINVALID, "notification id is empty")
	}
	e := &entry{id: n.ID, payload: bytes.Clone(n.Payload), expiresAt: expiresAt}
	now := s.now()
	in := s.inbox
	in.mu.Lock()
	defer in.mu.Unlock()
	for _, stream := range streams {
		list := insert(in.streams[stream], e)
		// Retention is the same for every notification, so the expired
		// ones gather at the old end.
		drop := 0
		for drop < len(list) && past(list[drop].expiresAt, now) {
			drop++
		}
		if drop == len(list) {
			delete(in.streams, stream)
			continue
		}
		in.streams[stream] = list[drop:]
	}
	return nil
}

// insert puts e into list at its place in id order, replacing an entry of
// the same id. Most ids are the newest, so the common case appends.
func insert(list []*entry, e *entry) []*entry {
	if len(list) == 0 || list[len(list)-1].id < e.id {
		return append(list, e)
	}
	i := sort.Search(len(list), func(i int) bool { return list[i].id >= e.id })
	if i < len(list) && list[i].id == e.id {
		list[i] = e
		return list
	}
	return slices.Insert(list, i, e)
}

// ListAfter returns the unexpired notifications of streams with an id
// greater than after, ascending, each id once, at most limit of them, and
// whether more exist. Each stream is entered by binary search and read for
// at most limit+1 unexpired entries.
func (s *Store) ListAfter(ctx context.Context, streams []string, after string, limit int) ([]notify.StoredNotification, bool, error) {
	if err := ctx.Err(); err != nil {
		return nil, false, err
	}
	if limit < 1 {
		return nil, false, notify.Errorf(notify.EINVALID, "limit must be at least 1, got %d", limit)
	}
	now := s.now()
	in := s.inbox
	var found []*entry
	in.mu.RLock()
	for _, stream := range streams {
		list := in.streams[stream]
		i := sort.Search(len(list), func(i int) bool { return list[i].id > after })
		// limit+1 from each stream is enough: the first limit+1 distinct
		// ids of all streams are each among the first limit+1 of their own.
		for taken := 0; i < len(list) && taken <= limit; i++ {
			if !past(list[i].expiresAt, now) {
				found = append(found, list[i])
				taken++
			}
		}
	}
	in.mu.RUnlock()

	found = distinct(found)
	more := len(found) > limit
	return stored(found[:min(len(found), limit)]), more, nil
}

// ListLatest returns the newest limit unexpired notifications of streams,
// ascending, each id once. Each stream is read from its newest end for at
// most limit unexpired entries.
func (s *Store) ListLatest(ctx context.Context, streams []string, limit int) ([]notify.StoredNotification, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if limit < 1 {
		return nil, notify.Errorf(notify.EINVALID, "limit must be at least 1, got %d", limit)
	}
	now := s.now()
	in := s.inbox
	var found []*entry
	in.mu.RLock()
	for _, stream := range streams {
		list := in.streams[stream]
		for i, taken := len(list)-1, 0; i >= 0 && taken < limit; i-- {
			if !past(list[i].expiresAt, now) {
				found = append(found, list[i])
				taken++
			}
		}
	}
	in.mu.RUnlock()

	found = distinct(found)
	return stored(found[max(0, len(found)-limit):]), nil
}

// distinct sorts es by id and keeps each id once.
func distinct(es []*entry) []*entry {
	slices.SortFunc(es, func(a, b *entry) int { return strings.Compare(a.id, b.id) })
	return slices.CompactFunc(es, func(a, b *entry) bool { return a.id == b.id })
}

// stored copies es out, so that callers may change the payloads freely.
func stored(es []*entry) []notify.StoredNotification {
	out := make([]notify.StoredNotification, len(es))
	for i, e := range es {
		out[i] = notify.StoredNotification{ID: e.id, Payload: bytes.Clone(e.payload)}
	}
	return out
}

// VisibleIDs returns those of ids that an unexpired entry of one of streams
// holds, in the order given, each once.
func (s *Store) VisibleIDs(ctx context.Context, streams []string, ids []string) ([]string, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	now := s.now()
	in := s.inbox
	in.mu.RLock()
	defer in.mu.RUnlock()
	out := make([]string, 0, len(ids))
	seen := make(map[string]struct{}, len(ids))
	for _, id := range ids {
		if _, dup := seen[id]; dup {
			continue
		}
		seen[id] = struct{}{}
		if in.holds(streams, id, now) {
			out = append(out, id)
		}
	}
	return out, nil
}

// holds reports whether one of streams has an unexpired entry of id. The
// caller holds a lock.
func (in *inbox) holds(streams []string, id string, now time.Time) bool {
	for _, stream := range streams {
		list := in.streams[stream]
		i := sort.Search(len(list), func(i int) bool { return list[i].id >= id })
		if i < len(list) && list[i].id == id && !past(list[i].expiresAt, now) {
			return true
		}
	}
	return false
}

// MarkRead records ids as read by userID until expiresAt. Ids already
// covered by MarkAllRead are not recorded again; the user's expired marks
// are forgotten.
func (s *Store) MarkRead(ctx context.Context, userID string, ids []string, expiresAt time.Time) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if userID == "" {
		return notify.Errorf(notify.EINVALID, "user id is required")
	}
	now := s.now()
	in := s.inbox
	in.mu.Lock()
	defer in.mu.Unlock()
	marks := in.readIDs[userID]
	if marks == nil {
		marks = make(map[string]time.Time)
		in.readIDs[userID] = marks
	}
	for id, exp := range marks {
		if past(exp, now) {
			delete(marks, id)
		}
	}
	upTo := in.readUpTo[userID]
	for _, id := range ids {
		if id == "" || id <= upTo {
			continue
		}
		// A mark never expires sooner than it already did.
		if old, ok := marks[id]; ok && (old.IsZero() || old.After(expiresAt)) {
			continue
		}
		marks[id] = expiresAt
	}
	if len(marks) == 0 {
		delete(in.readIDs, userID)
	}
	return nil
}

// MarkAllRead records every id up to and including upTo as read by userID.
// A lower upTo than one recorded changes nothing. The individual marks it
// covers are forgotten.
func (s *Store) MarkAllRead(ctx context.Context, userID string, upTo string) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if userID == "" {
		return notify.Errorf(notify.EINVALID, "user id is required")
	}
	in := s.inbox
	in.mu.Lock()
	defer in.mu.Unlock()
	if upTo <= in.readUpTo[userID] {
		return nil
	}
	in.readUpTo[userID] = upTo
	marks := in.readIDs[userID]
	for id := range marks {
		if id <= upTo {
			delete(marks, id)
		}
	}
	if marks != nil && len(marks) == 0 {
		delete(in.readIDs, userID)
	}
	return nil
}

// ReadState reports, for each of ids, whether userID read it: at or below
// the user's MarkAllRead mark, or marked by MarkRead and unexpired.
func (s *Store) ReadState(ctx context.Context, userID string, ids []string) ([]bool, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if userID == "" {
		return nil, notify.Errorf(notify.EINVALID, "user id is required")
	}
	now := s.now()
	in := s.inbox
	in.mu.RLock()
	defer in.mu.RUnlock()
	upTo := in.readUpTo[userID]
	marks := in.readIDs[userID]
	out := make([]bool, len(ids))
	for i, id := range ids {
		if id == "" {
			continue
		}
		exp, marked := marks[id]
		out[i] = id <= upTo || (marked && !past(exp, now))
	}
	return out, nil
}

// CountUnread counts the unexpired notifications of streams that userID has
// not read, each id once, up to maxCount. It walks the streams newest first,
// merged, and stops at maxCount or at the user's MarkAllRead mark, so it reads
// about maxCount entries plus the ones read or expired on the way.
func (s *Store) CountUnread(ctx context.Context, userID string, streams []string, maxCount int) (int, error) {
	if err := ctx.Err(); err != nil {
		return 0, err
	}
	if maxCount <= 0 {
		return 0, nil
	}
	now := s.now()
	in := s.inbox
	in.mu.RLock()
	defer in.mu.RUnlock()
	upTo := in.readUpTo[userID]
	marks := in.readIDs[userID]

	// One cursor per distinct stream, from its newest entry down to the
	// first above upTo.
	type cursor struct {
		list []*entry
		next int // index of the next entry to visit, newest first
		stop int // index of the oldest entry to visit
	}
	cursors := make([]cursor, 0, len(streams))
	for _, stream := range slices.Compact(slices.Sorted(slices.Values(streams))) {
		list := in.streams[stream]
		stop := sort.Search(len(list), func(i int) bool { return list[i].id > upTo })
		if stop < len(list) {
			cursors = append(cursors, cursor{list: list, next: len(list) - 1, stop: stop})
		}
	}

	count := 0
	for count < maxCount {
		// The newest id at any cursor.
		id := ""
		for _, c := range cursors {
			if c.next >= c.stop && c.list[c.next].id > id {
				id = c.list[c.next].id
			}
		}
		if id == "" {
			break
		}
		// Step every cursor past id: it is one notification, unexpired if
		// any of its copies is.
		alive := false
		for i := range cursors {
			c := &cursors[i]
			if c.next >= c.stop && c.list[c.next].id == id {
				alive = alive || !past(c.list[c.next].expiresAt, now)
				c.next--
			}
		}
		if !alive {
			continue
		}
		if exp, read := marks[id]; read && !past(exp, now) {
			continue
		}
		count++
	}
	return count, nil
}

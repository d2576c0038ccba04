// Package memory is an in-memory notify.ConnectionStore and
// notify.InboxStore: the embedded default of the local stack and of tests.
// It keeps everything in one process and forgets it on exit.
package memory

import (
	"context"
	"maps"
	"slices"
	"sync"
	"time"

	"github.com/workorders/notify/internal/notify"
)

// PageSize is the most connections Store.ForEachTarget hands to fn at once.
const PageSize = 1000

// Store is a notify.ConnectionStore held in memory. It is safe for
// concurrent use. Connections are indexed by id, by user and by group.
// Expiry is checked on every read; expired connections stay in memory until
// they are deleted or saved again (there is no background sweep).
type Store struct {
	mu      sync.RWMutex
	conns   map[string]*notify.Connection  // by id; values are never mutated
	byUser  map[string]map[string]struct{} // user id -> connection ids
	byGroup map[string]map[string]struct{} // group name -> connection ids
	now     func() time.Time               // wall clock, replaceable in tests
	inbox   *inbox                         // the notify.InboxStore half (inbox.go)
	revoked map[string]revocation          // user id -> latest revocation
}

// revocation is a RevokeUser record.
type revocation struct{ at, expiresAt time.Time }

var _ notify.ConnectionStore = (*Store)(nil)

// New returns an empty Store.
func New() *Store {
	return &Store{
		conns:   make(map[string]*notify.Connection),
		byUser:  make(map[string]map[string]struct{}),
		byGroup: make(map[string]map[string]struct{}),
		now:     time.Now,
		inbox:   newInbox(),
		revoked: make(map[string]revocation),
	}
}

// expired reports whether c has passed its ExpiresAt at now.
func expired(c *notify.Connection, now time.Time) bool {
	return !now.Before(c.ExpiresAt)
}

// SaveConnection stores c with its user and group memberships (each group
// once). Saving an id that is already stored replaces it, memberships
// included.
func (s *Store) SaveConnection(ctx context.Context, c notify.Connection) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if c.ID == "" || c.UserID == "" || c.ConnectedAt.IsZero() || c.ExpiresAt.IsZero() {
		return notify.Errorf(notify.EINVALID, "connection id, user id, connection time and expiry are required")
	}
	stored := c
	stored.Groups = slices.Compact(slices.Sorted(slices.Values(c.Groups)))

	s.mu.Lock()
	defer s.mu.Unlock()
	if old, ok := s.conns[c.ID]; ok {
		s.unindex(old)
	}
	s.conns[c.ID] = &stored
	add(s.byUser, stored.UserID, stored.ID)
	for _, g := range stored.Groups {
		add(s.byGroup, g, stored.ID)
	}
	return nil
}

// GetConnection returns the connection with this id, or an ENOTFOUND error
// when there is none or it has expired.
func (s *Store) GetConnection(ctx context.Context, id string) (notify.Connection, error) {
	if err := ctx.Err(); err != nil {
		return notify.Connection{}, err
	}
	s.mu.RLock()
	c, ok := s.conns[id]
	s.mu.RUnlock()
	if !ok || expired(c, s.now()) {
		return notify.Connection{}, notify.Errorf(notify.ENOTFOUND, "connection %q not found", id)
	}
	cc := *c
	cc.Groups = slices.Clone(c.Groups)
	return cc, nil
}

// DeleteConnection removes the connection and its memberships. Removing an
// unknown id is not an error.
func (s *Store) DeleteConnection(ctx context.Context, id string) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if c, ok := s.conns[id]; ok {
		s.remove(c)
	}
	return nil
}

// DeleteGoneConnection removes the connection only if its ConnectedAt is
// before connectedBefore, and reports whether it removed it.
func (s *Store) DeleteGoneConnection(ctx context.Context, id string, connectedBefore time.Time) (bool, error) {
	if err := ctx.Err(); err != nil {
		return false, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	c, ok := s.conns[id]
	if !ok || !c.ConnectedAt.Before(connectedBefore) {
		return false, nil
	}
	s.remove(c)
	return true, nil
}

// ForEachTarget calls fn with pages of at most PageSize unexpired
// connections that t reaches. Each connection appears once, even when
// several targets reach it. The store is not locked while fn runs: the
// targeted connections are listed under a read lock, then each page is
// copied and handed to fn, so fn may call the store. A connection deleted
// during the walk may still be delivered; one saved during it may be missed.
func (s *Store) ForEachTarget(ctx context.Context, t notify.Target, fn func(page []notify.Connection) error) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	targets := s.targets(t)
	for start := 0; start < len(targets); start += PageSize {
		if err := ctx.Err(); err != nil {
			return err
		}
		end := min(start+PageSize, len(targets))
		page := copyPage(targets[start:end], s.now())
		if len(page) == 0 {
			continue
		}
		if err := fn(page); err != nil {
			return err
		}
	}
	return nil
}

// targets lists, under the read lock, the stored connections t reaches,
// each once. The pointed-to connections are immutable.
func (s *Store) targets(t notify.Target) []*notify.Connection {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if t.Broadcast {
		return slices.AppendSeq(make([]*notify.Connection, 0, len(s.conns)), maps.Values(s.conns))
	}
	seen := make(map[string]struct{})
	var out []*notify.Connection
	collect := func(ids map[string]struct{}) {
		for id := range ids {
			if _, dup := seen[id]; dup {
				continue
			}
			seen[id] = struct{}{}
			out = append(out, s.conns[id])
		}
	}
	for _, u := range t.Users {
		collect(s.byUser[u])
	}
	for _, g := range t.Groups {
		collect(s.byGroup[g])
	}
	return out
}

// copyPage copies the unexpired connections of cs, with their groups in one
// shared backing array, so that fn may keep or change the page freely.
func copyPage(cs []*notify.Connection, now time.Time) []notify.Connection {
	n := 0
	for _, c := range cs {
		n += len(c.Groups)
	}
	groups := make([]string, 0, n)
	page := make([]notify.Connection, 0, len(cs))
	for _, c := range cs {
		if expired(c, now) {
			continue
		}
		cc := *c
		if c.Groups != nil {
			start := len(groups)
			groups = append(groups, c.Groups...)
			cc.Groups = groups[start:len(groups):len(groups)]
		}
		page = append(page, cc)
	}
	return page
}

// remove deletes c and its memberships. The caller holds the write lock.
func (s *Store) remove(c *notify.Connection) {
	delete(s.conns, c.ID)
	s.unindex(c)
}

// unindex deletes c's memberships. The caller holds the write lock.
func (s *Store) unindex(c *notify.Connection) {
	drop(s.byUser, c.UserID, c.ID)
	for _, g := range c.Groups {
		drop(s.byGroup, g, c.ID)
	}
}

// add records that connection id is a member of key in index.
func add(index map[string]map[string]struct{}, key, id string) {
	set, ok := index[key]
	if !ok {
		set = make(map[string]struct{})
		index[key] = set
	}
	set[id] = struct{}{}
}

// drop forgets that connection id is a member of key in index, and forgets
// key when it has no members left.
func drop(index map[string]map[string]struct{}, key, id string) {
	set, ok := index[key]
	if !ok {
		return
	}
	delete(set, id)
	if len(set) == 0 {
		delete(index, key)
	}
}

// RevokeUser records that userID's tokens issued before at are refused
// until expiresAt, keeping the latest time when revoked twice.
func (s *Store) RevokeUser(ctx context.Context, userID string, at, expiresAt time.Time) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if userID == "" {
		return notify.Errorf(notify.EINVALID, "user id is required")
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if r, ok := s.revoked[userID]; ok && !r.at.Before(at) && s.now().Before(r.expiresAt) {
		return nil
	}
	s.revoked[userID] = revocation{at: at, expiresAt: expiresAt}
	return nil
}

// RevokedAt returns the time of userID's latest unexpired revocation, or
// the zero time.
func (s *Store) RevokedAt(ctx context.Context, userID string) (time.Time, error) {
	if err := ctx.Err(); err != nil {
		return time.Time{}, err
	}
	s.mu.RLock()
	defer s.mu.RUnlock()
	r, ok := s.revoked[userID]
	if !ok || !s.now().Before(r.expiresAt) {
		return time.Time{}, nil
	}
	return r.at, nil
}

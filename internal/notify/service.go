package notify

import (
	"context"
	"crypto/rand"
	"errors"
	"sync"
	"sync/atomic"
	"time"

	"github.com/oklog/ulid/v2"
)

// Defaults of a Service.
const (
	// DefaultConnectionTTL is how long a connection is kept when no
	// $disconnect comes: a little over API Gateway's 2-hour maximum.
	DefaultConnectionTTL = 2*time.Hour + 15*time.Minute
	// DefaultGoneGrace protects fresh connections from 410 cleanup: a post
	// during $connect also answers 410 (CONTRACT.md §4).
	DefaultGoneGrace = 10 * time.Second
	// DefaultConcurrency bounds the sends in flight per publish.
	DefaultConcurrency = 64
	// DefaultRetention is how long notifications are kept (RETENTION_DAYS).
	DefaultRetention = 30 * 24 * time.Hour
	// IdempotencyWindow is how long an idempotencyKey is remembered.
	IdempotencyWindow = 24 * time.Hour
	// DefaultStoreTimeout bounds the inbox write of a publish: a slower
	// write fails the publish and nothing is sent (CONTRACT.md §5).
	DefaultStoreTimeout = 10 * time.Second
)

// Service is what the functions do: connect, disconnect, answer frames and
// publish. Its zero value is not usable: set Connections (and Sender to
// publish).
type Service struct {
	Connections ConnectionStore
	// Inbox keeps every published notification for Retention, so that
	// nothing is lost while a socket is down (CONTRACT.md §5).
	Inbox InboxStore
	// Retention is DefaultRetention when zero.
	Retention time.Duration
	// Sender delivers published notifications.
	Sender Sender
	// Concurrency bounds the sends in flight per publish (DefaultConcurrency).
	Concurrency int
	// ConnectionTTL is DefaultConnectionTTL when zero.
	ConnectionTTL time.Duration
	// GoneGrace is DefaultGoneGrace when zero.
	GoneGrace time.Duration
	// StoreTimeout is DefaultStoreTimeout when zero.
	StoreTimeout time.Duration
	// Now is time.Now when nil.
	Now func() time.Time
}

func (s *Service) now() time.Time {
	if s.Now != nil {
		return s.Now()
	}
	return time.Now()
}

// Connect stores a new connection of userID with its groups. The identity
// must already be verified.
func (s *Service) Connect(ctx context.Context, id, userID string, groups []string, connectedAt time.Time) error {
	if connectedAt.IsZero() {
		connectedAt = s.now()
	}
	ttl := s.ConnectionTTL
	if ttl <= 0 {
		ttl = DefaultConnectionTTL
	}
	// The expiry counts from when the connection is stored, which on AWS is
	// connectedAt give or take milliseconds, and keeps a replayed event
	// (sam local invoke) from storing an already expired connection.
	return s.Connections.SaveConnection(ctx, Connection{
		ID: id, UserID: userID, Groups: groups,
		ConnectedAt: connectedAt, ExpiresAt: s.now().Add(ttl),
	})
}

// Disconnect forgets a connection and its memberships.
func (s *Service) Disconnect(ctx context.Context, id string) error {
	return s.Connections.DeleteConnection(ctx, id)
}

// HandleMessage answers one client frame through sender, which reaches the
// sending connection. Refused frames get an `error` frame; the socket stays
// open. The error returned is only a failure to answer.
func (s *Service) HandleMessage(ctx context.Context, sender Sender, connectionID string, body []byte, binary bool) error {
	var answer any
	var frame ClientFrame
	var err error
	if binary {
		err = invalidf("binary frames are not accepted: send JSON text")
	} else {
		frame, err = DecodeClientFrame(body)
	}
	switch {
	case err != nil:
		LoggerFrom(ctx).Info("frame refused", "code", ErrorCode(err), "reason", ErrorMessage(err))
		answer = NewErrorFrame(err, frame.Ref)
	case frame.Action == ActionPing:
		answer = PongFrame{Type: "pong", Ref: frame.Ref}
	case frame.Action == ActionSync:
		synced, err := s.sync(ctx, connectionID, frame.Sync, frame.Ref)
		if err != nil {
			answer = s.failedFrame(ctx, frame, err)
		} else {
			answer = synced
		}
	case frame.Action == ActionRead:
		// The answer goes to every socket of the user, this one included.
		if err := s.read(ctx, sender, connectionID, frame.Read, frame.Ref); err != nil {
			answer = s.failedFrame(ctx, frame, err)
		} else {
			return nil
		}
	}
	data, err := EncodeJSON(answer)
	if err != nil {
		return Wrap(EINTERNAL, err, "marshal answer")
	}
	return sender.Send(ctx, connectionID, data)
}

func (s *Service) failedFrame(ctx context.Context, frame ClientFrame, err error) ErrorFrame {
	LoggerFrom(ctx).Error("frame failed", "action", frame.Action, "error", err.Error())
	return NewErrorFrame(err, frame.Ref)
}

// Publish stores the notification in the inbox of every target, then sends
// it to every connection the request targets, each once, with bounded
// concurrency, and reports the counts. The request must come from
// DecodePublishRequest. If storing fails, nothing is sent. One failed
// connection never stops the others; a 410 removes that connection unless it
// is younger than GoneGrace. A repeated idempotencyKey returns the first id
// with Duplicate set and sends nothing.
func (s *Service) Publish(ctx context.Context, req PublishRequest) (PublishResult, error) {
	// The id is minted immediately before the writes, so that ids and store
	// order differ by as little as possible (sync's overlap covers the rest).
	var now time.Time
	var id string
	if req.IdempotencyKey == "" {
		now = s.now()
		id = NewID(now)
	} else {
		claim, mintedAt, err := s.claim(ctx, req.IdempotencyKey)
		if err != nil {
			return PublishResult{}, err
		}
		if !claim.Claimed {
			return PublishResult{ID: claim.ID, OfflineUsers: []string{}, Duplicate: true}, nil
		}
		now, id = mintedAt, claim.ID
	}
	n := &Notification{
		ID: id, Type: req.Notification.Type, Title: req.Notification.Title,
		Body: req.Notification.Body, Data: req.Notification.Data, CreatedAt: Timestamp{now},
	}
	payload, err := EncodeJSON(n)
	if err != nil {
		return PublishResult{}, Wrap(EINTERNAL, err, "marshal notification")
	}
	if err := s.store(ctx, StoredNotification{ID: id, Payload: payload}, req, now); err != nil {
		if req.IdempotencyKey != "" {
			if rerr := s.Inbox.ReleaseIdempotencyKey(context.WithoutCancel(ctx), req.IdempotencyKey, id); rerr != nil {
				LoggerFrom(ctx).Error("releasing the idempotency key failed", "error", rerr.Error())
			}
		}
		return PublishResult{}, err
	}
	if req.IdempotencyKey != "" {
		// From here on a repeated publish is answered as a duplicate. If
		// committing fails, the lease runs out and a retry could publish
		// again: at-least-once, never lost.
		if err := s.Inbox.CommitIdempotencyKey(ctx, req.IdempotencyKey, id, now.Add(IdempotencyWindow)); err != nil {
			LoggerFrom(ctx).Error("committing the idempotency key failed", "error", err.Error())
		}
	}
	// The frame is marshalled once for every recipient.
	frame := make([]byte, 0, len(payload)+40)
	frame = append(frame, `{"type":"notification","notification":`...)
	frame = append(append(frame, payload...), '}')
	counts, err := s.deliver(ctx, req.Target(), frame)
	if err != nil {
		return PublishResult{}, err
	}
	return PublishResult{
		ID: id, Connections: counts.connections, Delivered: counts.delivered,
		Gone: counts.gone, Failed: counts.failed, OfflineUsers: counts.offlineUsers,
	}, nil
}

// claim takes the idempotency key for a new id, minted at the time it
// returns, or returns the committed claim of an earlier publish. While an
// earlier publish with the key is still storing (its claim is pending), it
// waits, backing off: answering "duplicate" then would name a notification
// that may never exist if that store fails.
func (s *Service) claim(ctx context.Context, key string) (IdempotencyClaim, time.Time, error) {
	lease := s.storeTimeout() + idempotencyLeaseMargin
	deadline := s.now().Add(lease)
	wait := idempotencyPoll
	for {
		now := s.now()
		claim, err := s.Inbox.ClaimIdempotencyKey(ctx, key, NewID(now), now.Add(lease))
		if err != nil {
			return claim, now, Wrap(EINTERNAL, err, "checking the idempotency key failed")
		}
		if claim.Claimed || claim.Committed {
			return claim, now, nil
		}
		if now.After(deadline) {
			return claim, now, Errorf(EINTERNAL, "a publish with idempotencyKey %q is still in progress; retry later", key)
		}
		select {
		case <-time.After(wait):
		case <-ctx.Done():
			return claim, now, Wrap(EINTERNAL, ctx.Err(), "waiting for a publish with the same idempotencyKey")
		}
		wait = min(2*wait, idempotencyMaxPoll)
	}
}

// While a claim is pending it is a lease a little longer than the store
// timeout, so that a publisher that died mid-store does not block the key
// for the whole idempotency window.
const (
	idempotencyLeaseMargin = 5 * time.Second
	idempotencyPoll        = 50 * time.Millisecond
	idempotencyMaxPoll     = time.Second
)

func (s *Service) storeTimeout() time.Duration {
	if s.StoreTimeout > 0 {
		return s.StoreTimeout
	}
	return DefaultStoreTimeout
}

// store writes n into the stream of every target, within StoreTimeout.
func (s *Service) store(ctx context.Context, n StoredNotification, req PublishRequest, now time.Time) error {
	streams := make([]string, 0, len(req.Users)+len(req.Groups)+1)
	for _, u := range uniqueStrings(req.Users) {
		streams = append(streams, UserStream(u))
	}
	for _, g := range uniqueStrings(req.Groups) {
		streams = append(streams, GroupStream(g))
	}
	if req.Broadcast {
		streams = append(streams, BroadcastStream)
	}
	timeout := s.storeTimeout()
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	if err := s.Inbox.AppendNotification(ctx, n, streams, now.Add(s.retention())); err != nil {
		if ctx.Err() != nil {
			return Wrap(EINTERNAL, err, "storing the notification took longer than "+timeout.String()+"; nothing was sent")
		}
		return Wrap(EINTERNAL, err, "storing the notification failed; nothing was sent")
	}
	return nil
}

func (s *Service) retention() time.Duration {
	if s.Retention > 0 {
		return s.Retention
	}
	return DefaultRetention
}

type deliveryCounts struct {
	connections, delivered, gone, failed int
	offlineUsers                         []string
}

// deliver walks the target's connections page by page while workers send,
// so that pagination overlaps with sending.
func (s *Service) deliver(ctx context.Context, target Target, frame []byte) (deliveryCounts, error) {
	var counts deliveryCounts
	// reached marks the requested users who got the notification on at
	// least one connection. The map is read-only once built; the flags are
	// atomic, so workers need no lock.
	reached := make(map[string]*atomic.Bool, len(target.Users))
	for _, u := range target.Users {
		reached[u] = new(atomic.Bool)
	}
	workers := s.Concurrency
	if workers <= 0 {
		workers = DefaultConcurrency
	}
	goneBefore := s.now().Add(-s.goneGrace())
	var delivered, gone, failed atomic.Int64
	work := make(chan Connection, workers*2)
	var wg sync.WaitGroup
	started := 0
	startWorker := func() {
		started++
		wg.Add(1)
		go func() {
			defer wg.Done()
			for c := range work {
				err := s.Sender.Send(ctx, c.ID, frame)
				switch {
				case err == nil:
					delivered.Add(1)
					if flag := reached[c.UserID]; flag != nil {
						flag.Store(true)
					}
				case ErrorCode(err) == EGONE:
					gone.Add(1)
					s.forgetGone(ctx, c, goneBefore)
				default:
					failed.Add(1)
					LoggerFrom(ctx).Warn("send failed", "connectionId", c.ID, "error", err.Error())
				}
			}
		}()
	}
	seen := make(map[string]struct{})
	handed := 0
	walkErr := s.Connections.ForEachTarget(ctx, target, func(page []Connection) error {
		for _, c := range page {
			if _, dup := seen[c.ID]; dup {
				continue
			}
			seen[c.ID] = struct{}{}
			// Start workers only as connections arrive: the common publish
			// reaches one or two sockets.
			if started < workers && started < len(seen) {
				startWorker()
			}
			select {
			case work <- c:
				handed++
			case <-ctx.Done():
				return ctx.Err()
			}
		}
		return nil
	})
	close(work)
	wg.Wait()
	if walkErr != nil {
		// Once anything was sent, an error would tell the caller "nothing
		// was sent, retry" and a retry would send twice. The notification
		// is stored: whoever the walk did not reach gets it on sync.
		if handed == 0 {
			if !errors.As(walkErr, new(*Error)) {
				walkErr = Wrap(EINTERNAL, walkErr, "find target connections")
			}
			return counts, walkErr
		}
		LoggerFrom(ctx).Error("finding target connections failed part way; the others get it on sync",
			"sent", handed, "error", walkErr.Error())
	}
	counts.connections = handed
	counts.delivered, counts.gone, counts.failed = int(delivered.Load()), int(gone.Load()), int(failed.Load())
	counts.offlineUsers = []string{}
	for _, u := range uniqueStrings(target.Users) {
		if !reached[u].Load() {
			counts.offlineUsers = append(counts.offlineUsers, u)
		}
	}
	return counts, nil
}

func (s *Service) goneGrace() time.Duration {
	if s.GoneGrace > 0 {
		return s.GoneGrace
	}
	return DefaultGoneGrace
}

// forgetGone removes a connection the gateway answered 410 for, unless it
// connected after cutoff (its $connect may still be running).
func (s *Service) forgetGone(ctx context.Context, c Connection, cutoff time.Time) {
	if !c.ConnectedAt.IsZero() && !c.ConnectedAt.Before(cutoff) {
		return
	}
	if _, err := s.Connections.DeleteGoneConnection(ctx, c.ID, cutoff); err != nil {
		LoggerFrom(ctx).Warn("removing gone connection failed", "connectionId", c.ID, "error", err.Error())
	}
}

func uniqueStrings(in []string) []string {
	seen := make(map[string]struct{}, len(in))
	out := make([]string, 0, len(in))
	for _, s := range in {
		if _, dup := seen[s]; !dup {
			seen[s] = struct{}{}
			out = append(out, s)
		}
	}
	return out
}

var (
	entropyMu sync.Mutex
	entropy   = ulid.Monotonic(rand.Reader, 0)
)

// NewID mints a notification id: a ULID of time t, monotonic within this
// process so that ids minted in the same millisecond still sort in order.
func NewID(t time.Time) string {
	entropyMu.Lock()
	defer entropyMu.Unlock()
	return ulid.MustNew(ulid.Timestamp(t), entropy).String()
}

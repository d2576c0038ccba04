package notify

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/oklog/ulid/v2"
	"golang.org/x/sync/errgroup"
)

// Defaults of a Service.
const (
	// DefaultConnectionTTL is how long a connection is kept when no
	// $disconnect comes: a little over API Gateway's 2-hour maximum.
	DefaultConnectionTTL = 2*time.Hour + 15*time.Minute
	// DefaultGoneGrace protects fresh connections from 410 cleanup: a post
	// during $connect also answers 410 (docs/PROTOCOL.md §4).
	DefaultGoneGrace = 10 * time.Second
	// DefaultConcurrency bounds the sends in flight per publish.
	DefaultConcurrency = 64
	// DefaultRetention is how long notifications are kept (RETENTION_DAYS).
	DefaultRetention = 30 * 24 * time.Hour
	// IdempotencyWindow is how long an idempotencyKey is remembered.
	IdempotencyWindow = 24 * time.Hour
	// DefaultStoreTimeout bounds the inbox write of a publish: a slower
	// write fails the publish and nothing is sent (docs/PROTOCOL.md §5). It also
	// bounds how long a walk of the target connections may wait for a page.
	DefaultStoreTimeout = 10 * time.Second
	// DefaultCallTimeout bounds each single storage call around a publish
	// or a connect (an idempotency claim or commit, a revocation lookup).
	DefaultCallTimeout = 2 * time.Second
	// DefaultPublishTimeout is the most a publish may spend on storage
	// before answering, whatever storage does (docs/PROTOCOL.md §4).
	DefaultPublishTimeout = 15 * time.Second
	// DefaultConnectTimeout bounds what $connect does before it answers
	// (the store's own cleanup of a failed save, at most 5 s, comes on top):
	// well inside the function's 15 s timeout and API Gateway's 29 s.
	DefaultConnectTimeout = 6 * time.Second
	// DefaultMaxConnectionsPerUser is MAX_CONNECTIONS_PER_USER's default.
	DefaultMaxConnectionsPerUser = 20
	// RevocationWindow is how long a disconnect request keeps refusing a
	// user's older tokens (docs/PROTOCOL.md §2).
	RevocationWindow = 7 * 24 * time.Hour
	// answerConcurrency bounds the sends in flight of one frame's answer to
	// a user's sockets (`read`, the cap's `disconnected` frames).
	answerConcurrency = 32
)

// Service is what the functions do: connect, disconnect, answer frames and
// publish. Its zero value is not usable: set Connections (and Sender to
// publish).
type Service struct {
	Connections ConnectionStore
	// Inbox keeps every published notification for Retention, so that
	// nothing is lost while a socket is down (docs/PROTOCOL.md §5).
	Inbox InboxStore
	// Retention is DefaultRetention when zero.
	Retention time.Duration
	// Sender delivers published notifications and closes connections.
	Sender Sender
	// Concurrency bounds the sends in flight per publish (DefaultConcurrency).
	Concurrency int
	// Fanout, when set, takes the sends of a publish that reaches more than
	// FanoutThreshold connections, in batches (fanout.go). Nil: the
	// publisher sends everything itself.
	Fanout Fanout
	// FanoutThreshold is DefaultFanoutThreshold when zero.
	FanoutThreshold int
	// FanoutBatchSize is DefaultFanoutBatchSize when zero.
	FanoutBatchSize int
	// FanoutShards (batches in flight) is DefaultFanoutShards when zero.
	FanoutShards int
	// FanoutPostsPerSecond is DefaultFanoutPostsPerSecond when zero.
	FanoutPostsPerSecond int
	// ConnectionTTL is DefaultConnectionTTL when zero.
	ConnectionTTL time.Duration
	// GoneGrace is DefaultGoneGrace when zero.
	GoneGrace time.Duration
	// StoreTimeout is DefaultStoreTimeout when zero.
	StoreTimeout time.Duration
	// CallTimeout is DefaultCallTimeout when zero.
	CallTimeout time.Duration
	// PublishTimeout is DefaultPublishTimeout when zero.
	PublishTimeout time.Duration
	// ConnectTimeout is DefaultConnectTimeout when zero.
	ConnectTimeout time.Duration
	// MaxConnectionsPerUser is DefaultMaxConnectionsPerUser when zero.
	MaxConnectionsPerUser int
	// Now is time.Now when nil.
	Now func() time.Time
}

func (s *Service) now() time.Time {
	if s.Now != nil {
		return s.Now()
	}
	return time.Now()
}

// ConnectRequest is a connection whose token has been verified.
type ConnectRequest struct {
	// ID is the API Gateway connection id.
	ID     string
	UserID string
	Groups []string
	// ConnectedAt is when the gateway accepted the socket (zero: now).
	ConnectedAt time.Time
	// TokenIssuedAt is the token's iat (zero when it has none).
	TokenIssuedAt time.Time
	// TokenExpiresAt is the token's exp.
	TokenExpiresAt time.Time
}

// ErrRevoked refuses a connection whose token was issued before its user
// was revoked by a disconnect request (docs/PROTOCOL.md §2): a 401.
var ErrRevoked = &Error{Code: EUNAUTHORIZED, Message: "token revoked: it was issued before the user was signed out; get a new token"}

// Connect stores a new connection of a verified identity, within
// ConnectTimeout. A token issued before its user's revocation is refused
// with ErrRevoked and nothing is stored. Once stored, the user's oldest
// connections beyond MaxConnectionsPerUser are sent a `disconnected` frame
// (too_many_connections) through sender and closed; a failure there is
// logged, not returned: the new connection opens regardless.
func (s *Service) Connect(ctx context.Context, sender Sender, req ConnectRequest) error {
	ctx, cancel := context.WithTimeout(ctx, s.connectTimeout())
	defer cancel()
	if err := s.checkRevoked(ctx, req.UserID, req.TokenIssuedAt); err != nil {
		return err
	}
	now := s.now()
	connectedAt := req.ConnectedAt
	if connectedAt.IsZero() {
		connectedAt = now
	}
	ttl := positiveOr(s.ConnectionTTL, DefaultConnectionTTL)
	// The expiry counts from when the connection is stored, which on AWS is
	// connectedAt give or take milliseconds, and keeps a replayed event
	// (sam local invoke) from storing an already expired connection.
	if err := s.Connections.SaveConnection(ctx, Connection{
		ID: req.ID, UserID: req.UserID, Groups: req.Groups,
		ConnectedAt: connectedAt, ExpiresAt: now.Add(ttl), TokenExpiresAt: req.TokenExpiresAt,
	}); err != nil {
		if ctx.Err() != nil {
			return Wrap(EINTERNAL, err, "storing the connection took longer than "+s.connectTimeout().String())
		}
		return Wrap(EINTERNAL, err, "storing the connection failed")
	}
	if sender != nil {
		if err := s.enforceConnectionCap(ctx, sender, req.UserID, req.ID); err != nil {
			LoggerFrom(ctx).Warn("closing the user's oldest connections failed", "error", err.Error())
		}
	}
	return nil
}

func (s *Service) connectTimeout() time.Duration {
	return positiveOr(s.ConnectTimeout, DefaultConnectTimeout)
}

// checkRevoked refuses a token of a revoked user issued before the
// revocation's second, or with no iat at all.
func (s *Service) checkRevoked(ctx context.Context, userID string, issuedAt time.Time) error {
	callCtx, cancel := context.WithTimeout(ctx, s.callTimeout())
	defer cancel()
	revokedAt, err := s.Connections.RevokedAt(callCtx, userID)
	if err != nil {
		return Wrap(EINTERNAL, err, "checking whether the user was signed out failed")
	}
	if !revokedAt.IsZero() && (issuedAt.IsZero() || issuedAt.Before(revokedAt)) {
		return ErrRevoked
	}
	return nil
}

// MaxConnections returns the per-user cap in force.
func (s *Service) MaxConnections() int {
	return positiveOr(s.MaxConnectionsPerUser, DefaultMaxConnectionsPerUser)
}

// enforceConnectionCap closes the oldest connections of userID (by connect
// time, then id) beyond MaxConnections, never newID, each after a
// `disconnected` frame (too_many_connections).
func (s *Service) enforceConnectionCap(ctx context.Context, sender Sender, userID, newID string) error {
	var conns []Connection
	err := s.Connections.ForEachTarget(ctx, Target{Users: []string{userID}}, func(page []Connection) error {
		conns = append(conns, page...)
		return nil
	})
	if err != nil {
		return err
	}
	conns = uniqueBy(conns, func(c Connection) string { return c.ID })
	excess := len(conns) - s.MaxConnections()
	if !slices.ContainsFunc(conns, func(c Connection) bool { return c.ID == newID }) {
		// Not visible yet (an eventually consistent read): it counts all the same.
		excess++
	}
	if excess <= 0 {
		return nil
	}
	slices.SortFunc(conns, func(a, b Connection) int {
		if c := a.ConnectedAt.Compare(b.ConnectedAt); c != 0 {
			return c
		}
		return strings.Compare(a.ID, b.ID)
	})
	var oldest []Connection
	for _, c := range conns {
		if len(oldest) == excess {
			break
		}
		if c.ID != newID {
			oldest = append(oldest, c)
		}
	}
	frame, err := EncodeJSON(DisconnectedFrame{Type: "disconnected", Code: DisconnectTooManyConnections})
	if err != nil {
		return err
	}
	LoggerFrom(ctx).Info("closing the user's oldest connections", "over", len(oldest), "max", s.MaxConnections())
	var g errgroup.Group
	g.SetLimit(answerConcurrency)
	for _, c := range oldest {
		g.Go(func() error {
			s.sendAndClose(ctx, sender, c.ID, frame)
			return nil
		})
	}
	return g.Wait()
}

// sendAndClose sends frame to a connection, closes it and forgets it. It
// reports what happened: closed, already gone, or failed.
func (s *Service) sendAndClose(ctx context.Context, sender Sender, id string, frame []byte) closeOutcome {
	if err := sender.Send(ctx, id, frame); err != nil {
		if ErrorCode(err) == EGONE {
			s.forget(ctx, id)
			return closedGone
		}
		// Close it all the same: the frame is a courtesy, the close is the point.
		LoggerFrom(ctx).Warn("disconnected frame not delivered", "connectionId", id, "error", err.Error())
	}
	switch err := sender.Close(ctx, id); {
	case err == nil:
		s.forget(ctx, id)
		return closedNow
	case ErrorCode(err) == EGONE:
		s.forget(ctx, id)
		return closedGone
	default:
		LoggerFrom(ctx).Warn("closing a connection failed", "connectionId", id, "error", err.Error())
		return closeFailed
	}
}

type closeOutcome int

const (
	closedNow closeOutcome = iota
	closedGone
	closeFailed
)

// Disconnect forgets a connection and its memberships.
func (s *Service) Disconnect(ctx context.Context, id string) error {
	return s.Connections.DeleteConnection(ctx, id)
}

// HandleMessage answers one client frame through sender, which reaches the
// sending connection. Refused frames get an `error` frame; the socket stays
// open, except when the connection's token has expired: then the frame is
// answered `token_expired` and the connection is closed. The error returned
// is only a failure to answer. HandleFrame does the same and also says what
// the frame was.
func (s *Service) HandleMessage(ctx context.Context, sender Sender, connectionID string, body []byte, binary bool) error {
	_, err := s.HandleFrame(ctx, sender, connectionID, body, binary)
	return err
}

// FrameResult says what HandleFrame made of a client frame, for the
// caller's metrics (docs/PROTOCOL.md §9).
type FrameResult struct {
	// Action is the frame's action when it names one the server knows
	// (ActionPing, ActionSync, ActionRead), even if the frame was refused;
	// "" otherwise (not JSON, no action, an unknown one, binary).
	Action string
	// ErrorCode is the code of the `error` frame it was answered with
	// (FrameBadRequest, FrameUnknownAction, FrameInternal,
	// FrameTokenExpired); "" when it was answered as asked.
	ErrorCode string
}

// HandleFrame is HandleMessage, and also reports the frame's action and the
// code of the `error` frame it was answered with, if any.
func (s *Service) HandleFrame(ctx context.Context, sender Sender, connectionID string, body []byte, binary bool) (FrameResult, error) {
	var res FrameResult
	conn, connErr := s.Connections.GetConnection(ctx, connectionID)
	if connErr == nil && conn.TokenExpired(s.now()) {
		LoggerFrom(ctx).Info("frame refused: token expired", "tokenExpiresAt", conn.TokenExpiresAt)
		head := frameHead(body, binary)
		res = FrameResult{Action: knownAction(head.Action), ErrorCode: FrameTokenExpired}
		data, err := EncodeJSON(NewErrorFrame(ErrTokenExpired, head.Ref))
		if err != nil {
			return res, Wrap(EINTERNAL, err, "marshal answer")
		}
		if err := sender.Send(ctx, connectionID, data); err != nil && ErrorCode(err) != EGONE {
			LoggerFrom(ctx).Warn("token_expired answer not delivered", "error", err.Error())
		}
		if err := sender.Close(ctx, connectionID); err != nil && ErrorCode(err) != EGONE {
			return res, err
		}
		return res, nil
	}
	var answer any
	var frame ClientFrame
	var err error
	if binary {
		err = invalidf("binary frames are not accepted: send JSON text")
	} else {
		frame, err = DecodeClientFrame(body)
	}
	res.Action = knownAction(frame.Action)
	switch {
	case err != nil:
		LoggerFrom(ctx).Info("frame refused", "code", ErrorCode(err), "reason", ErrorMessage(err))
		answer = NewErrorFrame(err, frame.Ref)
	case frame.Action == ActionPing:
		answer = PongFrame{Type: "pong", Ref: frame.Ref}
	case connErr != nil:
		answer = s.failedFrame(ctx, frame, viewerError(connErr))
	case frame.Action == ActionSync:
		synced, err := s.sync(ctx, viewerOf(conn), frame.Sync, frame.Ref)
		if err != nil {
			answer = s.failedFrame(ctx, frame, err)
		} else {
			answer = synced
		}
	case frame.Action == ActionRead:
		// The answer goes to every socket of the user, this one included.
		if err := s.read(ctx, sender, connectionID, viewerOf(conn), frame.Read, frame.Ref); err != nil {
			answer = s.failedFrame(ctx, frame, err)
		} else {
			return res, nil
		}
	}
	if ef, ok := answer.(ErrorFrame); ok {
		res.ErrorCode = ef.Code
	}
	data, err := EncodeJSON(answer)
	if err != nil {
		return res, Wrap(EINTERNAL, err, "marshal answer")
	}
	return res, sender.Send(ctx, connectionID, data)
}

// frameHead reads the action and ref of a frame, as far as they are
// readable, so that even a token_expired answer echoes the ref.
func frameHead(body []byte, binary bool) ClientFrame {
	if binary {
		return ClientFrame{}
	}
	f, _ := DecodeClientFrame(body)
	return f
}

// knownAction returns action when the server knows it, else "".
func knownAction(action string) string {
	switch action {
	case ActionPing, ActionSync, ActionRead:
		return action
	}
	return ""
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
// is younger than GoneGrace; a connection whose token has expired is closed
// instead and counted gone. A repeated idempotencyKey returns the first id
// with Duplicate set and sends nothing (see claim for how that holds however
// slow storage is).
func (s *Service) Publish(ctx context.Context, req PublishRequest) (PublishResult, error) {
	deadline := s.now().Add(s.publishTimeout())
	var lease idempotencyLease
	if req.IdempotencyKey != "" {
		var dup *PublishResult
		var err error
		if lease, dup, err = s.claim(ctx, req.IdempotencyKey); err != nil || dup != nil {
			if dup != nil {
				return *dup, nil
			}
			return PublishResult{}, err
		}
	}
	// The id is minted immediately before the write, so that ids and store
	// order differ by at most the store timeout (sync's overlap covers it).
	now := s.now()
	id := NewID(now)
	n := &Notification{
		ID: id, Type: req.Notification.Type, Title: req.Notification.Title,
		Body: req.Notification.Body, Data: req.Notification.Data, CreatedAt: Timestamp{now},
	}
	payload, err := EncodeJSON(n)
	if err != nil {
		return PublishResult{}, Wrap(EINTERNAL, err, "marshal notification")
	}
	// The write gets StoreTimeout, or less when the rest of the publish
	// would not fit before the deadline: the commit (keyed) and a first
	// page of target connections must still come after it.
	left := deadline.Sub(now) - s.firstPageReserve()
	if lease.holder != "" {
		// The claim must also still be ours when the commit lands.
		left = min(left, lease.expiresAt.Sub(now)-idempotencyLeaseMargin) - s.callTimeout()
	}
	if left <= 0 {
		if lease.holder != "" {
			s.release(ctx, req.IdempotencyKey, lease.holder)
		}
		return PublishResult{}, Errorf(EINTERNAL, "storage took too long to leave time for storing the notification; nothing was sent; retry (with the same idempotencyKey, if any)")
	}
	timeout := min(s.storeTimeout(), left)
	// Timed on the real clock whatever Now says: it is a measurement.
	storeStart := time.Now()
	err = s.store(ctx, StoredNotification{ID: id, Payload: payload}, req, now, timeout)
	// On failure the result carries only the timing, for the caller's metrics.
	timing := PublishResult{StoreLatency: time.Since(storeStart)}
	if err != nil {
		if lease.holder != "" {
			s.release(ctx, req.IdempotencyKey, lease.holder)
		}
		return timing, err
	}
	if lease.holder != "" {
		// Only a committed claim may send: if the lease ran out and another
		// call took the key over, that call sends, not this one.
		if err := s.commit(ctx, req.IdempotencyKey, lease.holder, id, now); err != nil {
			return timing, err
		}
	}
	frame, err := EncodeJSON(NotificationFrame{Type: "notification", Notification: n})
	if err != nil {
		return timing, Wrap(EINTERNAL, err, "marshal notification frame")
	}
	counts, err := s.deliver(ctx, req.Target(), frame, deadline)
	if err != nil {
		return timing, err
	}
	return PublishResult{
		ID: id, Connections: counts.connections, Delivered: counts.delivered,
		Gone: counts.gone, Failed: counts.failed, OfflineUsers: counts.offlineUsers,
		StoreLatency: timing.StoreLatency,
	}, nil
}

// idempotencyLease is a claim this call holds: its token and when the lease
// runs out unless committed.
type idempotencyLease struct {
	holder    string
	expiresAt time.Time
}

// claim takes the idempotency key, or returns the duplicate answer when an
// earlier publish with the key has committed. Every storage call is bounded
// by CallTimeout, so the whole publish answers within PublishTimeout:
//
//   - The lease runs from before the claim call, so however late the call's
//     answer arrives, the lease it wrote ends when this call already knows.
//   - A claim whose answer is late is abandoned (an error: nothing was sent,
//     a retry with the key is safe) and released in the background.
//   - While another call's claim is pending, it waits for it to commit
//     (then it answers duplicate) or to run out (then it claims, and its
//     store gets what time is left), until one more claim call would not fit
//     before PublishTimeout; then it gives up with an error rather than
//     answer "duplicate" for a notification that may never exist.
//   - Only a committed claim sends (commit), and a commit is conditional on
//     the claim token, so of two calls with one key at most one sends.
func (s *Service) claim(ctx context.Context, key string) (idempotencyLease, *PublishResult, error) {
	start := s.now()
	// The latest moment to try a claim: one call and the first page of
	// connections must still fit in PublishTimeout.
	lastClaim := start.Add(s.publishTimeout() - s.callTimeout() - s.firstPageReserve())
	wait := idempotencyPoll
	for {
		now := s.now()
		lease := idempotencyLease{holder: newClaimToken(), expiresAt: now.Add(s.leaseDuration())}
		callCtx, cancel := context.WithTimeout(ctx, s.callTimeout())
		claim, err := s.Inbox.ClaimIdempotencyKey(callCtx, key, lease.holder, lease.expiresAt)
		late := callCtx.Err() != nil
		cancel()
		if err != nil || late {
			// The claim may have been written all the same: release it (if it
			// is ours and pending) so that a retry need not wait out the lease.
			s.release(ctx, key, lease.holder)
			if late {
				return lease, nil, Errorf(EINTERNAL, "checking the idempotencyKey took longer than %s; nothing was sent; retry with the same idempotencyKey", s.callTimeout())
			}
			return lease, nil, Wrap(EINTERNAL, err, "checking the idempotencyKey failed; nothing was sent; retry with the same idempotencyKey")
		}
		switch {
		case claim.Claimed:
			return lease, nil, nil
		case claim.Committed:
			return lease, &PublishResult{ID: claim.ID, OfflineUsers: []string{}, Duplicate: true}, nil
		}
		if s.now().Add(wait).After(lastClaim) {
			return lease, nil, Errorf(EINTERNAL, "a publish with idempotencyKey %q is still in progress; nothing was sent by this call; retry with the same idempotencyKey", key)
		}
		select {
		case <-time.After(wait):
		case <-ctx.Done():
			return lease, nil, Wrap(EINTERNAL, ctx.Err(), "waiting for a publish with the same idempotencyKey")
		}
		wait = min(2*wait, idempotencyMaxPoll)
	}
}

// commit marks the key's claim committed with id, within CallTimeout. Any
// failure means this call must not send: a lost claim belongs to another
// call, and an unanswered commit may or may not have landed.
func (s *Service) commit(ctx context.Context, key, holder, id string, mintedAt time.Time) error {
	callCtx, cancel := context.WithTimeout(ctx, s.callTimeout())
	defer cancel()
	err := s.Inbox.CommitIdempotencyKey(callCtx, key, holder, id, mintedAt.Add(IdempotencyWindow))
	switch {
	case err == nil:
		return nil
	case ErrorCode(err) == ECONFLICT:
		LoggerFrom(ctx).Error("idempotency claim lost before commit; not sending", "id", id, "error", err.Error())
		return Wrap(ECONFLICT, err, "the idempotencyKey was taken over by another publish while this one was storing; nothing was sent by this call")
	case callCtx.Err() != nil:
		return Errorf(EINTERNAL, "committing the idempotencyKey took longer than %s; nothing was sent; a retry with the same idempotencyKey answers duplicate if the commit landed late", s.callTimeout())
	default:
		return Wrap(EINTERNAL, err, "committing the idempotencyKey failed; nothing was sent; retry with the same idempotencyKey")
	}
}

// release gives the key back, best effort and in the background (bounded by
// CallTimeout): the caller answers without waiting for it.
func (s *Service) release(ctx context.Context, key, holder string) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), s.callTimeout())
	inbox := s.Inbox
	go func() {
		defer cancel()
		if err := inbox.ReleaseIdempotencyKey(ctx, key, holder); err != nil {
			LoggerFrom(ctx).Warn("releasing the idempotency key failed; it frees itself when its lease runs out", "error", err.Error())
		}
	}()
}

// firstPageReserve is the least time a publish keeps, within its deadline,
// for the first page of target connections after the store write: half a
// storage call (1 s by default).
func (s *Service) firstPageReserve() time.Duration { return s.callTimeout() / 2 }

// Idempotency timing. A pending claim is a lease just long enough for one
// claim call, the store and the commit, so that a publisher that died
// mid-store blocks the key for seconds, not for the whole idempotency window.
const (
	idempotencyLeaseMargin = time.Second
	idempotencyPoll        = 50 * time.Millisecond
	idempotencyMaxPoll     = 500 * time.Millisecond
)

func (s *Service) leaseDuration() time.Duration {
	return 2*s.callTimeout() + s.storeTimeout() + idempotencyLeaseMargin
}

func newClaimToken() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

func (s *Service) storeTimeout() time.Duration {
	return positiveOr(s.StoreTimeout, DefaultStoreTimeout)
}

func (s *Service) callTimeout() time.Duration { return positiveOr(s.CallTimeout, DefaultCallTimeout) }

func (s *Service) publishTimeout() time.Duration {
	return positiveOr(s.PublishTimeout, DefaultPublishTimeout)
}

// store writes n into the stream of every target, within timeout.
func (s *Service) store(ctx context.Context, n StoredNotification, req PublishRequest, now time.Time, timeout time.Duration) error {
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

func (s *Service) retention() time.Duration { return positiveOr(s.Retention, DefaultRetention) }

type deliveryCounts struct {
	connections, delivered, gone, failed int
	offlineUsers                         []string
}

// deliver sends frame to every connection target reaches, each once: itself,
// or, with a Fanout and more than FanoutThreshold connections, through
// batches handed to the Fanout (fanout.go). A connection whose token has
// expired is closed instead and counted gone. The first page of connections
// must come by deadline.
func (s *Service) deliver(ctx context.Context, target Target, frame []byte, deadline time.Time) (deliveryCounts, error) {
	d := newDelivery(ctx, s, target, frame)
	handed, walkErr := s.walkConnections(ctx, target, deadline, d.add)
	d.finish()
	if walkErr != nil {
		// Once anything was sent, an error would tell the caller "nothing
		// was sent, retry" and a retry would send twice. The notification
		// is stored: whoever the walk did not reach gets it on sync.
		if handed == 0 {
			return deliveryCounts{}, walkErr
		}
		LoggerFrom(ctx).Error("finding target connections failed part way; the others get it on sync",
			"sent", handed, "error", walkErr.Error())
	}
	counts := d.counts()
	counts.connections = handed
	return counts, nil
}

// sendOutcome is what became of one connection of a delivery.
type sendOutcome int

const (
	sentOK sendOutcome = iota
	sentGone
	sentFailed
)

// sendOne delivers frame to c, or closes c when its token has expired at
// now (counted gone). A 410 forgets c unless it connected after goneBefore.
func (s *Service) sendOne(ctx context.Context, c Connection, frame []byte, now, goneBefore time.Time) sendOutcome {
	if c.TokenExpired(now) {
		s.closeExpired(ctx, c)
		return sentGone
	}
	err := s.Sender.Send(ctx, c.ID, frame)
	switch {
	case err == nil:
		return sentOK
	case ErrorCode(err) == EGONE:
		s.forgetGone(ctx, c, goneBefore)
		return sentGone
	default:
		LoggerFrom(ctx).Warn("send failed", "connectionId", c.ID, "error", err.Error())
		return sentFailed
	}
}

// forEachConnection walks the connections target reaches (walkConnections)
// and calls visit for each once, at most workers at a time, so that the walk
// overlaps with the visits. It returns how many connections it handed to
// visit.
func (s *Service) forEachConnection(ctx context.Context, target Target, workers int, deadline time.Time, visit func(Connection)) (int, error) {
	var g errgroup.Group
	g.SetLimit(workers)
	handed, err := s.walkConnections(ctx, target, deadline, func(c Connection) {
		// Blocks while workers visits are in flight, so the walk reads
		// ahead of the sends by at most one page.
		g.Go(func() error {
			visit(c)
			return nil
		})
	})
	_ = g.Wait()
	return handed, err
}

// walkConnections walks the connections target reaches, page by page, and
// calls fn for each once, never concurrently. It returns how many
// connections it handed to fn. A store that yields no page by deadline, or,
// once a long walk is past it, none for StoreTimeout, stops the walk (an
// EINTERNAL error), so a stalled storage cannot hold the caller however many
// pages a long walk legitimately reads.
func (s *Service) walkConnections(ctx context.Context, target Target, deadline time.Time, fn func(Connection)) (int, error) {
	walkCtx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	// How long the walk may wait for its next page: until the deadline
	// (at least firstPageReserve), and once a long walk is past it,
	// StoreTimeout per page.
	patience := func() time.Duration {
		if left := deadline.Sub(s.now()); left > 0 {
			return max(left, s.firstPageReserve())
		}
		return s.storeTimeout()
	}
	errStalled := Errorf(EINTERNAL, "finding target connections: storage stopped answering")
	watchdog := time.AfterFunc(patience(), func() { cancel(errStalled) })
	defer watchdog.Stop()

	seen := make(map[string]struct{})
	handed := 0
	walkErr := s.Connections.ForEachTarget(walkCtx, target, func(page []Connection) error {
		watchdog.Stop()
		defer func() { watchdog.Reset(patience()) }()
		for _, c := range page {
			if _, dup := seen[c.ID]; dup {
				continue
			}
			if err := ctx.Err(); err != nil {
				return err
			}
			seen[c.ID] = struct{}{}
			handed++
			fn(c)
		}
		return nil
	})
	if walkErr != nil {
		if cause := context.Cause(walkCtx); errors.Is(cause, errStalled) {
			walkErr = errStalled
		}
		if !errors.As(walkErr, new(*Error)) {
			walkErr = Wrap(EINTERNAL, walkErr, "finding target connections failed")
		}
	}
	return handed, walkErr
}

func (s *Service) concurrency() int { return positiveOr(s.Concurrency, DefaultConcurrency) }

func (s *Service) goneGrace() time.Duration { return positiveOr(s.GoneGrace, DefaultGoneGrace) }

// forgetGone removes a connection the gateway answered 410 for, unless it
// connected after cutoff (its $connect may still be running).
func (s *Service) forgetGone(ctx context.Context, c Connection, cutoff time.Time) {
	if !c.ConnectedAt.IsZero() && !c.ConnectedAt.Before(cutoff) {
		return
	}
	ctx, cancel := context.WithTimeout(ctx, s.callTimeout())
	defer cancel()
	if _, err := s.Connections.DeleteGoneConnection(ctx, c.ID, cutoff); err != nil {
		LoggerFrom(ctx).Warn("removing gone connection failed", "connectionId", c.ID, "error", err.Error())
	}
}

// closeExpired closes a connection whose token has expired and forgets it.
func (s *Service) closeExpired(ctx context.Context, c Connection) {
	if err := s.Sender.Close(ctx, c.ID); err != nil && ErrorCode(err) != EGONE {
		LoggerFrom(ctx).Warn("closing a connection whose token expired failed", "connectionId", c.ID, "error", err.Error())
	}
	s.forget(ctx, c.ID)
}

// forget removes a connection the service closed, best effort: its
// $disconnect does the same, and the store's TTL covers both failing.
func (s *Service) forget(ctx context.Context, id string) {
	ctx, cancel := context.WithTimeout(ctx, s.callTimeout())
	defer cancel()
	if err := s.Connections.DeleteConnection(ctx, id); err != nil {
		LoggerFrom(ctx).Warn("removing a closed connection failed", "connectionId", id, "error", err.Error())
	}
}

// positiveOr returns v, or def when v is not positive (an unset field).
func positiveOr[T int | time.Duration](v, def T) T {
	if v > 0 {
		return v
	}
	return def
}

// uniqueBy returns in's items without repeats by key, in the order of
// their first occurrence, in a new slice.
func uniqueBy[T any, K comparable](in []T, key func(T) K) []T {
	seen := make(map[K]struct{}, len(in))
	out := make([]T, 0, len(in))
	for _, v := range in {
		if _, dup := seen[key(v)]; !dup {
			seen[key(v)] = struct{}{}
			out = append(out, v)
		}
	}
	return out
}

func uniqueStrings(in []string) []string { return uniqueBy(in, func(s string) string { return s }) }

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

package notify

import (
	"context"
	"encoding/json"
	"time"
)

// Streams a notification is stored in (docs/PROTOCOL.md §5). A connection sees
// its user's stream, the streams of its token's groups, and the broadcast
// stream. The prefixes keep users and groups apart: group "user:43" is
// stream "group:user:43", user 43 is stream "user:43".
const BroadcastStream = "broadcast"

// UserStream is the stream of one user.
func UserStream(userID string) string { return "user:" + userID }

// GroupStream is the stream of one group.
func GroupStream(group string) string { return "group:" + group }

// StoredNotification is a notification as kept in the inbox: its id and its
// JSON (the object inside a `notification` frame), marshalled once.
type StoredNotification struct {
	ID      string
	Payload json.RawMessage
}

// IdempotencyClaim says who holds an idempotency key.
type IdempotencyClaim struct {
	// Holder is the claim token of the call that holds the key.
	Holder string
	// ID is the notification id the holder committed; "" while pending.
	ID string
	// Claimed is true when this call took the key.
	Claimed bool
	// Committed is true once the holder has stored its notification; until
	// then a repeated publish must wait rather than report a notification
	// that may never exist.
	Committed bool
	// ExpiresAt is when the claim runs out (a pending claim's lease).
	ExpiresAt time.Time
}

// ErrClaimLost is what CommitIdempotencyKey returns when the holder no
// longer holds the key: its lease ran out and another call took it over.
// The caller must not send.
var ErrClaimLost = &Error{Code: ECONFLICT, Message: "the idempotency key was taken over by another publish after this one's lease ran out; nothing was sent"}

// InboxStore keeps published notifications for RETENTION_DAYS so that a user
// whose socket was down gets them on sync, the read state of each user, and
// the idempotency keys of publishes. Implementations: internal/dynamo and
// internal/memory; both pass internal/notify/inboxtest. Expired items
// (expiresAt in the past) are never returned, even where the engine has not
// removed them yet.
type InboxStore interface {
	// ClaimIdempotencyKey records that key belongs to the call whose claim
	// token is holder until expiresAt (a lease: the claim is pending until
	// committed). If the key is already held by an unexpired claim, it
	// returns that claim, with Claimed false. Of concurrent claims of one key
	// exactly one wins.
	ClaimIdempotencyKey(ctx context.Context, key, holder string, expiresAt time.Time) (IdempotencyClaim, error)

	// CommitIdempotencyKey records id as the key's notification, marks the
	// claim committed and extends it to expiresAt, if holder still holds the
	// key (even past its lease, as long as nobody took it over). Otherwise
	// it changes nothing and returns ErrClaimLost.
	CommitIdempotencyKey(ctx context.Context, key, holder, id string, expiresAt time.Time) error

	// ReleaseIdempotencyKey removes the claim of key if it is still held by
	// holder and not committed (a publish that failed before sending
	// anything), so a retry can claim it again.
	ReleaseIdempotencyKey(ctx context.Context, key, holder string) error

	// AppendNotification stores n in every one of streams (batched; a write
	// the engine leaves unprocessed is retried), to expire at expiresAt. On
	// error the caller must not send n.
	AppendNotification(ctx context.Context, n StoredNotification, streams []string, expiresAt time.Time) error

	// ListAfter returns the notifications of streams whose id is greater
	// than after ("" = from the oldest), ascending by id, each id once, at
	// most limit of them; more reports whether at least one more exists
	// after the last one returned. It reads key ranges only: never a whole
	// stream to return a page.
	ListAfter(ctx context.Context, streams []string, after string, limit int) (page []StoredNotification, more bool, err error)

	// ListLatest returns the newest limit notifications of streams,
	// ascending by id, each id once.
	ListLatest(ctx context.Context, streams []string, limit int) ([]StoredNotification, error)

	// VisibleIDs returns those of ids that are stored in at least one of
	// streams, in the order given.
	VisibleIDs(ctx context.Context, streams []string, ids []string) ([]string, error)

	// MarkRead records ids as read by userID, until expiresAt. An empty
	// userID is refused (EINVALID).
	MarkRead(ctx context.Context, userID string, ids []string, expiresAt time.Time) error

	// MarkAllRead records that every notification with an id up to and
	// including upTo is read by userID. A lower upTo than one already
	// recorded changes nothing. An empty userID is refused (EINVALID).
	MarkAllRead(ctx context.Context, userID string, upTo string) error

	// ReadState reports, for each of ids in the order given, whether userID
	// has read it: its id is at or below the user's MarkAllRead watermark,
	// or an unexpired read mark of this user (MarkRead) holds it. Other
	// users' marks do not count; an empty id is unread. It answers from the
	// read state alone (it does not check that the ids are stored or
	// visible), reading the watermark and the marks of exactly those ids: a
	// constant number of requests for a sync page (up to MaxSyncLimit ids),
	// never one per id nor the user's other marks. An empty userID is
	// refused (EINVALID).
	ReadState(ctx context.Context, userID string, ids []string) ([]bool, error)

	// CountUnread counts the notifications of streams that userID has not
	// read, stopping at max (so max means "max or more"). It reads at most
	// about max unread items plus the user's individual read marks, never a
	// whole stream.
	CountUnread(ctx context.Context, userID string, streams []string, max int) (int, error)
}

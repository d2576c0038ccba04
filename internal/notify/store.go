package notify

import (
	"context"
	"time"
)

// ConnectionStore keeps the open connections and who they belong to.
// Implementations: internal/dynamo (DynamoDB) and internal/memory (the
// embedded development default). Both pass internal/notify/storetest.
type ConnectionStore interface {
	// SaveConnection stores c with its user and group memberships, each
	// group once. c.ID, c.UserID, c.ConnectedAt and c.ExpiresAt are required (EINVALID).
	// On error nothing of c is left stored.
	SaveConnection(ctx context.Context, c Connection) error

	// GetConnection returns the stored connection with this id, or an
	// ENOTFOUND error. Expired connections are not found.
	GetConnection(ctx context.Context, id string) (Connection, error)

	// DeleteConnection removes the connection and all its memberships.
	// Removing an unknown id is not an error.
	DeleteConnection(ctx context.Context, id string) error

	// DeleteGoneConnection removes the connection only if it was connected
	// before connectedBefore, and reports whether it removed it. It is what
	// a 410 from the gateway calls: a connection whose $connect is still
	// running also answers 410 and must survive.
	DeleteGoneConnection(ctx context.Context, id string, connectedBefore time.Time) (bool, error)

	// ForEachTarget calls fn with pages of the unexpired connections that t
	// reaches: each listed user's, each listed group's, or, with Broadcast,
	// every connection. A connection may appear more than once (a user also
	// in a listed group); callers deduplicate by ID. fn is never called
	// concurrently. An error from fn stops the walk and is returned.
	// Returned Connections carry at least ID, UserID, ConnectedAt and
	// TokenExpiresAt.
	ForEachTarget(ctx context.Context, t Target, fn func(page []Connection) error) error

	// RevokeUser records that userID's tokens issued before at (a whole
	// second) are refused, until expiresAt. A later revocation moves the
	// time forward; an earlier one than already recorded changes nothing.
	RevokeUser(ctx context.Context, userID string, at, expiresAt time.Time) error

	// RevokedAt returns the time recorded by the latest unexpired RevokeUser
	// of userID, or the zero time when there is none.
	RevokedAt(ctx context.Context, userID string) (time.Time, error)
}

// Sender delivers frames to connections and closes them. The API Gateway
// Management API implements it (internal/apigw).
type Sender interface {
	// Send posts data to the connection. It returns an error whose code is
	// EGONE (see ErrGone) when the connection no longer exists.
	Send(ctx context.Context, connectionID string, data []byte) error
	// Close closes the connection from the server side; its $disconnect
	// follows. A connection that no longer exists gives an EGONE error.
	Close(ctx context.Context, connectionID string) error
}

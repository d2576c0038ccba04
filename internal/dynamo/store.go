// Package dynamo stores connections in DynamoDB: it implements
// notify.ConnectionStore on one table.
//
// # Schema
//
// The connections table has the key pk (S, HASH) and sk (S, RANGE), a global
// secondary index ByConnection whose HASH key is connectionId (S) with
// projection ALL, and a TTL attribute expiresAt (epoch seconds). A connection
// C of user U with groups G1..Gn is stored as:
//
//	pk=conn#C   sk=conn  connectionId, userId, groups (L of S, omitted when none), connectedAt, expiresAt
//	pk=user#U   sk=C     userId, connectedAt, expiresAt
//	pk=group#G  sk=C     userId, connectedAt, expiresAt   (one per group)
//	pk=revoked#U sk=revoked  revokedAt, expiresAt          (a disconnect request's revocation)
//
// Connection and membership items also carry tokenExpiresAt (epoch seconds)
// when the token had an exp, so a fan-out can close expired connections.
// connectedAt is in epoch milliseconds, expiresAt in epoch seconds. Only the
// connection item has connectionId, so ByConnection is a sparse index of the
// connections: a broadcast scans it. Fan-out to users and groups queries
// their partitions. The user# and group# prefixes keep user ids and group
// names apart: group "user:43" is not user 43.
//
// Expired items can linger (TTL deletes them up to two days late, and
// dynalite not at all), so every read filters on expiresAt.
package dynamo

import (
	"context"
	"errors"
	"math/rand/v2"
	"strconv"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/workorders/notify/internal/notify"
)

// Names of the table's attributes and index.
const (
	AttrPK           = "pk"
	AttrSK           = "sk"
	AttrConnectionID = "connectionId"
	AttrUserID       = "userId"
	AttrGroups       = "groups"
	AttrConnectedAt  = "connectedAt"
	AttrExpiresAt    = "expiresAt"
	// AttrTokenExpiresAt is the exp of the connection's token (epoch seconds).
	AttrTokenExpiresAt = "tokenExpiresAt"
	// AttrRevokedAt is when a user was revoked (epoch seconds).
	AttrRevokedAt = "revokedAt"

	// IndexByConnection is the sparse GSI over connection items.
	IndexByConnection = "ByConnection"

	// connSK is the sort key of a connection item.
	connSK = "conn"
	// revokedSK is the sort key of a user's revocation item.
	revokedSK = "revoked"
)

// DefaultTTL is how long a connection is kept when Connection.ExpiresAt is
// zero: API Gateway closes every socket after 2 hours.
const DefaultTTL = 2 * time.Hour

const (
	// batchSize is BatchWriteItem's limit of requests per call.
	batchSize = 25
	// maxBatchAttempts bounds the retries of UnprocessedItems.
	maxBatchAttempts = 10
	// queryConcurrency bounds the Queries or Scan segments run at once.
	queryConcurrency = 8
	// scanSegments is the TotalSegments of a broadcast's parallel Scan.
	scanSegments = 4
	// cleanupTimeout bounds best-effort cleanup after a failed save.
	cleanupTimeout = 5 * time.Second
)

// api is the part of *dynamodb.Client the store uses; tests substitute it.
type api interface {
	GetItem(context.Context, *dynamodb.GetItemInput, ...func(*dynamodb.Options)) (*dynamodb.GetItemOutput, error)
	PutItem(context.Context, *dynamodb.PutItemInput, ...func(*dynamodb.Options)) (*dynamodb.PutItemOutput, error)
	DeleteItem(context.Context, *dynamodb.DeleteItemInput, ...func(*dynamodb.Options)) (*dynamodb.DeleteItemOutput, error)
	BatchWriteItem(context.Context, *dynamodb.BatchWriteItemInput, ...func(*dynamodb.Options)) (*dynamodb.BatchWriteItemOutput, error)
	Query(context.Context, *dynamodb.QueryInput, ...func(*dynamodb.Options)) (*dynamodb.QueryOutput, error)
	Scan(context.Context, *dynamodb.ScanInput, ...func(*dynamodb.Options)) (*dynamodb.ScanOutput, error)
	UpdateItem(context.Context, *dynamodb.UpdateItemInput, ...func(*dynamodb.Options)) (*dynamodb.UpdateItemOutput, error)
}

// Store is a notify.ConnectionStore on a DynamoDB table with the schema in
// the package documentation. It is safe for concurrent use.
type Store struct {
	db    api
	table string

	// now returns the current time; tests may replace it.
	now func() time.Time
	// pageLimit, when positive, is the Limit of each Query and Scan page
	// (tests use it to force pagination).
	pageLimit int32
	// backoff returns the delay before retry attempt n (1-based) of
	// unprocessed batch items.
	backoff func(n int) time.Duration
}

var _ notify.ConnectionStore = (*Store)(nil)

// New returns a Store that keeps connections in the table connectionsTable
// through client.
func New(client *dynamodb.Client, connectionsTable string) *Store {
	return newStore(client, connectionsTable)
}

func newStore(db api, table string) *Store {
	return &Store{db: db, table: table, now: time.Now, backoff: defaultBackoff}
}

// defaultBackoff doubles from 25 ms up to 1 s, with jitter.
func defaultBackoff(n int) time.Duration {
	d := 25 * time.Millisecond << min(n-1, 6)
	d = min(d, time.Second)
	return d/2 + rand.N(d/2+1)
}

// SaveConnection stores c, its user membership and its group memberships.
// Memberships are written first and the connection item last, so a
// connection that can be found is complete. On failure it deletes, best
// effort, what it wrote and returns an EINTERNAL error.
func (s *Store) SaveConnection(ctx context.Context, c notify.Connection) error {
	if c.ID == "" || c.UserID == "" {
		return notify.Errorf(notify.EINVALID, "connection id and user id are required")
	}
	now := s.now()
	if c.ConnectedAt.IsZero() {
		c.ConnectedAt = now
	}
	if c.ExpiresAt.IsZero() {
		c.ExpiresAt = c.ConnectedAt.Add(DefaultTTL)
	}
	groups := dedupe(c.Groups)
	connectedAt := n(c.ConnectedAt.UnixMilli())
	expiresAt := n(c.ExpiresAt.Unix())
	userID := &types.AttributeValueMemberS{Value: c.UserID}
	connID := &types.AttributeValueMemberS{Value: c.ID}
	withTokenExpiry := func(item map[string]types.AttributeValue) map[string]types.AttributeValue {
		if !c.TokenExpiresAt.IsZero() {
			item[AttrTokenExpiresAt] = n(c.TokenExpiresAt.Unix())
		}
		return item
	}

	writes := make([]types.WriteRequest, 0, 1+len(groups))
	membership := func(pk string) types.WriteRequest {
		return types.WriteRequest{PutRequest: &types.PutRequest{Item: withTokenExpiry(map[string]types.AttributeValue{
			AttrPK:          &types.AttributeValueMemberS{Value: pk},
			AttrSK:          connID,
			AttrUserID:      userID,
			AttrConnectedAt: connectedAt,
			AttrExpiresAt:   expiresAt,
		})}}
	}
	writes = append(writes, membership(userPK(c.UserID)))
	for _, g := range groups {
		writes = append(writes, membership(groupPK(g)))
	}

	item := withTokenExpiry(map[string]types.AttributeValue{
		AttrPK:           &types.AttributeValueMemberS{Value: connPK(c.ID)},
		AttrSK:           &types.AttributeValueMemberS{Value: connSK},
		AttrConnectionID: connID,
		AttrUserID:       userID,
		AttrConnectedAt:  connectedAt,
		AttrExpiresAt:    expiresAt,
	})
	if len(groups) > 0 {
		l := make([]types.AttributeValue, len(groups))
		for i, g := range groups {
			l[i] = &types.AttributeValueMemberS{Value: g}
		}
		item[AttrGroups] = &types.AttributeValueMemberL{Value: l}
	}

	err := s.batchWrite(ctx, writes)
	if err == nil {
		_, err = s.db.PutItem(ctx, &dynamodb.PutItemInput{TableName: &s.table, Item: item})
	}
	if err != nil {
		s.cleanup(ctx, c.ID, c.UserID, groups)
		return internal(err, "saving connection")
	}
	return nil
}

// cleanup deletes, best effort, everything SaveConnection may have written.
func (s *Store) cleanup(ctx context.Context, id, userID string, groups []string) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), cleanupTimeout)
	defer cancel()
	_ = s.deleteMemberships(ctx, id, userID, groups)
	_, _ = s.db.DeleteItem(ctx, &dynamodb.DeleteItemInput{TableName: &s.table, Key: connKey(id)})
}

// GetConnection returns the connection with this id, or an ENOTFOUND error
// when it is not stored or has expired.
func (s *Store) GetConnection(ctx context.Context, id string) (notify.Connection, error) {
	item, err := s.getConnectionItem(ctx, id)
	if err != nil {
		return notify.Connection{}, err
	}
	if item == nil || s.expired(item) {
		return notify.Connection{}, notify.Errorf(notify.ENOTFOUND, "connection %q not found", id)
	}
	return connectionFromItem(item, id), nil
}

// getConnectionItem reads the connection item with a consistent read; it
// returns nil when there is none.
func (s *Store) getConnectionItem(ctx context.Context, id string) (map[string]types.AttributeValue, error) {
	if id == "" {
		return nil, nil
	}
	out, err := s.db.GetItem(ctx, &dynamodb.GetItemInput{
		TableName:      &s.table,
		Key:            connKey(id),
		ConsistentRead: aws.Bool(true),
	})
	if err != nil {
		return nil, internal(err, "reading connection")
	}
	if len(out.Item) == 0 {
		return nil, nil
	}
	return out.Item, nil
}

// DeleteConnection removes the connection and its memberships. Memberships
// go first, so that a failure leaves the connection item to find them again.
// An unknown id is not an error.
func (s *Store) DeleteConnection(ctx context.Context, id string) error {
	item, err := s.getConnectionItem(ctx, id)
	if err != nil || item == nil {
		return err
	}
	if err := s.deleteMemberships(ctx, id, str(item, AttrUserID), groupsOf(item)); err != nil {
		return internal(err, "deleting connection memberships")
	}
	if _, err := s.db.DeleteItem(ctx, &dynamodb.DeleteItemInput{TableName: &s.table, Key: connKey(id)}); err != nil {
		return internal(err, "deleting connection")
	}
	return nil
}

// DeleteGoneConnection removes the connection only if it connected before
// connectedBefore (compared in milliseconds), with a conditional DeleteItem,
// then removes its memberships. It reports whether it removed the connection;
// an unknown id gives false and no error.
func (s *Store) DeleteGoneConnection(ctx context.Context, id string, connectedBefore time.Time) (bool, error) {
	if id == "" {
		return false, nil
	}
	out, err := s.db.DeleteItem(ctx, &dynamodb.DeleteItemInput{
		TableName:                &s.table,
		Key:                      connKey(id),
		ConditionExpression:      aws.String("#c < :cutoff"),
		ExpressionAttributeNames: map[string]string{"#c": AttrConnectedAt},
		ExpressionAttributeValues: map[string]types.AttributeValue{
			":cutoff": n(connectedBefore.UnixMilli()),
		},
		ReturnValues: types.ReturnValueAllOld,
	})
	if err != nil {
		var ccf *types.ConditionalCheckFailedException
		if errors.As(err, &ccf) {
			return false, nil
		}
		return false, internal(err, "deleting gone connection")
	}
	if err := s.deleteMemberships(ctx, id, str(out.Attributes, AttrUserID), groupsOf(out.Attributes)); err != nil {
		return true, internal(err, "deleting gone connection's memberships")
	}
	return true, nil
}

// deleteMemberships deletes the user and group membership items of
// connection id.
func (s *Store) deleteMemberships(ctx context.Context, id, userID string, groups []string) error {
	groups = dedupe(groups)
	writes := make([]types.WriteRequest, 0, 1+len(groups))
	connID := &types.AttributeValueMemberS{Value: id}
	del := func(pk string) types.WriteRequest {
		return types.WriteRequest{DeleteRequest: &types.DeleteRequest{Key: map[string]types.AttributeValue{
			AttrPK: &types.AttributeValueMemberS{Value: pk},
			AttrSK: connID,
		}}}
	}
	if userID != "" {
		writes = append(writes, del(userPK(userID)))
	}
	for _, g := range groups {
		writes = append(writes, del(groupPK(g)))
	}
	return s.batchWrite(ctx, writes)
}

// batchWrite runs writes with BatchWriteItem in chunks of 25, retrying
// UnprocessedItems with exponential backoff.
func (s *Store) batchWrite(ctx context.Context, writes []types.WriteRequest) error {
	for start := 0; start < len(writes); start += batchSize {
		pending := writes[start:min(start+batchSize, len(writes))]
		for attempt := 1; ; attempt++ {
			out, err := s.db.BatchWriteItem(ctx, &dynamodb.BatchWriteItemInput{
				RequestItems: map[string][]types.WriteRequest{s.table: pending},
			})
			if err != nil {
				return err
			}
			pending = out.UnprocessedItems[s.table]
			if len(pending) == 0 {
				break
			}
			if attempt >= maxBatchAttempts {
				return errors.New("batch write: items still unprocessed after " + strconv.Itoa(attempt) + " attempts")
			}
			t := time.NewTimer(s.backoff(attempt))
			select {
			case <-ctx.Done():
				t.Stop()
				return ctx.Err()
			case <-t.C:
			}
		}
	}
	return nil
}

// ForEachTarget calls fn with pages of the unexpired connections t reaches.
// Users and groups are read with a Query of their partition each, run
// concurrently (at most 8 at once); a broadcast is a parallel Scan of the
// ByConnection index, and makes the user and group queries unnecessary.
// Pages are handed to fn from the calling goroutine only. An error from fn,
// or the end of ctx, stops every read before ForEachTarget returns.
func (s *Store) ForEachTarget(ctx context.Context, t notify.Target, fn func(page []notify.Connection) error) error {
	var jobs []func(context.Context, func([]notify.Connection) bool) error
	if t.Broadcast {
		for seg := range int32(scanSegments) {
			jobs = append(jobs, func(ctx context.Context, emit func([]notify.Connection) bool) error {
				return s.scanSegment(ctx, seg, emit)
			})
		}
	} else {
		for _, u := range dedupe(t.Users) {
			if u == "" {
				continue
			}
			jobs = append(jobs, func(ctx context.Context, emit func([]notify.Connection) bool) error {
				return s.queryPartition(ctx, userPK(u), emit)
			})
		}
		for _, g := range dedupe(t.Groups) {
			if g == "" {
				continue
			}
			jobs = append(jobs, func(ctx context.Context, emit func([]notify.Connection) bool) error {
				return s.queryPartition(ctx, groupPK(g), emit)
			})
		}
	}
	if len(jobs) == 0 {
		return nil
	}

	parent := ctx
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()

	pages := make(chan []notify.Connection)
	// emit hands a page to the calling goroutine; false means stop.
	emit := func(p []notify.Connection) bool {
		select {
		case pages <- p:
			return true
		case <-ctx.Done():
			return false
		}
	}

	queue := make(chan func(context.Context, func([]notify.Connection) bool) error, len(jobs))
	for _, j := range jobs {
		queue <- j
	}
	close(queue)

	var (
		wg       sync.WaitGroup
		errOnce  sync.Once
		readErr  error
		setError = func(err error) {
			errOnce.Do(func() { readErr = err })
			cancel()
		}
	)
	for range min(queryConcurrency, len(jobs)) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for job := range queue {
				if ctx.Err() != nil {
					return
				}
				if err := job(ctx, emit); err != nil {
					setError(err)
					return
				}
			}
		}()
	}
	go func() {
		wg.Wait()
		close(pages)
	}()

	var fnErr error
	for p := range pages {
		if fnErr != nil || ctx.Err() != nil {
			continue // draining while the readers stop
		}
		if err := fn(p); err != nil {
			fnErr = err
			cancel()
		}
	}
	switch {
	case fnErr != nil:
		return fnErr
	case readErr != nil:
		return internal(readErr, "reading connections")
	case parent.Err() != nil:
		return internal(parent.Err(), "reading connections")
	}
	return nil
}

// filterUnexpired is the FilterExpression of every fan-out read.
const filterUnexpired = "#e > :now"

// queryPartition pages through one user's or group's membership items.
func (s *Store) queryPartition(ctx context.Context, pk string, emit func([]notify.Connection) bool) error {
	in := &dynamodb.QueryInput{
		TableName: &s.table,
		// Strongly consistent: a connection saved just before a publish is
		// reached. Membership items are tiny, so this costs little. (The
		// broadcast's GSI cannot be read consistently.)
		ConsistentRead:         aws.Bool(true),
		KeyConditionExpression: aws.String("#pk = :pk"),
		FilterExpression:       aws.String(filterUnexpired),
		ProjectionExpression:   aws.String("#sk, #u, #c, #e, #t"),
		ExpressionAttributeNames: map[string]string{
			"#pk": AttrPK, "#sk": AttrSK, "#u": AttrUserID, "#c": AttrConnectedAt, "#e": AttrExpiresAt,
			"#t": AttrTokenExpiresAt,
		},
		ExpressionAttributeValues: map[string]types.AttributeValue{
			":pk":  &types.AttributeValueMemberS{Value: pk},
			":now": n(s.now().Unix()),
		},
	}
	if s.pageLimit > 0 {
		in.Limit = aws.Int32(s.pageLimit)
	}
	for {
		out, err := s.db.Query(ctx, in)
		if err != nil {
			return err
		}
		if len(out.Items) > 0 {
			page := make([]notify.Connection, 0, len(out.Items))
			for _, it := range out.Items {
				page = append(page, connectionFromItem(it, str(it, AttrSK)))
			}
			if !emit(page) {
				return nil
			}
		}
		if len(out.LastEvaluatedKey) == 0 {
			return nil
		}
		in.ExclusiveStartKey = out.LastEvaluatedKey
	}
}

// scanSegment pages through one segment of the ByConnection index.
func (s *Store) scanSegment(ctx context.Context, segment int32, emit func([]notify.Connection) bool) error {
	in := &dynamodb.ScanInput{
		TableName:            &s.table,
		IndexName:            aws.String(IndexByConnection),
		Segment:              aws.Int32(segment),
		TotalSegments:        aws.Int32(scanSegments),
		FilterExpression:     aws.String(filterUnexpired),
		ProjectionExpression: aws.String("#id, #u, #c, #e, #t"),
		ExpressionAttributeNames: map[string]string{
			"#id": AttrConnectionID, "#u": AttrUserID, "#c": AttrConnectedAt, "#e": AttrExpiresAt,
			"#t": AttrTokenExpiresAt,
		},
		ExpressionAttributeValues: map[string]types.AttributeValue{
			":now": n(s.now().Unix()),
		},
	}
	if s.pageLimit > 0 {
		in.Limit = aws.Int32(s.pageLimit)
	}
	for {
		out, err := s.db.Scan(ctx, in)
		if err != nil {
			return err
		}
		if len(out.Items) > 0 {
			page := make([]notify.Connection, 0, len(out.Items))
			for _, it := range out.Items {
				page = append(page, connectionFromItem(it, str(it, AttrConnectionID)))
			}
			if !emit(page) {
				return nil
			}
		}
		if len(out.LastEvaluatedKey) == 0 {
			return nil
		}
		in.ExclusiveStartKey = out.LastEvaluatedKey
	}
}

// expired reports whether item's expiresAt has passed.
func (s *Store) expired(item map[string]types.AttributeValue) bool {
	exp, ok := num(item, AttrExpiresAt)
	return ok && exp <= s.now().Unix()
}

// connectionFromItem builds a Connection from a connection or membership
// item; id is its connection id.
func connectionFromItem(item map[string]types.AttributeValue, id string) notify.Connection {
	c := notify.Connection{ID: id, UserID: str(item, AttrUserID), Groups: groupsOf(item)}
	if ms, ok := num(item, AttrConnectedAt); ok {
		c.ConnectedAt = time.UnixMilli(ms)
	}
	if sec, ok := num(item, AttrExpiresAt); ok {
		c.ExpiresAt = time.Unix(sec, 0)
	}
	if sec, ok := num(item, AttrTokenExpiresAt); ok {
		c.TokenExpiresAt = time.Unix(sec, 0)
	}
	return c
}

// RevokeUser records userID's revocation at the whole second of at, with an
// UpdateItem that only moves revokedAt forward, to expire (TTL) at expiresAt.
func (s *Store) RevokeUser(ctx context.Context, userID string, at, expiresAt time.Time) error {
	if userID == "" {
		return notify.Errorf(notify.EINVALID, "user id is required")
	}
	_, err := s.db.UpdateItem(ctx, &dynamodb.UpdateItemInput{
		TableName:        &s.table,
		Key:              revokedKey(userID),
		UpdateExpression: aws.String("SET #r = :r, #e = :e"),
		// An unexpired later revocation stays; an expired one (TTL not yet
		// run) is as good as none.
		ConditionExpression:      aws.String("attribute_not_exists(#r) OR #r < :r OR #e <= :now"),
		ExpressionAttributeNames: map[string]string{"#r": AttrRevokedAt, "#e": AttrExpiresAt},
		ExpressionAttributeValues: map[string]types.AttributeValue{
			":r": n(at.Unix()), ":e": n(expiresAt.Unix()), ":now": n(s.now().Unix()),
		},
	})
	if err != nil {
		var ccf *types.ConditionalCheckFailedException
		if errors.As(err, &ccf) {
			return nil
		}
		return internal(err, "recording revocation")
	}
	return nil
}

// RevokedAt reads userID's revocation item (consistently).
func (s *Store) RevokedAt(ctx context.Context, userID string) (time.Time, error) {
	if userID == "" {
		return time.Time{}, nil
	}
	out, err := s.db.GetItem(ctx, &dynamodb.GetItemInput{
		TableName:      &s.table,
		Key:            revokedKey(userID),
		ConsistentRead: aws.Bool(true),
	})
	if err != nil {
		return time.Time{}, internal(err, "reading revocation")
	}
	sec, ok := num(out.Item, AttrRevokedAt)
	if !ok || s.expired(out.Item) {
		return time.Time{}, nil
	}
	return time.Unix(sec, 0), nil
}

func revokedKey(userID string) map[string]types.AttributeValue {
	return map[string]types.AttributeValue{
		AttrPK: &types.AttributeValueMemberS{Value: "revoked#" + userID},
		AttrSK: &types.AttributeValueMemberS{Value: revokedSK},
	}
}

func connPK(id string) string     { return "conn#" + id }
func userPK(user string) string   { return "user#" + user }
func groupPK(group string) string { return "group#" + group }

// connKey is the key of connection id's connection item.
func connKey(id string) map[string]types.AttributeValue {
	return map[string]types.AttributeValue{
		AttrPK: &types.AttributeValueMemberS{Value: connPK(id)},
		AttrSK: &types.AttributeValueMemberS{Value: connSK},
	}
}

// n returns a number attribute.
func n(v int64) *types.AttributeValueMemberN {
	return &types.AttributeValueMemberN{Value: strconv.FormatInt(v, 10)}
}

// str returns a string attribute, or "".
func str(item map[string]types.AttributeValue, name string) string {
	if v, ok := item[name].(*types.AttributeValueMemberS); ok {
		return v.Value
	}
	return ""
}

// num returns an integer number attribute.
func num(item map[string]types.AttributeValue, name string) (int64, bool) {
	v, ok := item[name].(*types.AttributeValueMemberN)
	if !ok {
		return 0, false
	}
	i, err := strconv.ParseInt(v.Value, 10, 64)
	if err != nil {
		// Numbers written by someone else might carry a fraction.
		f, ferr := strconv.ParseFloat(v.Value, 64)
		if ferr != nil {
			return 0, false
		}
		i = int64(f)
	}
	return i, true
}

// groupsOf returns the groups list attribute, or nil.
func groupsOf(item map[string]types.AttributeValue) []string {
	l, ok := item[AttrGroups].(*types.AttributeValueMemberL)
	if !ok || len(l.Value) == 0 {
		return nil
	}
	groups := make([]string, 0, len(l.Value))
	for _, v := range l.Value {
		if s, ok := v.(*types.AttributeValueMemberS); ok {
			groups = append(groups, s.Value)
		}
	}
	return groups
}

// dedupe returns names without repeats, keeping the first occurrence's order.
// BatchWriteItem refuses two requests for the same key in one call.
func dedupe(names []string) []string {
	if len(names) < 2 {
		return names
	}
	seen := make(map[string]struct{}, len(names))
	out := make([]string, 0, len(names))
	for _, s := range names {
		if _, dup := seen[s]; !dup {
			seen[s] = struct{}{}
			out = append(out, s)
		}
	}
	return out
}

// internal wraps a DynamoDB error as an EINTERNAL notify error.
func internal(err error, message string) error {
	var e *notify.Error
	if errors.As(err, &e) {
		return err
	}
	return notify.Wrap(notify.EINTERNAL, err, message)
}

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
//	pk=conn#C       sk=conn  connectionId, userId, groups (L of S, omitted when none), connectedAt, expiresAt
//	pk=user#U       sk=C     userId, connectedAt, expiresAt
//	pk=group#G#SS   sk=C     userId, connectedAt, expiresAt   (one per group; SS is C's shard)
//	pk=revoked#U    sk=revoked  revokedAt, expiresAt          (a disconnect request's revocation)
//
// Connection and membership items also carry tokenExpiresAt (epoch seconds)
// when the token had an exp, so a fan-out can close expired connections.
// connectedAt is in epoch milliseconds, expiresAt in epoch seconds. Only the
// connection item has connectionId, so ByConnection is a sparse index of the
// connections: a broadcast scans it. Fan-out to users and groups queries
// their partitions. The user# and group# prefixes keep user ids and group
// names apart: group "user:43" is not user 43.
//
// # Group shards
//
// DynamoDB takes at most 1,000 write units a second on one partition key, and
// every connect and disconnect of a group member writes one of the group's
// items (one write unit: membership items are far below 1 KB). When API Gateway drops every socket at its 2-hour limit, a whole
// group reconnects at once: a $disconnect delete and a $connect put per
// member. A group's items are therefore spread over 16 write shards
// (groupShards), pk group#G#00 to group#G#15. The shard SS of connection C is
// FNV-1a (32-bit) of C, its upper 16 bits XORed into the lower ones (alone,
// FNV-1a's low bits only depend on the low bits of each byte), modulo 16,
// written as two decimal digits. It depends on C alone, so deleting a
// connection finds its group items from the connection item's groups without
// a scan, and a connection's put and delete land on the same key.
//
// The arithmetic: a storm of 5,000 connects and 5,000 disconnects a second
// into one group is 10,000 writes, 625 a second per shard on average (8
// shards would average 1,250, over the limit). A connection's put and delete
// land on one shard, so with random connection ids a shard's writes are twice
// a binomial count (5,000 draws, p = 1/16): standard deviation 34, the
// busiest of the 16 shards near 690 (99th percentile 740), and any shard past
// 800 with odds of about 6 in a million. TestReconnectStorm counts the writes
// of 5,000 connections per key.
//
// The suffix has a fixed width, so a pk maps back to exactly one group and
// shard: the shard is the last two characters, the group what lies between
// "group#" and the '#' before them, even for a group name holding '#' or
// ending in "#" and two digits (notify.ValidName allows no '#' anyway).
// Reading a group queries all its shards (16 Queries, queryConcurrency at
// once; an empty shard still costs a read unit), so readers must know the
// shard count, and deleters the hash: changing either orphans the stored
// group items (until their expiresAt).
//
// Users' partitions are not sharded: a user holds at most
// MAX_CONNECTIONS_PER_USER (default 20) sockets, so a storm writes a few
// dozen items under user#U. Connection items each have a key of their own,
// and the broadcast reads the ByConnection index, whose partition key is the
// connection id: both are spread already.
//
// Expired items can linger (TTL deletes them up to two days late, and
// dynalite not at all), so every read filters on expiresAt.
package dynamo

import (
	"cmp"
	"context"
	"errors"
	"slices"
	"strconv"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/feature/dynamodb/attributevalue"
	ex "github.com/aws/aws-sdk-go-v2/feature/dynamodb/expression"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
	"golang.org/x/sync/errgroup"

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

const (
	// queryConcurrency bounds the Queries or Scan segments run at once:
	// one group's shards in one round (internal/app sizes the DynamoDB
	// client's idle connections to match).
	queryConcurrency = groupShards
	// scanSegments is the TotalSegments of a broadcast's parallel Scan.
	scanSegments = 4
	// groupShards is how many partition keys a group's membership items
	// are spread over (see "Group shards" in the package documentation).
	// Readers query all of them: changing it orphans stored items.
	groupShards = 16
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
	// w writes the membership items.
	w *batchWriter
	// now returns the current time; tests may replace it.
	now func() time.Time
	// pageLimit, when positive, is the Limit of each Query and Scan page
	// of ForEachTarget (tests use it to force pagination).
	pageLimit int32
}

var _ notify.ConnectionStore = (*Store)(nil)

// New returns a Store that keeps connections in the table connectionsTable
// through client.
func New(client *dynamodb.Client, connectionsTable string) *Store {
	return newStore(client, connectionsTable)
}

func newStore(db api, table string) *Store {
	return &Store{db: db, table: table, w: newBatchWriter(db, table), now: time.Now}
}

// key is an item's primary key.
type key struct {
	PK string `dynamodbav:"pk"`
	SK string `dynamodbav:"sk"`
}

func connKey(id string) key        { return key{"conn#" + id, connSK} }
func revokedKey(userID string) key { return key{"revoked#" + userID, revokedSK} }
func userPK(user string) string    { return "user#" + user }

// Shard suffixes are two decimal digits: groupShards must not exceed 100.
const _ uint = 100 - groupShards

// groupPK is the partition key of shard of group: "group#" + group + "#" and
// the shard in two digits.
func groupPK(group string, shard int) string {
	if shard < 10 {
		return "group#" + group + "#0" + strconv.Itoa(shard)
	}
	return "group#" + group + "#" + strconv.Itoa(shard)
}

// groupShard returns the write shard of connection id's group items:
// FNV-1a (32-bit, as hash/fnv's New32a) of id, its upper 16 bits XORed into
// the lower ones (FNV-1a's low bits only depend on the low bits of each
// byte), modulo groupShards. It is part of the schema: changing it orphans
// stored items.
func groupShard(id string) int {
	h := uint32(2166136261)
	for i := 0; i < len(id); i++ {
		h ^= uint32(id[i])
		h *= 16777619
	}
	return int((h ^ h>>16) % groupShards)
}

// item is a connection item (connKey) or a membership item (pk user#U or
// group#G#SS, sk the connection id), as the package documentation lays out.
type item struct {
	key
	ConnectionID   string   `dynamodbav:"connectionId,omitempty"` // connection items only
	UserID         string   `dynamodbav:"userId"`
	Groups         []string `dynamodbav:"groups,omitempty"` // connection items only
	ConnectedAt    int64    `dynamodbav:"connectedAt"`      // epoch milliseconds
	ExpiresAt      int64    `dynamodbav:"expiresAt"`        // epoch seconds
	TokenExpiresAt int64    `dynamodbav:"tokenExpiresAt,omitempty"`
}

// newItem returns c's membership item under k; with ConnectionID and Groups
// set, it is c's connection item.
func newItem(k key, c notify.Connection) item {
	it := item{key: k, UserID: c.UserID, ConnectedAt: c.ConnectedAt.UnixMilli(), ExpiresAt: c.ExpiresAt.Unix()}
	if !c.TokenExpiresAt.IsZero() {
		it.TokenExpiresAt = c.TokenExpiresAt.Unix()
	}
	return it
}

// connection returns the connection of a connection item, or of a
// membership item (whose sk is the connection id).
func (it item) connection() notify.Connection {
	c := notify.Connection{
		ID: cmp.Or(it.ConnectionID, it.SK), UserID: it.UserID, Groups: it.Groups,
		ConnectedAt: time.UnixMilli(it.ConnectedAt), ExpiresAt: time.Unix(it.ExpiresAt, 0),
	}
	if it.TokenExpiresAt != 0 {
		c.TokenExpiresAt = time.Unix(it.TokenExpiresAt, 0)
	}
	return c
}

// membershipKeys returns the keys of connection id's membership items: its
// user's, and its shard of each group.
func membershipKeys(id, userID string, groups []string) []key {
	keys := make([]key, 0, 1+len(groups))
	if userID != "" {
		keys = append(keys, key{userPK(userID), id})
	}
	shard := groupShard(id)
	for _, g := range groups {
		keys = append(keys, key{groupPK(g, shard), id})
	}
	return keys
}

// SaveConnection stores c, its user membership and its group memberships
// (each group once). Memberships are written first and the connection item
// last, so a connection that can be found is complete. On failure it
// deletes, best effort, what it wrote and returns an EINTERNAL error.
func (s *Store) SaveConnection(ctx context.Context, c notify.Connection) error {
	if c.ID == "" || c.UserID == "" || c.ConnectedAt.IsZero() || c.ExpiresAt.IsZero() {
		return notify.Errorf(notify.EINVALID, "connection id, user id, connection time and expiry are required")
	}
	// BatchWriteItem refuses two requests for one key.
	c.Groups = slices.Compact(slices.Sorted(slices.Values(c.Groups)))
	var writes []types.WriteRequest
	for _, k := range membershipKeys(c.ID, c.UserID, c.Groups) {
		writes = append(writes, types.WriteRequest{PutRequest: &types.PutRequest{Item: marshal(newItem(k, c))}})
	}
	conn := newItem(connKey(c.ID), c)
	conn.ConnectionID, conn.Groups = c.ID, c.Groups

	err := s.w.write(ctx, writes)
	if err == nil {
		_, err = s.db.PutItem(ctx, &dynamodb.PutItemInput{TableName: &s.table, Item: marshal(conn)})
	}
	if err != nil {
		s.cleanup(ctx, c.ID, c.UserID, c.Groups)
		return internal(err, "saving connection")
	}
	return nil
}

// cleanup deletes, best effort, everything SaveConnection may have written.
func (s *Store) cleanup(ctx context.Context, id, userID string, groups []string) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), cleanupTimeout)
	defer cancel()
	_ = s.deleteMemberships(ctx, id, userID, groups)
	_, _ = s.db.DeleteItem(ctx, &dynamodb.DeleteItemInput{TableName: &s.table, Key: marshal(connKey(id))})
}

// GetConnection returns the connection with this id, or an ENOTFOUND error
// when it is not stored or has expired.
func (s *Store) GetConnection(ctx context.Context, id string) (notify.Connection, error) {
	var it item
	found, err := getItem(ctx, s.db, s.table, connKey(id), &it)
	if err != nil {
		return notify.Connection{}, internal(err, "reading connection")
	}
	if !found || it.ExpiresAt <= s.now().Unix() {
		return notify.Connection{}, notify.Errorf(notify.ENOTFOUND, "connection %q not found", id)
	}
	return it.connection(), nil
}

// getItem reads the item under k with a consistent read into v, and
// reports whether there is one.
func getItem(ctx context.Context, db api, table string, k key, v any) (bool, error) {
	out, err := db.GetItem(ctx, &dynamodb.GetItemInput{TableName: &table, Key: marshal(k), ConsistentRead: aws.Bool(true)})
	if err != nil || len(out.Item) == 0 {
		return false, err
	}
	return true, attributevalue.UnmarshalMap(out.Item, v)
}

// DeleteConnection removes the connection and its memberships. Memberships
// go first, so that a failure leaves the connection item to find them again.
// An unknown id is not an error.
func (s *Store) DeleteConnection(ctx context.Context, id string) error {
	var it item
	found, err := getItem(ctx, s.db, s.table, connKey(id), &it)
	if err != nil {
		return internal(err, "reading connection")
	}
	if !found {
		return nil
	}
	if err := s.deleteMemberships(ctx, id, it.UserID, it.Groups); err != nil {
		return internal(err, "deleting connection memberships")
	}
	if _, err := s.db.DeleteItem(ctx, &dynamodb.DeleteItemInput{TableName: &s.table, Key: marshal(connKey(id))}); err != nil {
		return internal(err, "deleting connection")
	}
	return nil
}

// DeleteGoneConnection removes the connection only if it connected before
// connectedBefore (compared in milliseconds), with a conditional DeleteItem,
// then removes its memberships. It reports whether it removed the connection;
// an unknown id gives false and no error.
func (s *Store) DeleteGoneConnection(ctx context.Context, id string, connectedBefore time.Time) (bool, error) {
	expr := must(ex.NewBuilder().
		WithCondition(ex.Name(AttrConnectedAt).LessThan(ex.Value(connectedBefore.UnixMilli()))).Build())
	out, err := s.db.DeleteItem(ctx, &dynamodb.DeleteItemInput{
		TableName: &s.table, Key: marshal(connKey(id)), ReturnValues: types.ReturnValueAllOld,
		ConditionExpression: expr.Condition(), ExpressionAttributeNames: expr.Names(), ExpressionAttributeValues: expr.Values(),
	})
	if isConditionFailed(err) {
		return false, nil
	}
	var it item
	if err == nil {
		err = attributevalue.UnmarshalMap(out.Attributes, &it)
	}
	if err != nil {
		return false, internal(err, "deleting gone connection")
	}
	if err := s.deleteMemberships(ctx, id, it.UserID, it.Groups); err != nil {
		return true, internal(err, "deleting gone connection's memberships")
	}
	return true, nil
}

// deleteMemberships deletes the user and group membership items of
// connection id.
func (s *Store) deleteMemberships(ctx context.Context, id, userID string, groups []string) error {
	var writes []types.WriteRequest
	for _, k := range membershipKeys(id, userID, groups) {
		writes = append(writes, types.WriteRequest{DeleteRequest: &types.DeleteRequest{Key: marshal(k)}})
	}
	return s.w.write(ctx, writes)
}

// ForEachTarget calls fn with pages of the unexpired connections t reaches.
// A user is read with a Query of its partition, a group with a Query of each
// of its groupShards partitions (each key once); the Queries run
// concurrently (at most queryConcurrency at once). A broadcast is a parallel
// Scan of the ByConnection index, and makes the user and group queries
// unnecessary. Pages go to fn as they arrive, from whichever read, so a
// fan-out starts before the last shard answers; fn is called from the
// calling goroutine only. An error from fn or from a read, or the end of
// ctx, stops every read before ForEachTarget returns.
func (s *Store) ForEachTarget(ctx context.Context, t notify.Target, fn func(page []notify.Connection) error) error {
	reads := s.reads(t)
	if len(reads) == 0 {
		return nil
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(queryConcurrency)
	pages := make(chan []notify.Connection)
	var readErr error
	go func() { // starts the reads (g.Go waits for a free slot), then ends pages
		defer close(pages)
		for _, read := range reads {
			g.Go(func() error {
				for more := true; more; {
					var items []item
					raw, m, err := read(gctx)
					if err == nil {
						err = attributevalue.UnmarshalListOfMaps(raw, &items)
					}
					if err != nil {
						return err
					}
					if more = m; len(items) == 0 {
						continue
					}
					page := make([]notify.Connection, len(items))
					for i, it := range items {
						page[i] = it.connection()
					}
					select {
					case pages <- page:
					case <-gctx.Done():
						return gctx.Err()
					}
				}
				return nil
			})
		}
		readErr = g.Wait()
	}()

	var err error // fn's, or the end of ctx while pages were coming
	for page := range pages {
		switch {
		case err != nil: // draining while the reads stop
		case ctx.Err() != nil:
			err = internal(ctx.Err(), "reading connections")
		default:
			if err = fn(page); err != nil {
				cancel()
			}
		}
	}
	if err == nil && readErr != nil {
		err = internal(readErr, "reading connections")
	}
	return err
}

// read returns the next page of items of a Query or Scan, and whether more
// pages follow.
type read func(context.Context) (items []map[string]types.AttributeValue, more bool, err error)

// pages makes a read of a Query or Scan paginator's next page.
func pages[O any, P interface {
	HasMorePages() bool
	NextPage(context.Context, ...func(*dynamodb.Options)) (O, error)
}](p P, items func(O) []map[string]types.AttributeValue) read {
	return func(ctx context.Context) ([]map[string]types.AttributeValue, bool, error) {
		out, err := p.NextPage(ctx)
		if err != nil {
			return nil, false, err
		}
		return items(out), p.HasMorePages(), nil
	}
}

// reads returns the reads of ForEachTarget: a Query of each user's
// partition and of each shard of each group, or the Scan segments of a
// broadcast.
func (s *Store) reads(t notify.Target) []read {
	unexpired := ex.NewBuilder().WithFilter(ex.Name(AttrExpiresAt).GreaterThan(ex.Value(s.now().Unix())))
	fields := func(id string) ex.ProjectionBuilder {
		return ex.NamesList(ex.Name(id), ex.Name(AttrUserID), ex.Name(AttrConnectedAt), ex.Name(AttrExpiresAt), ex.Name(AttrTokenExpiresAt))
	}
	var limit *int32
	if s.pageLimit > 0 {
		limit = aws.Int32(s.pageLimit)
	}
	var reads []read
	if t.Broadcast {
		expr := must(unexpired.WithProjection(fields(AttrConnectionID)).Build())
		for seg := range int32(scanSegments) {
			p := dynamodb.NewScanPaginator(s.db, &dynamodb.ScanInput{
				TableName: &s.table, IndexName: aws.String(IndexByConnection),
				Segment: aws.Int32(seg), TotalSegments: aws.Int32(scanSegments), Limit: limit,
				FilterExpression: expr.Filter(), ProjectionExpression: expr.Projection(),
				ExpressionAttributeNames: expr.Names(), ExpressionAttributeValues: expr.Values(),
			})
			reads = append(reads, pages(p, func(o *dynamodb.ScanOutput) []map[string]types.AttributeValue { return o.Items }))
		}
		return reads
	}
	pks := make([]string, 0, len(t.Users)+groupShards*len(t.Groups))
	for _, u := range t.Users {
		pks = append(pks, userPK(u))
	}
	for _, g := range t.Groups {
		for shard := range groupShards {
			pks = append(pks, groupPK(g, shard))
		}
	}
	slices.Sort(pks)
	for _, pk := range slices.Compact(pks) {
		expr := must(unexpired.WithKeyCondition(ex.Key(AttrPK).Equal(ex.Value(pk))).WithProjection(fields(AttrSK)).Build())
		p := dynamodb.NewQueryPaginator(s.db, &dynamodb.QueryInput{
			// Strongly consistent: a connection saved just before a publish
			// is reached. Membership items are tiny, so this costs little.
			// (The broadcast's GSI cannot be read consistently.)
			TableName: &s.table, ConsistentRead: aws.Bool(true), Limit: limit,
			KeyConditionExpression: expr.KeyCondition(), FilterExpression: expr.Filter(),
			ProjectionExpression: expr.Projection(), ExpressionAttributeNames: expr.Names(),
			ExpressionAttributeValues: expr.Values(),
		})
		reads = append(reads, pages(p, func(o *dynamodb.QueryOutput) []map[string]types.AttributeValue { return o.Items }))
	}
	return reads
}

// RevokeUser records userID's revocation at the whole second of at, with an
// UpdateItem that only moves revokedAt forward, to expire (TTL) at expiresAt.
func (s *Store) RevokeUser(ctx context.Context, userID string, at, expiresAt time.Time) error {
	if userID == "" {
		return notify.Errorf(notify.EINVALID, "user id is required")
	}
	r, e := ex.Name(AttrRevokedAt), ex.Name(AttrExpiresAt)
	expr := must(ex.NewBuilder().
		WithUpdate(ex.Set(r, ex.Value(at.Unix())).Set(e, ex.Value(expiresAt.Unix()))).
		// An unexpired later revocation stays; an expired one (TTL not yet
		// run) is as good as none.
		WithCondition(ex.Or(ex.AttributeNotExists(r), r.LessThan(ex.Value(at.Unix())), e.LessThanEqual(ex.Value(s.now().Unix())))).
		Build())
	_, err := s.db.UpdateItem(ctx, &dynamodb.UpdateItemInput{
		TableName: &s.table, Key: marshal(revokedKey(userID)),
		UpdateExpression: expr.Update(), ConditionExpression: expr.Condition(),
		ExpressionAttributeNames: expr.Names(), ExpressionAttributeValues: expr.Values(),
	})
	if err != nil && !isConditionFailed(err) {
		return internal(err, "recording revocation")
	}
	return nil
}

// RevokedAt reads userID's revocation item (consistently).
func (s *Store) RevokedAt(ctx context.Context, userID string) (time.Time, error) {
	var r struct {
		RevokedAt int64 `dynamodbav:"revokedAt"`
		ExpiresAt int64 `dynamodbav:"expiresAt"`
	}
	found, err := getItem(ctx, s.db, s.table, revokedKey(userID), &r)
	if err != nil {
		return time.Time{}, internal(err, "reading revocation")
	}
	if !found || r.ExpiresAt <= s.now().Unix() {
		return time.Time{}, nil
	}
	return time.Unix(r.RevokedAt, 0), nil
}

// marshal returns v as an item.
func marshal(v any) map[string]types.AttributeValue { return must(attributevalue.MarshalMap(v)) }

// must returns v, or panics with err: the items this file marshals and the
// expressions it builds have fixed shapes (strings, numbers, string lists),
// so an error is a bug here.
func must[T any](v T, err error) T {
	if err != nil {
		panic(err)
	}
	return v
}

// internal wraps a DynamoDB error as an EINTERNAL notify error.
func internal(err error, message string) error {
	var e *notify.Error
	if errors.As(err, &e) {
		return err
	}
	return notify.Wrap(notify.EINTERNAL, err, message)
}

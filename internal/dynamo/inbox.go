package dynamo

// The inbox: notify.InboxStore on the notifications table.
//
// # Schema
//
// The notifications table has the key pk (S, HASH) and sk (S, RANGE), no
// index, and the TTL attribute expiresAt (epoch seconds). Items:
//
//	pk=s#{stream}   sk={id}        payload (S, the notification JSON), expiresAt
//	pk=n#{id}       sk=n           streams (L of S), expiresAt
//	pk=idem#{key}   sk=idem        holder (the claim token), expiresAt (a short lease until committed),
//	                               then id and committed (BOOL) once the notification is stored
//	pk=r#{userId}   sk=all         upTo (the "read everything up to" watermark; never expires)
//	pk=r#{userId}   sk=id#{id}     expiresAt (one individual read mark)
//
// The r# items of a user answer both CountUnread and ReadState: a sync page's
// read flags are one BatchGetItem of the watermark and the marks of exactly
// the page's ids.
//
// Streams are notify.UserStream, notify.GroupStream and notify.BroadcastStream
// names ("user:42", "group:team:plant-3", "broadcast"). Ids are ULIDs, so the
// order of sk in a stream is the order of ids: pages of a stream are key
// ranges read with Query, never Scans. The n# item lets VisibleIDs check many
// ids with BatchGetItem.
//
// Every read is strongly consistent (a notification or read mark written a
// moment ago is seen) and filters on expiresAt, since TTL deletes items up to
// two days late (dynalite never).

import (
	"context"
	"errors"
	"slices"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/feature/dynamodb/attributevalue"
	ex "github.com/aws/aws-sdk-go-v2/feature/dynamodb/expression"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
	"golang.org/x/sync/errgroup"

	"github.com/workorders/notify/internal/notify"
)

// Names of the notifications table's attributes (besides pk, sk, expiresAt).
const (
	AttrPayload = "payload"
	AttrStreams = "streams"
	AttrID      = "id"
	// AttrHolder is the claim token of the call holding an idempotency key.
	AttrHolder = "holder"
	AttrUpTo   = "upTo"
	// AttrCommitted marks an idempotency claim whose notification is stored.
	AttrCommitted = "committed"
)

// Sort keys and key prefixes of the notifications table.
const (
	streamPrefix   = "s#"
	notifPrefix    = "n#"
	idemPrefix     = "idem#"
	readPrefix     = "r#"
	readMarkPrefix = "id#"
	notifSK        = "n"
	idemSK         = "idem"
	watermarkSK    = "all"
)

const (
	// appendConcurrency bounds the BatchWriteItem calls of one write in
	// flight at once.
	appendConcurrency = 4
	// batchGetSize is BatchGetItem's limit of keys per call.
	batchGetSize = 100
	// maxClaimAttempts bounds the claim/read rounds of an idempotency key
	// whose holder keeps disappearing (released or expired) under us.
	maxClaimAttempts = 5
	// appendCleanupTimeout bounds the cleanup after a failed append: a
	// publish answers within its store timeout plus this (docs/PROTOCOL.md §4's
	// 15 s, with the idempotency claim before it).
	appendCleanupTimeout = 2 * time.Second
	// maxQueryLimit caps the Limit of one Query page.
	maxQueryLimit = 1000
	// readStateConcurrency bounds the BatchGetItem calls of one ReadState
	// in flight at once: a sync page (100 ids and the watermark) needs two.
	readStateConcurrency = 4
)

// inboxAPI is the part of *dynamodb.Client the inbox uses; tests substitute it.
type inboxAPI interface {
	api
	BatchGetItem(context.Context, *dynamodb.BatchGetItemInput, ...func(*dynamodb.Options)) (*dynamodb.BatchGetItemOutput, error)
}

// Inbox is a notify.InboxStore on a DynamoDB table with the schema described
// at the top of this file. It is safe for concurrent use.
type Inbox struct {
	db    inboxAPI
	table string
	// w writes batches (chunks of 25, UnprocessedItems retried with
	// w.backoff); its retries serve BatchGetItem's UnprocessedKeys too.
	w *batchWriter

	// now returns the current time; tests may replace it.
	now func() time.Time
	// pageLimit, when positive, caps the Limit of each Query page (tests
	// use it to force pagination).
	pageLimit int32
}

var _ notify.InboxStore = (*Inbox)(nil)

// NewInbox returns an Inbox that keeps notifications, read state and
// idempotency keys in the table notificationsTable through client.
func NewInbox(client *dynamodb.Client, notificationsTable string) *Inbox {
	return newInbox(client, notificationsTable)
}

func newInbox(db inboxAPI, table string) *Inbox {
	return &Inbox{db: db, table: table, w: newBatchWriter(db, table), now: time.Now}
}

func streamKey(stream, id string) key   { return key{streamPrefix + stream, id} }
func notifKey(id string) key            { return key{notifPrefix + id, notifSK} }
func idemKey(k string) key              { return key{idemPrefix + k, idemSK} }
func watermarkKey(userID string) key    { return key{readPrefix + userID, watermarkSK} }
func readMarkKey(userID, id string) key { return key{readPrefix + userID, readMarkPrefix + id} }

// streamItem is a notification in one stream (streamKey).
type streamItem struct {
	key
	Payload   string `dynamodbav:"payload"` // the notification JSON
	ExpiresAt int64  `dynamodbav:"expiresAt"`
}

// notifItem lists the streams of a notification (notifKey).
type notifItem struct {
	key
	Streams   []string `dynamodbav:"streams"`
	ExpiresAt int64    `dynamodbav:"expiresAt"`
}

// idemItem is the claim of an idempotency key (idemKey); ID and Committed
// are set when it is committed.
type idemItem struct {
	key
	Holder    string `dynamodbav:"holder"`
	ID        string `dynamodbav:"id,omitempty"`
	Committed bool   `dynamodbav:"committed,omitempty"`
	ExpiresAt int64  `dynamodbav:"expiresAt"`
}

// readItem is a user's watermark (watermarkKey, UpTo) or one of its read
// marks (readMarkKey, ExpiresAt).
type readItem struct {
	key
	UpTo      string `dynamodbav:"upTo,omitempty"`
	ExpiresAt int64  `dynamodbav:"expiresAt"`
}

func isConditionFailed(err error) bool {
	var ccf *types.ConditionalCheckFailedException
	return errors.As(err, &ccf)
}

// expired reports whether expiresAt (epoch seconds) has passed; an item
// without one (0) never expires.
func (i *Inbox) expired(expiresAt int64) bool {
	return expiresAt != 0 && expiresAt <= i.now().Unix()
}

// unexpired returns a builder with a filter keeping unexpired items.
func (i *Inbox) unexpired() ex.Builder {
	return ex.NewBuilder().WithFilter(ex.Name(AttrExpiresAt).GreaterThan(ex.Value(i.now().Unix())))
}

// ClaimIdempotencyKey claims key for holder with a conditional PutItem that
// succeeds only when no unexpired claim exists. When another claim holds the
// key, it reads that claim (consistently) and returns it.
func (i *Inbox) ClaimIdempotencyKey(ctx context.Context, k, holder string, expiresAt time.Time) (notify.IdempotencyClaim, error) {
	if k == "" || holder == "" {
		return notify.IdempotencyClaim{}, notify.Errorf(notify.EINVALID, "idempotency key and holder are required")
	}
	for attempt := 1; ; attempt++ {
		// An expired claim (TTL not yet run) is as good as none.
		expr := must(ex.NewBuilder().WithCondition(ex.AttributeNotExists(ex.Name(AttrPK)).
			Or(ex.Name(AttrExpiresAt).LessThanEqual(ex.Value(i.now().Unix())))).Build())
		_, err := i.db.PutItem(ctx, &dynamodb.PutItemInput{
			TableName: &i.table, Item: marshal(idemItem{key: idemKey(k), Holder: holder, ExpiresAt: expiresAt.Unix()}),
			ConditionExpression: expr.Condition(), ExpressionAttributeNames: expr.Names(), ExpressionAttributeValues: expr.Values(),
		})
		if err == nil {
			return notify.IdempotencyClaim{Holder: holder, Claimed: true, ExpiresAt: expiresAt}, nil
		}
		if !isConditionFailed(err) {
			return notify.IdempotencyClaim{}, internal(err, "claiming idempotency key")
		}
		var c idemItem
		found, err := getItem(ctx, i.db, i.table, idemKey(k), &c)
		if err != nil {
			return notify.IdempotencyClaim{}, internal(err, "reading idempotency key")
		}
		if found && !i.expired(c.ExpiresAt) {
			return notify.IdempotencyClaim{Holder: c.Holder, ID: c.ID, Committed: c.Committed, ExpiresAt: time.Unix(c.ExpiresAt, 0)}, nil
		}
		// The holder was released or expired between our two calls.
		if attempt >= maxClaimAttempts {
			return notify.IdempotencyClaim{}, notify.Errorf(notify.EINTERNAL, "idempotency key %q: claim kept changing", k)
		}
	}
}

// CommitIdempotencyKey sets id, committed and the new expiry on the claim of
// key with an UpdateItem conditional on holder still holding it; a failed
// condition is notify.ErrClaimLost.
func (i *Inbox) CommitIdempotencyKey(ctx context.Context, k, holder, id string, expiresAt time.Time) error {
	expr := must(ex.NewBuilder().
		WithUpdate(ex.Set(ex.Name(AttrCommitted), ex.Value(true)).
			Set(ex.Name(AttrExpiresAt), ex.Value(expiresAt.Unix())).Set(ex.Name(AttrID), ex.Value(id))).
		WithCondition(ex.Name(AttrHolder).Equal(ex.Value(holder))).Build())
	_, err := i.db.UpdateItem(ctx, &dynamodb.UpdateItemInput{
		TableName: &i.table, Key: marshal(idemKey(k)),
		UpdateExpression: expr.Update(), ConditionExpression: expr.Condition(),
		ExpressionAttributeNames: expr.Names(), ExpressionAttributeValues: expr.Values(),
	})
	switch {
	case err == nil:
		return nil
	case isConditionFailed(err):
		return notify.ErrClaimLost
	default:
		return internal(err, "committing idempotency key")
	}
}

// ReleaseIdempotencyKey deletes the claim of key if holder still holds it
// and it is not committed.
func (i *Inbox) ReleaseIdempotencyKey(ctx context.Context, k, holder string) error {
	if k == "" {
		return nil
	}
	expr := must(ex.NewBuilder().WithCondition(ex.Name(AttrHolder).Equal(ex.Value(holder)).
		And(ex.AttributeNotExists(ex.Name(AttrCommitted)))).Build())
	_, err := i.db.DeleteItem(ctx, &dynamodb.DeleteItemInput{
		TableName: &i.table, Key: marshal(idemKey(k)),
		ConditionExpression: expr.Condition(), ExpressionAttributeNames: expr.Names(), ExpressionAttributeValues: expr.Values(),
	})
	if err != nil && !isConditionFailed(err) {
		return internal(err, "releasing idempotency key")
	}
	return nil
}

// AppendNotification writes one stream item per stream and the notification
// item with BatchWriteItem, in chunks of 25, at most 4 chunks in flight. On
// failure (including the end of ctx) it deletes, best effort, what it may
// have written and returns an EINTERNAL error.
func (i *Inbox) AppendNotification(ctx context.Context, note notify.StoredNotification, streams []string, expiresAt time.Time) error {
	if note.ID == "" {
		return notify.Errorf(notify.EINVALID, "notification id is required")
	}
	streams = distinct(streams)
	puts := make([]types.WriteRequest, 0, len(streams)+1)
	dels := make([]types.WriteRequest, 0, len(streams)+1)
	for _, st := range streams {
		puts = append(puts, putRequest(streamItem{streamKey(st, note.ID), string(note.Payload), expiresAt.Unix()}))
		dels = append(dels, deleteRequest(streamKey(st, note.ID)))
	}
	puts = append(puts, putRequest(notifItem{notifKey(note.ID), streams, expiresAt.Unix()}))
	dels = append(dels, deleteRequest(notifKey(note.ID)))
	if err := i.writeAll(ctx, puts); err != nil {
		ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), appendCleanupTimeout)
		defer cancel()
		_ = i.writeAll(ctx, dels) // best effort
		return internal(err, "storing notification")
	}
	return nil
}

// writeAll runs writes with BatchWriteItem in chunks of 25, at most
// appendConcurrency chunks at once; the first error stops the others.
func (i *Inbox) writeAll(ctx context.Context, writes []types.WriteRequest) error {
	g, ctx := errgroup.WithContext(ctx)
	g.SetLimit(appendConcurrency)
	for chunk := range slices.Chunk(writes, batchSize) {
		g.Go(func() error { return i.w.write(ctx, chunk) })
	}
	return g.Wait()
}

// ListAfter reads, in each stream concurrently, the first limit+1 unexpired
// items with an id greater than after, and merges them.
func (i *Inbox) ListAfter(ctx context.Context, streams []string, after string, limit int) ([]notify.StoredNotification, bool, error) {
	if limit < 1 {
		return nil, false, notify.Errorf(notify.EINVALID, "limit must be at least 1, got %d", limit)
	}
	items, err := i.readStreams(ctx, streams, after, true, limit+1, false)
	if err != nil {
		return nil, false, internal(err, "reading notifications")
	}
	return notes(items[:min(limit, len(items))]), len(items) > limit, nil
}

// ListLatest reads, in each stream concurrently, the newest limit unexpired
// items, and keeps the newest limit of them, ascending.
func (i *Inbox) ListLatest(ctx context.Context, streams []string, limit int) ([]notify.StoredNotification, error) {
	if limit < 1 {
		return nil, notify.Errorf(notify.EINVALID, "limit must be at least 1, got %d", limit)
	}
	items, err := i.readStreams(ctx, streams, "", false, limit, false)
	if err != nil {
		return nil, internal(err, "reading notifications")
	}
	return notes(items), nil
}

// notes returns the notifications of stream items.
func notes(items []streamItem) []notify.StoredNotification {
	out := make([]notify.StoredNotification, len(items))
	for k, it := range items {
		out[k] = notify.StoredNotification{ID: it.SK, Payload: []byte(it.Payload)}
	}
	return out
}

// readStreams queries each stream (at most queryConcurrency at once) for
// want unexpired items with an id greater than after, ascending (forward)
// or from the newest, and returns the first (forward) or newest want of
// them, each id once, ascending. keysOnly leaves out the payloads.
func (i *Inbox) readStreams(ctx context.Context, streams []string, after string, forward bool, want int, keysOnly bool) ([]streamItem, error) {
	streams = distinct(streams)
	results := make([][]streamItem, len(streams))
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(queryConcurrency)
	for k, st := range streams {
		g.Go(func() (err error) {
			results[k], err = i.queryStream(gctx, st, after, forward, want, keysOnly)
			return err
		})
	}
	if err := g.Wait(); err != nil {
		return nil, err
	}
	out := slices.Concat(results...)
	slices.SortStableFunc(out, func(a, b streamItem) int { return strings.Compare(a.SK, b.SK) })
	out = slices.CompactFunc(out, func(a, b streamItem) bool { return a.SK == b.SK })
	if len(out) > want {
		if forward {
			out = out[:want]
		} else {
			out = out[len(out)-want:]
		}
	}
	return out, nil
}

// queryStream reads up to want unexpired items of stream whose id is
// greater than after ("" = no bound), ascending or descending. The filter
// on expiresAt applies after Limit, so it pages on LastEvaluatedKey until it
// has want items or the partition ends; each page asks for what is still
// missing (more, growing, while pages come back thinned by expired items).
// keysOnly projects sk alone.
func (i *Inbox) queryStream(ctx context.Context, stream, after string, forward bool, want int, keysOnly bool) ([]streamItem, error) {
	if want <= 0 {
		return nil, nil
	}
	cond := ex.Key(AttrPK).Equal(ex.Value(streamPrefix + stream))
	if after != "" {
		cond = cond.And(ex.Key(AttrSK).GreaterThan(ex.Value(after)))
	}
	proj := ex.NamesList(ex.Name(AttrSK))
	if !keysOnly {
		proj = proj.AddNames(ex.Name(AttrPayload))
	}
	expr := must(i.unexpired().WithKeyCondition(cond).WithProjection(proj).Build())
	in := &dynamodb.QueryInput{
		TableName: &i.table, ConsistentRead: aws.Bool(true), ScanIndexForward: aws.Bool(forward),
		KeyConditionExpression: expr.KeyCondition(), FilterExpression: expr.Filter(),
		ProjectionExpression: expr.Projection(), ExpressionAttributeNames: expr.Names(),
		ExpressionAttributeValues: expr.Values(),
	}
	var raw []map[string]types.AttributeValue
	pageLimit := 0
	for len(raw) < want {
		need := want - len(raw)
		if pageLimit == 0 {
			pageLimit = need
		} else {
			pageLimit = max(need, min(2*pageLimit, maxQueryLimit))
		}
		limit := pageLimit
		if i.pageLimit > 0 {
			limit = min(limit, int(i.pageLimit))
		}
		in.Limit = aws.Int32(int32(min(limit, maxQueryLimit)))
		page, err := i.db.Query(ctx, in)
		if err != nil {
			return nil, err
		}
		raw = append(raw, page.Items...)
		if len(page.LastEvaluatedKey) == 0 {
			break
		}
		in.ExclusiveStartKey = page.LastEvaluatedKey
		if page.ScannedCount == page.Count {
			// No expired items in this page: ask for just what is missing.
			pageLimit = 0
		}
	}
	var items []streamItem
	err := attributevalue.UnmarshalListOfMaps(raw[:min(want, len(raw))], &items)
	return items, err
}

// VisibleIDs reads the notification items of ids with BatchGetItem (100 keys
// per call, UnprocessedKeys retried) and keeps those stored in one of
// streams and unexpired, each once, in the order given.
func (i *Inbox) VisibleIDs(ctx context.Context, streams []string, ids []string) ([]string, error) {
	out := make([]string, 0, len(ids))
	want := make(map[string]bool, len(streams))
	for _, st := range streams {
		want[st] = true
	}
	uniq := distinct(ids)
	if len(want) == 0 || len(uniq) == 0 {
		return out, nil
	}
	visible := make(map[string]bool, len(uniq))
	for chunk := range slices.Chunk(uniq, batchGetSize) {
		keys := make([]key, len(chunk))
		for k, id := range chunk {
			keys[k] = notifKey(id)
		}
		var items []notifItem
		if err := i.batchGet(ctx, keys, ex.NamesList(ex.Name(AttrPK), ex.Name(AttrStreams), ex.Name(AttrExpiresAt)), &items); err != nil {
			return nil, internal(err, "reading notifications")
		}
		for _, it := range items {
			if !i.expired(it.ExpiresAt) && slices.ContainsFunc(it.Streams, func(st string) bool { return want[st] }) {
				visible[strings.TrimPrefix(it.PK, notifPrefix)] = true
			}
		}
	}
	for _, id := range uniq {
		if visible[id] {
			out = append(out, id)
		}
	}
	return out, nil
}

// batchGet reads the items under keys (at most 100) consistently with
// BatchGetItem, retrying UnprocessedKeys like i.w retries unprocessed
// writes, and unmarshals them into out, a pointer to a slice.
func (i *Inbox) batchGet(ctx context.Context, keys []key, proj ex.ProjectionBuilder, out any) error {
	expr := must(ex.NewBuilder().WithProjection(proj).Build())
	req := types.KeysAndAttributes{
		ConsistentRead: aws.Bool(true), ProjectionExpression: expr.Projection(), ExpressionAttributeNames: expr.Names(),
	}
	for _, k := range keys {
		req.Keys = append(req.Keys, marshal(k))
	}
	var items []map[string]types.AttributeValue
	err := i.w.retry(ctx, "batch get: keys", func() (bool, error) {
		got, err := i.db.BatchGetItem(ctx, &dynamodb.BatchGetItemInput{RequestItems: map[string]types.KeysAndAttributes{i.table: req}})
		if err != nil {
			return false, err
		}
		items = append(items, got.Responses[i.table]...)
		req = got.UnprocessedKeys[i.table]
		return len(req.Keys) > 0, nil
	})
	if err != nil {
		return err
	}
	return attributevalue.UnmarshalListOfMaps(items, out)
}

// MarkRead writes one read mark per id with BatchWriteItem.
func (i *Inbox) MarkRead(ctx context.Context, userID string, ids []string, expiresAt time.Time) error {
	if userID == "" {
		return notify.Errorf(notify.EINVALID, "user id is required")
	}
	ids = distinct(ids)
	writes := make([]types.WriteRequest, len(ids))
	for k, id := range ids {
		writes[k] = putRequest(readItem{key: readMarkKey(userID, id), ExpiresAt: expiresAt.Unix()})
	}
	if err := i.writeAll(ctx, writes); err != nil {
		return internal(err, "storing read marks")
	}
	return nil
}

// MarkAllRead raises the user's watermark to upTo with a conditional
// UpdateItem; a lower or equal upTo fails the condition and changes nothing.
func (i *Inbox) MarkAllRead(ctx context.Context, userID string, upTo string) error {
	if userID == "" {
		return notify.Errorf(notify.EINVALID, "user id is required")
	}
	if upTo == "" {
		return nil
	}
	u := ex.Name(AttrUpTo)
	expr := must(ex.NewBuilder().WithUpdate(ex.Set(u, ex.Value(upTo))).
		WithCondition(ex.AttributeNotExists(u).Or(u.LessThan(ex.Value(upTo)))).Build())
	_, err := i.db.UpdateItem(ctx, &dynamodb.UpdateItemInput{
		TableName: &i.table, Key: marshal(watermarkKey(userID)),
		UpdateExpression: expr.Update(), ConditionExpression: expr.Condition(),
		ExpressionAttributeNames: expr.Names(), ExpressionAttributeValues: expr.Values(),
	})
	if err != nil && !isConditionFailed(err) {
		return internal(err, "storing read watermark")
	}
	return nil
}

// ReadState reads, with BatchGetItem, the user's watermark item and the
// read marks of exactly ids (each once): one call for up to 99 ids, more (at
// most readStateConcurrency at once) only for a longer list, so a sync page
// of up to notify.MaxSyncLimit ids costs two concurrent calls at most, plus
// retries of UnprocessedKeys. An id is read when it is at or below the
// watermark or has an unexpired mark.
func (i *Inbox) ReadState(ctx context.Context, userID string, ids []string) ([]bool, error) {
	if userID == "" {
		return nil, notify.Errorf(notify.EINVALID, "user id is required")
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	out := make([]bool, len(ids))
	uniq := distinct(ids)
	if len(uniq) == 0 {
		return out, nil
	}
	keys := []key{watermarkKey(userID)}
	for _, id := range uniq {
		keys = append(keys, readMarkKey(userID, id))
	}
	results := make([][]readItem, (len(keys)+batchGetSize-1)/batchGetSize)
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(readStateConcurrency)
	proj := ex.NamesList(ex.Name(AttrSK), ex.Name(AttrUpTo), ex.Name(AttrExpiresAt))
	for k := range results {
		chunk := keys[k*batchGetSize : min((k+1)*batchGetSize, len(keys))]
		g.Go(func() error { return i.batchGet(gctx, chunk, proj, &results[k]) })
	}
	if err := g.Wait(); err != nil {
		return nil, internal(err, "reading read state")
	}
	watermark := ""
	marked := make(map[string]bool, len(uniq))
	for _, it := range slices.Concat(results...) {
		if it.SK == watermarkSK {
			watermark = it.UpTo
		} else if id, ok := strings.CutPrefix(it.SK, readMarkPrefix); ok && !i.expired(it.ExpiresAt) {
			marked[id] = true
		}
	}
	for k, id := range ids {
		out[k] = id != "" && (id <= watermark || marked[id])
	}
	return out, nil
}

// CountUnread reads the user's watermark W and read marks above it, then
// the newest max+marks unexpired ids above W of each stream (keys only),
// and counts the distinct ones not marked, up to max. That many per stream
// suffice: a stream cut short holds at least max unread ids.
func (i *Inbox) CountUnread(ctx context.Context, userID string, streams []string, maxCount int) (int, error) {
	streams = distinct(streams)
	if maxCount <= 0 || len(streams) == 0 {
		return 0, nil
	}
	var wm readItem
	if _, err := getItem(ctx, i.db, i.table, watermarkKey(userID), &wm); err != nil {
		return 0, internal(err, "reading read watermark")
	}

	expr := must(i.unexpired().WithProjection(ex.NamesList(ex.Name(AttrSK))).
		WithKeyCondition(ex.Key(AttrPK).Equal(ex.Value(readPrefix + userID)).
			And(ex.Key(AttrSK).GreaterThan(ex.Value(readMarkPrefix + wm.UpTo)))).Build())
	in := &dynamodb.QueryInput{
		TableName: &i.table, ConsistentRead: aws.Bool(true),
		KeyConditionExpression: expr.KeyCondition(), FilterExpression: expr.Filter(),
		ProjectionExpression: expr.Projection(), ExpressionAttributeNames: expr.Names(),
		ExpressionAttributeValues: expr.Values(),
	}
	if i.pageLimit > 0 {
		in.Limit = aws.Int32(i.pageLimit)
	}
	marks := make(map[string]bool)
	for p := dynamodb.NewQueryPaginator(i.db, in); p.HasMorePages(); {
		var items []readItem
		page, err := p.NextPage(ctx)
		if err == nil {
			err = attributevalue.UnmarshalListOfMaps(page.Items, &items)
		}
		if err != nil {
			return 0, internal(err, "reading read marks")
		}
		for _, it := range items {
			if id, ok := strings.CutPrefix(it.SK, readMarkPrefix); ok {
				marks[id] = true
			}
		}
	}

	// readStreams keeps the newest max+marks distinct ids of all streams:
	// as many unread ones as reading each stream's whole lot would give,
	// up to max.
	items, err := i.readStreams(ctx, streams, wm.UpTo, false, maxCount+len(marks), true)
	if err != nil {
		return 0, internal(err, "counting unread notifications")
	}
	unread := 0
	for _, it := range items {
		if !marks[it.SK] {
			unread++
		}
	}
	return min(unread, maxCount), nil
}

// distinct returns names without empty names (not valid in a key) and
// without repeats, in the order of their first occurrence, in a new slice.
func distinct(names []string) []string {
	seen := make(map[string]bool, len(names))
	return slices.DeleteFunc(append(make([]string, 0, len(names)), names...), func(s string) bool {
		drop := s == "" || seen[s]
		seen[s] = true
		return drop
	})
}

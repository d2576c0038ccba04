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
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

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
	UpdateItem(context.Context, *dynamodb.UpdateItemInput, ...func(*dynamodb.Options)) (*dynamodb.UpdateItemOutput, error)
}

// Inbox is a notify.InboxStore on a DynamoDB table with the schema described
// at the top of this file. It is safe for concurrent use.
type Inbox struct {
	db    inboxAPI
	table string
	// w is a Store on the same table, for its batchWrite (chunks of 25,
	// UnprocessedItems retried with w.backoff, also used for
	// UnprocessedKeys).
	w *Store

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
	return &Inbox{db: db, table: table, w: newStore(db, table), now: time.Now}
}

func streamPK(stream string) string { return streamPrefix + stream }
func notifPK(id string) string      { return notifPrefix + id }
func idemPK(key string) string      { return idemPrefix + key }
func readPK(userID string) string   { return readPrefix + userID }
func readMarkSK(id string) string   { return readMarkPrefix + id }

func sv(v string) *types.AttributeValueMemberS { return &types.AttributeValueMemberS{Value: v} }

func itemKey(pk, sk string) map[string]types.AttributeValue {
	return map[string]types.AttributeValue{AttrPK: sv(pk), AttrSK: sv(sk)}
}

func isConditionFailed(err error) bool {
	var ccf *types.ConditionalCheckFailedException
	return errors.As(err, &ccf)
}

// expired reports whether item's expiresAt has passed (an item without one
// never expires).
func (i *Inbox) expired(item map[string]types.AttributeValue) bool {
	exp, ok := num(item, AttrExpiresAt)
	return ok && exp <= i.now().Unix()
}

// ClaimIdempotencyKey claims key for holder with a conditional PutItem that
// succeeds only when no unexpired claim exists. When another claim holds the
// key, it reads that claim (consistently) and returns it.
func (i *Inbox) ClaimIdempotencyKey(ctx context.Context, k, holder string, expiresAt time.Time) (notify.IdempotencyClaim, error) {
	if k == "" || holder == "" {
		return notify.IdempotencyClaim{}, notify.Errorf(notify.EINVALID, "idempotency key and holder are required")
	}
	for attempt := 1; ; attempt++ {
		item := itemKey(idemPK(k), idemSK)
		item[AttrHolder] = sv(holder)
		item[AttrExpiresAt] = n(expiresAt.Unix())
		_, err := i.db.PutItem(ctx, &dynamodb.PutItemInput{
			TableName: &i.table,
			Item:      item,
			// An expired claim (TTL not yet run) is as good as none.
			ConditionExpression:       aws.String("attribute_not_exists(#pk) OR #e <= :now"),
			ExpressionAttributeNames:  map[string]string{"#pk": AttrPK, "#e": AttrExpiresAt},
			ExpressionAttributeValues: map[string]types.AttributeValue{":now": n(i.now().Unix())},
		})
		if err == nil {
			return notify.IdempotencyClaim{Holder: holder, Claimed: true, ExpiresAt: expiresAt}, nil
		}
		if !isConditionFailed(err) {
			return notify.IdempotencyClaim{}, internal(err, "claiming idempotency key")
		}
		out, err := i.db.GetItem(ctx, &dynamodb.GetItemInput{
			TableName:      &i.table,
			Key:            itemKey(idemPK(k), idemSK),
			ConsistentRead: aws.Bool(true),
		})
		if err != nil {
			return notify.IdempotencyClaim{}, internal(err, "reading idempotency key")
		}
		if len(out.Item) > 0 && !i.expired(out.Item) {
			committed, _ := out.Item[AttrCommitted].(*types.AttributeValueMemberBOOL)
			c := notify.IdempotencyClaim{
				Holder: str(out.Item, AttrHolder), ID: str(out.Item, AttrID),
				Committed: committed != nil && committed.Value,
			}
			if exp, ok := num(out.Item, AttrExpiresAt); ok {
				c.ExpiresAt = time.Unix(exp, 0)
			}
			return c, nil
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
	_, err := i.db.UpdateItem(ctx, &dynamodb.UpdateItemInput{
		TableName:                &i.table,
		Key:                      itemKey(idemPK(k), idemSK),
		UpdateExpression:         aws.String("SET #c = :true, #e = :e, #id = :id"),
		ConditionExpression:      aws.String("#h = :h"),
		ExpressionAttributeNames: map[string]string{"#c": AttrCommitted, "#e": AttrExpiresAt, "#id": AttrID, "#h": AttrHolder},
		ExpressionAttributeValues: map[string]types.AttributeValue{
			":true": &types.AttributeValueMemberBOOL{Value: true}, ":e": n(expiresAt.Unix()), ":id": sv(id), ":h": sv(holder),
		},
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
	_, err := i.db.DeleteItem(ctx, &dynamodb.DeleteItemInput{
		TableName:                 &i.table,
		Key:                       itemKey(idemPK(k), idemSK),
		ConditionExpression:       aws.String("#h = :h AND attribute_not_exists(#c)"),
		ExpressionAttributeNames:  map[string]string{"#h": AttrHolder, "#c": AttrCommitted},
		ExpressionAttributeValues: map[string]types.AttributeValue{":h": sv(holder)},
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
	streams = nonEmpty(dedupe(streams))
	exp := n(expiresAt.Unix())
	id := sv(note.ID)
	payload := sv(string(note.Payload))
	list := make([]types.AttributeValue, len(streams))
	writes := make([]types.WriteRequest, 0, len(streams)+1)
	for k, st := range streams {
		list[k] = sv(st)
		writes = append(writes, types.WriteRequest{PutRequest: &types.PutRequest{Item: map[string]types.AttributeValue{
			AttrPK: sv(streamPK(st)), AttrSK: id, AttrPayload: payload, AttrExpiresAt: exp,
		}}})
	}
	writes = append(writes, types.WriteRequest{PutRequest: &types.PutRequest{Item: map[string]types.AttributeValue{
		AttrPK: sv(notifPK(note.ID)), AttrSK: sv(notifSK), AttrStreams: &types.AttributeValueMemberL{Value: list}, AttrExpiresAt: exp,
	}}})
	if err := i.writeAll(ctx, writes); err != nil {
		i.deleteWritten(ctx, writes)
		return internal(err, "storing notification")
	}
	return nil
}

// deleteWritten deletes, best effort, the items of puts.
func (i *Inbox) deleteWritten(ctx context.Context, puts []types.WriteRequest) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), appendCleanupTimeout)
	defer cancel()
	dels := make([]types.WriteRequest, 0, len(puts))
	for _, p := range puts {
		dels = append(dels, types.WriteRequest{DeleteRequest: &types.DeleteRequest{Key: map[string]types.AttributeValue{
			AttrPK: p.PutRequest.Item[AttrPK], AttrSK: p.PutRequest.Item[AttrSK],
		}}})
	}
	_ = i.writeAll(ctx, dels)
}

// writeAll runs writes with BatchWriteItem in chunks of 25, at most
// appendConcurrency chunks at once; the first error stops the others.
func (i *Inbox) writeAll(ctx context.Context, writes []types.WriteRequest) error {
	var jobs []func(context.Context) error
	for start := 0; start < len(writes); start += batchSize {
		chunk := writes[start:min(start+batchSize, len(writes))]
		jobs = append(jobs, func(ctx context.Context) error { return i.w.batchWrite(ctx, chunk) })
	}
	return runBounded(ctx, appendConcurrency, jobs)
}

// runBounded runs jobs with at most limit at once. The first error cancels
// the context of the others and is returned; so is the end of ctx before
// every job started.
func runBounded(ctx context.Context, limit int, jobs []func(context.Context) error) error {
	switch len(jobs) {
	case 0:
		return nil
	case 1:
		return jobs[0](ctx)
	}
	parent := ctx
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var (
		wg    sync.WaitGroup
		once  sync.Once
		first error
	)
	sem := make(chan struct{}, limit)
	started := 0
start:
	for _, job := range jobs {
		select {
		case sem <- struct{}{}:
		case <-ctx.Done():
			break start
		}
		started++
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			if err := job(ctx); err != nil {
				once.Do(func() { first = err })
				cancel()
			}
		}()
	}
	wg.Wait()
	if first != nil {
		return first
	}
	if started < len(jobs) {
		return parent.Err()
	}
	return nil
}

// ListAfter reads, in each stream concurrently, the first limit+1 unexpired
// items with an id greater than after, and merges them.
func (i *Inbox) ListAfter(ctx context.Context, streams []string, after string, limit int) ([]notify.StoredNotification, bool, error) {
	if limit < 1 {
		return nil, false, notify.Errorf(notify.EINVALID, "limit must be at least 1, got %d", limit)
	}
	merged, err := i.readStreams(ctx, streams, after, true, limit+1)
	if err != nil {
		return nil, false, internal(err, "reading notifications")
	}
	more := len(merged) > limit
	return merged[:min(limit, len(merged))], more, nil
}

// ListLatest reads, in each stream concurrently, the newest limit unexpired
// items, and keeps the newest limit of them, ascending.
func (i *Inbox) ListLatest(ctx context.Context, streams []string, limit int) ([]notify.StoredNotification, error) {
	if limit < 1 {
		return nil, notify.Errorf(notify.EINVALID, "limit must be at least 1, got %d", limit)
	}
	merged, err := i.readStreams(ctx, streams, "", false, limit)
	if err != nil {
		return nil, internal(err, "reading notifications")
	}
	return merged[max(0, len(merged)-limit):], nil
}

// readStreams queries each stream for want unexpired items with an id
// greater than after, ascending (forward) or from the newest, and returns
// them merged, each id once, ascending.
func (i *Inbox) readStreams(ctx context.Context, streams []string, after string, forward bool, want int) ([]notify.StoredNotification, error) {
	streams = nonEmpty(dedupe(streams))
	results := make([][]map[string]types.AttributeValue, len(streams))
	jobs := make([]func(context.Context) error, len(streams))
	for k, st := range streams {
		jobs[k] = func(ctx context.Context) error {
			items, err := i.queryStream(ctx, streamPK(st), after, forward, want, false)
			results[k] = items
			return err
		}
	}
	if err := runBounded(ctx, queryConcurrency, jobs); err != nil {
		return nil, err
	}
	seen := make(map[string]struct{})
	out := make([]notify.StoredNotification, 0, want)
	for _, items := range results {
		for _, it := range items {
			id := str(it, AttrSK)
			if _, dup := seen[id]; dup {
				continue
			}
			seen[id] = struct{}{}
			out = append(out, notify.StoredNotification{ID: id, Payload: []byte(str(it, AttrPayload))})
		}
	}
	slices.SortFunc(out, func(a, b notify.StoredNotification) int { return strings.Compare(a.ID, b.ID) })
	if len(out) > want {
		if forward {
			out = out[:want]
		} else {
			out = out[len(out)-want:]
		}
	}
	return out, nil
}

// queryStream reads up to want unexpired items of partition pk whose sk is
// greater than after ("" = no bound), ascending or descending. The filter on
// expiresAt applies after Limit, so it pages on LastEvaluatedKey until it has
// want items or the partition ends; each page asks for what is still missing
// (more, growing, while pages come back thinned by expired items). keysOnly
// projects sk alone.
func (i *Inbox) queryStream(ctx context.Context, pk, after string, forward bool, want int, keysOnly bool) ([]map[string]types.AttributeValue, error) {
	if want <= 0 {
		return nil, nil
	}
	names := map[string]string{"#pk": AttrPK, "#sk": AttrSK, "#e": AttrExpiresAt}
	values := map[string]types.AttributeValue{":pk": sv(pk), ":now": n(i.now().Unix())}
	cond := "#pk = :pk"
	if after != "" {
		cond += " AND #sk > :after"
		values[":after"] = sv(after)
	}
	proj := "#sk, #p"
	names["#p"] = AttrPayload
	if keysOnly {
		proj = "#sk"
		delete(names, "#p")
	}
	in := &dynamodb.QueryInput{
		TableName:                 &i.table,
		ConsistentRead:            aws.Bool(true),
		KeyConditionExpression:    aws.String(cond),
		FilterExpression:          aws.String(filterUnexpired),
		ProjectionExpression:      aws.String(proj),
		ScanIndexForward:          aws.Bool(forward),
		ExpressionAttributeNames:  names,
		ExpressionAttributeValues: values,
	}
	var out []map[string]types.AttributeValue
	pageLimit := 0
	for len(out) < want {
		need := want - len(out)
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
		out = append(out, page.Items...)
		if len(page.LastEvaluatedKey) == 0 {
			break
		}
		in.ExclusiveStartKey = page.LastEvaluatedKey
		if page.ScannedCount == page.Count {
			// No expired items in this page: ask for just what is missing.
			pageLimit = 0
		}
	}
	if len(out) > want {
		out = out[:want]
	}
	return out, nil
}

// VisibleIDs reads the notification items of ids with BatchGetItem (100 keys
// per call, UnprocessedKeys retried) and keeps those stored in one of
// streams and unexpired, each once, in the order given.
func (i *Inbox) VisibleIDs(ctx context.Context, streams []string, ids []string) ([]string, error) {
	out := make([]string, 0, len(ids))
	want := make(map[string]struct{}, len(streams))
	for _, st := range streams {
		want[st] = struct{}{}
	}
	uniq := nonEmpty(dedupe(ids))
	if len(want) == 0 || len(uniq) == 0 {
		return out, nil
	}
	visible := make(map[string]bool, len(uniq))
	for start := 0; start < len(uniq); start += batchGetSize {
		chunk := uniq[start:min(start+batchGetSize, len(uniq))]
		keys := make([]map[string]types.AttributeValue, len(chunk))
		for k, id := range chunk {
			keys[k] = itemKey(notifPK(id), notifSK)
		}
		items, err := i.batchGet(ctx, keys, "#pk, #st, #e", map[string]string{"#pk": AttrPK, "#st": AttrStreams, "#e": AttrExpiresAt})
		if err != nil {
			return nil, internal(err, "reading notifications")
		}
		for _, it := range items {
			if i.expired(it) {
				continue
			}
			for _, st := range stringList(it, AttrStreams) {
				if _, ok := want[st]; ok {
					visible[strings.TrimPrefix(str(it, AttrPK), notifPrefix)] = true
					break
				}
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

// batchGet reads keys (at most 100) consistently with BatchGetItem,
// retrying UnprocessedKeys with backoff.
func (i *Inbox) batchGet(ctx context.Context, keys []map[string]types.AttributeValue, proj string, names map[string]string) ([]map[string]types.AttributeValue, error) {
	req := map[string]types.KeysAndAttributes{i.table: {
		Keys:                     keys,
		ConsistentRead:           aws.Bool(true),
		ProjectionExpression:     aws.String(proj),
		ExpressionAttributeNames: names,
	}}
	var items []map[string]types.AttributeValue
	for attempt := 1; ; attempt++ {
		out, err := i.db.BatchGetItem(ctx, &dynamodb.BatchGetItemInput{RequestItems: req})
		if err != nil {
			return nil, err
		}
		items = append(items, out.Responses[i.table]...)
		left, ok := out.UnprocessedKeys[i.table]
		if !ok || len(left.Keys) == 0 {
			return items, nil
		}
		if attempt >= maxBatchAttempts {
			return nil, errors.New("batch get: keys still unprocessed after " + strconv.Itoa(attempt) + " attempts")
		}
		req = map[string]types.KeysAndAttributes{i.table: left}
		t := time.NewTimer(i.w.backoff(attempt))
		select {
		case <-ctx.Done():
			t.Stop()
			return nil, ctx.Err()
		case <-t.C:
		}
	}
}

// MarkRead writes one read mark per id with BatchWriteItem.
func (i *Inbox) MarkRead(ctx context.Context, userID string, ids []string, expiresAt time.Time) error {
	if userID == "" {
		return notify.Errorf(notify.EINVALID, "user id is required")
	}
	ids = nonEmpty(dedupe(ids))
	exp := n(expiresAt.Unix())
	pk := sv(readPK(userID))
	writes := make([]types.WriteRequest, 0, len(ids))
	for _, id := range ids {
		writes = append(writes, types.WriteRequest{PutRequest: &types.PutRequest{Item: map[string]types.AttributeValue{
			AttrPK: pk, AttrSK: sv(readMarkSK(id)), AttrExpiresAt: exp,
		}}})
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
	_, err := i.db.UpdateItem(ctx, &dynamodb.UpdateItemInput{
		TableName:                 &i.table,
		Key:                       itemKey(readPK(userID), watermarkSK),
		UpdateExpression:          aws.String("SET #u = :v"),
		ConditionExpression:       aws.String("attribute_not_exists(#u) OR #u < :v"),
		ExpressionAttributeNames:  map[string]string{"#u": AttrUpTo},
		ExpressionAttributeValues: map[string]types.AttributeValue{":v": sv(upTo)},
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
	uniq := nonEmpty(dedupe(ids))
	if len(uniq) == 0 {
		return out, nil
	}
	pk := readPK(userID)
	keys := make([]map[string]types.AttributeValue, 0, len(uniq)+1)
	keys = append(keys, itemKey(pk, watermarkSK))
	for _, id := range uniq {
		keys = append(keys, itemKey(pk, readMarkSK(id)))
	}
	results := make([][]map[string]types.AttributeValue, 0, (len(keys)+batchGetSize-1)/batchGetSize)
	var jobs []func(context.Context) error
	for start := 0; start < len(keys); start += batchGetSize {
		chunk := keys[start:min(start+batchGetSize, len(keys))]
		k := len(results)
		results = append(results, nil)
		jobs = append(jobs, func(ctx context.Context) error {
			items, err := i.batchGet(ctx, chunk, "#sk, #u, #e", map[string]string{"#sk": AttrSK, "#u": AttrUpTo, "#e": AttrExpiresAt})
			results[k] = items
			return err
		})
	}
	if err := runBounded(ctx, readStateConcurrency, jobs); err != nil {
		return nil, internal(err, "reading read state")
	}
	watermark := ""
	marked := make(map[string]bool, len(uniq))
	for _, items := range results {
		for _, it := range items {
			sk := str(it, AttrSK)
			if sk == watermarkSK {
				watermark = str(it, AttrUpTo)
			} else if id, ok := strings.CutPrefix(sk, readMarkPrefix); ok && !i.expired(it) {
				marked[id] = true
			}
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
	streams = nonEmpty(dedupe(streams))
	if maxCount <= 0 || len(streams) == 0 {
		return 0, nil
	}
	wm, err := i.db.GetItem(ctx, &dynamodb.GetItemInput{
		TableName:                &i.table,
		Key:                      itemKey(readPK(userID), watermarkSK),
		ConsistentRead:           aws.Bool(true),
		ProjectionExpression:     aws.String("#u"),
		ExpressionAttributeNames: map[string]string{"#u": AttrUpTo},
	})
	if err != nil {
		return 0, internal(err, "reading read watermark")
	}
	watermark := str(wm.Item, AttrUpTo)

	marks := make(map[string]struct{})
	in := &dynamodb.QueryInput{
		TableName:                &i.table,
		ConsistentRead:           aws.Bool(true),
		KeyConditionExpression:   aws.String("#pk = :pk AND #sk > :from"),
		FilterExpression:         aws.String(filterUnexpired),
		ProjectionExpression:     aws.String("#sk"),
		ExpressionAttributeNames: map[string]string{"#pk": AttrPK, "#sk": AttrSK, "#e": AttrExpiresAt},
		ExpressionAttributeValues: map[string]types.AttributeValue{
			":pk": sv(readPK(userID)), ":from": sv(readMarkSK(watermark)), ":now": n(i.now().Unix()),
		},
	}
	if i.pageLimit > 0 {
		in.Limit = aws.Int32(i.pageLimit)
	}
	for {
		page, err := i.db.Query(ctx, in)
		if err != nil {
			return 0, internal(err, "reading read marks")
		}
		for _, it := range page.Items {
			if id, ok := strings.CutPrefix(str(it, AttrSK), readMarkPrefix); ok {
				marks[id] = struct{}{}
			}
		}
		if len(page.LastEvaluatedKey) == 0 {
			break
		}
		in.ExclusiveStartKey = page.LastEvaluatedKey
	}

	want := maxCount + len(marks)
	results := make([][]map[string]types.AttributeValue, len(streams))
	jobs := make([]func(context.Context) error, len(streams))
	for k, st := range streams {
		jobs[k] = func(ctx context.Context) error {
			items, err := i.queryStream(ctx, streamPK(st), watermark, false, want, true)
			results[k] = items
			return err
		}
	}
	if err := runBounded(ctx, queryConcurrency, jobs); err != nil {
		return 0, internal(err, "counting unread notifications")
	}
	unread := make(map[string]struct{})
	for _, items := range results {
		for _, it := range items {
			id := str(it, AttrSK)
			if _, read := marks[id]; !read {
				unread[id] = struct{}{}
			}
		}
	}
	return min(len(unread), maxCount), nil
}

// stringList returns a list-of-strings (L of S) or string-set attribute.
func stringList(item map[string]types.AttributeValue, name string) []string {
	switch v := item[name].(type) {
	case *types.AttributeValueMemberSS:
		return v.Value
	case *types.AttributeValueMemberL:
		out := make([]string, 0, len(v.Value))
		for _, e := range v.Value {
			if s, ok := e.(*types.AttributeValueMemberS); ok {
				out = append(out, s.Value)
			}
		}
		return out
	}
	return nil
}

// nonEmpty drops empty names (not valid in a key).
func nonEmpty(names []string) []string {
	if !slices.Contains(names, "") {
		return names
	}
	return slices.DeleteFunc(slices.Clone(names), func(s string) bool { return s == "" })
}

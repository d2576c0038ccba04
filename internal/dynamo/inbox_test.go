package dynamo

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"reflect"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/workorders/notify/internal/notify"
	"github.com/workorders/notify/internal/notify/inboxtest"
	"github.com/workorders/notify/internal/testenv"
)

// queries returns the recorded Queries of partition pk, a value of their
// expression ("" = all of them).
func (l *callLog) queries(pk string) []*dynamodb.QueryOutput {
	var out []*dynamodb.QueryOutput
	for _, c := range l.snapshot() {
		in, ok := c.in.(*dynamodb.QueryInput)
		if !ok {
			continue
		}
		if pk != "" && !slices.ContainsFunc(slices.Collect(maps.Values(in.ExpressionAttributeValues)),
			func(v types.AttributeValue) bool { return reflect.DeepEqual(v, sv(pk)) }) {
			continue
		}
		if o, ok := c.out.(*dynamodb.QueryOutput); ok {
			out = append(out, o)
		}
	}
	return out
}

// scanned sums ScannedCount (items read before the filter) and the items
// returned over outs.
func scanned(outs []*dynamodb.QueryOutput) (read, returned int) {
	for _, o := range outs {
		read += int(o.ScannedCount)
		returned += len(o.Items)
	}
	return read, returned
}

// inboxFixture is a fresh notifications table on dynalite with a recording
// client.
type inboxFixture struct {
	client *dynamodb.Client
	table  string
	log    *callLog
	inbox  *Inbox
}

func newInboxFixture(t testing.TB) *inboxFixture {
	t.Helper()
	client, log := recordingClient(t)
	table := freshTable(t, client, log, "notifications", CreateNotificationsTable)
	return &inboxFixture{client: client, table: table, log: log, inbox: NewInbox(client, table)}
}

// rawItems returns every item of the table, keyed by "pk|sk".
func (f *inboxFixture) rawItems(t *testing.T) map[string]map[string]types.AttributeValue {
	t.Helper()
	return (&fixture{client: f.client, table: f.table}).rawItems(t)
}

// putStream writes count stream items straight into stream (ids one
// millisecond apart from base, in order) and returns their ids.
func (f *inboxFixture) putStream(t *testing.T, stream string, base time.Time, count int, payload string, expiresAt time.Time) []string {
	t.Helper()
	ids := make([]string, count)
	writes := make([]types.WriteRequest, count)
	for i := range ids {
		ids[i] = notify.NewID(base.Add(time.Duration(i) * time.Millisecond))
		writes[i] = putRequest(streamItem{streamKey(stream, ids[i]), payload, expiresAt.Unix()})
	}
	if err := f.inbox.writeAll(t.Context(), writes); err != nil {
		t.Fatalf("writing %d items: %v", count, err)
	}
	return ids
}

func TestInboxSuite(t *testing.T) {
	testenv.Dynalite(t) // skip early when dynalite is missing
	inboxtest.Run(t, func(t *testing.T) notify.InboxStore {
		return newInboxFixture(t).inbox
	})
}

func TestInboxItemLayout(t *testing.T) {
	t.Parallel()
	f := newInboxFixture(t)
	ctx := t.Context()
	id := notify.NewID(time.Now())
	payload := `{"id":"` + id + `","type":"workorder.assigned","title":"Pumpe läuft aus \u003cb\u003e"}`
	expiresAt := time.Unix(1764072000, 900_000_000)
	streams := []string{"user:42", "group:team:plant-3", "user:42", "broadcast"}
	if err := f.inbox.AppendNotification(ctx, notify.StoredNotification{ID: id, Payload: []byte(payload)}, streams, expiresAt); err != nil {
		t.Fatalf("AppendNotification: %v", err)
	}
	if names := f.log.names(); !slices.Equal(names, []string{"BatchWriteItem"}) {
		t.Errorf("AppendNotification operations = %q, want one BatchWriteItem", names)
	}

	f.inbox.now = func() time.Time { return time.Unix(1764064800, 0) }
	const holder = "0123456789abcdef0123456789abcdef"
	if c, err := f.inbox.ClaimIdempotencyKey(ctx, "wo-1042-assigned-v1", holder, time.Unix(1764151200, 5)); err != nil || !c.Claimed || c.Holder != holder {
		t.Fatalf("ClaimIdempotencyKey = %+v, %v", c, err)
	}
	if err := f.inbox.MarkRead(ctx, "42", []string{id, id}, time.Unix(1764072001, 0)); err != nil {
		t.Fatalf("MarkRead: %v", err)
	}
	if err := f.inbox.MarkAllRead(ctx, "42", id); err != nil {
		t.Fatalf("MarkAllRead: %v", err)
	}

	const exp = "expiresAt=N:1764072000"
	want := map[string][]string{
		"s#user:42|" + id:            {exp, "payload=S:" + payload, "pk=S:s#user:42", "sk=S:" + id},
		"s#group:team:plant-3|" + id: {exp, "payload=S:" + payload, "pk=S:s#group:team:plant-3", "sk=S:" + id},
		"s#broadcast|" + id:          {exp, "payload=S:" + payload, "pk=S:s#broadcast", "sk=S:" + id},
		"n#" + id + "|n": {exp, "pk=S:n#" + id, "sk=S:n",
			"streams=L:[S:user:42,S:group:team:plant-3,S:broadcast]"},
		"idem#wo-1042-assigned-v1|idem": {"expiresAt=N:1764151200", "holder=S:" + holder, "pk=S:idem#wo-1042-assigned-v1", "sk=S:idem"},
		"r#42|id#" + id:                 {"expiresAt=N:1764072001", "pk=S:r#42", "sk=S:id#" + id},
		"r#42|all":                      {"pk=S:r#42", "sk=S:all", "upTo=S:" + id},
	}
	got := f.rawItems(t)
	for k, w := range want {
		item, ok := got[k]
		if !ok {
			t.Errorf("item %s missing", k)
			continue
		}
		if a := attrs(item); !slices.Equal(a, w) {
			t.Errorf("item %s:\n got %q\nwant %q", k, a, w)
		}
	}
	for k := range got {
		if _, ok := want[k]; !ok {
			t.Errorf("unexpected item %s: %q", k, attrs(got[k]))
		}
	}

	// The conditional writes are conditional.
	for _, c := range f.log.snapshot() {
		switch in := c.in.(type) {
		case *dynamodb.PutItemInput:
			if !strings.Contains(aws.ToString(in.ConditionExpression), "attribute_not_exists") {
				t.Errorf("claim PutItem condition %q", aws.ToString(in.ConditionExpression))
			}
		case *dynamodb.UpdateItemInput:
			if !strings.Contains(aws.ToString(in.ConditionExpression), "<") {
				t.Errorf("MarkAllRead condition %q", aws.ToString(in.ConditionExpression))
			}
		}
	}

	// A lower watermark changes nothing; neither is it an error.
	if err := f.inbox.MarkAllRead(ctx, "42", "00000000000000000000000000"); err != nil {
		t.Fatalf("lower MarkAllRead: %v", err)
	}
	if a := attrs(f.rawItems(t)["r#42|all"]); !slices.Equal(a, want["r#42|all"]) {
		t.Errorf("watermark after a lower MarkAllRead: %q", a)
	}
	// Release is conditional on the holder.
	if err := f.inbox.ReleaseIdempotencyKey(ctx, "wo-1042-assigned-v1", "someone-else"); err != nil {
		t.Fatalf("ReleaseIdempotencyKey by another id: %v", err)
	}
	if _, ok := f.rawItems(t)["idem#wo-1042-assigned-v1|idem"]; !ok {
		t.Error("a release by another id deleted the claim")
	}
	if err := f.inbox.ReleaseIdempotencyKey(ctx, "wo-1042-assigned-v1", holder); err != nil {
		t.Fatalf("ReleaseIdempotencyKey: %v", err)
	}
	if _, ok := f.rawItems(t)["idem#wo-1042-assigned-v1|idem"]; ok {
		t.Error("the holder's release left the claim")
	}
}

// TestInboxReadsAreBoundedQueries fills a stream with 500 notifications and
// checks that every read is a Query of key ranges that reads about what it
// returns.
func TestInboxReadsAreBoundedQueries(t *testing.T) {
	t.Parallel()
	f := newInboxFixture(t)
	base := time.Now().Add(-time.Hour)
	const total = 500
	user, group := "user:big", "group:big"
	ids := f.putStream(t, user, base, total, `{"n":1}`, time.Now().Add(time.Hour))
	// The group holds 20 older notifications.
	groupIDs := f.putStream(t, group, base.Add(-time.Minute), 20, `{"n":2}`, time.Now().Add(time.Hour))
	streams := []string{user, group}

	onlyQueries := func(t *testing.T, want ...string) {
		t.Helper()
		names := f.log.names()
		for _, name := range names {
			if !slices.Contains(want, name) {
				t.Errorf("operations %q: %s is not allowed here", names, name)
			}
		}
		for _, c := range f.log.snapshot() {
			if in, ok := c.in.(*dynamodb.QueryInput); ok {
				if !aws.ToBool(in.ConsistentRead) || in.IndexName != nil || aws.ToString(in.FilterExpression) == "" {
					t.Errorf("Query consistent %v, index %q, filter %q", aws.ToBool(in.ConsistentRead),
						aws.ToString(in.IndexName), aws.ToString(in.FilterExpression))
				}
			}
		}
	}
	bounded := func(t *testing.T, pk string, max int) {
		t.Helper()
		read, returned := scanned(f.log.queries(pk))
		t.Logf("%s: %d items read, %d returned", pk, read, returned)
		if read > max || returned > max {
			t.Errorf("%s: %d items read, %d returned; want at most %d", pk, read, returned, max)
		}
	}

	t.Run("ListAfter", func(t *testing.T) {
		f.log.reset()
		page, more, err := f.inbox.ListAfter(t.Context(), streams, ids[200], 10)
		if err != nil || !more || len(page) != 10 || page[0].ID != ids[201] || page[9].ID != ids[210] {
			t.Fatalf("ListAfter = %d items, more %v, %v", len(page), more, err)
		}
		onlyQueries(t, "Query")
		bounded(t, "s#"+user, 11)
		bounded(t, "s#"+group, 0)
		for _, c := range f.log.snapshot() {
			in := c.in.(*dynamodb.QueryInput)
			if !strings.Contains(aws.ToString(in.KeyConditionExpression), ">") || !aws.ToBool(in.ScanIndexForward) {
				t.Errorf("key condition %q, forward %v; want a range, ascending", aws.ToString(in.KeyConditionExpression), aws.ToBool(in.ScanIndexForward))
			}
		}

		f.log.reset()
		page, more, err = f.inbox.ListAfter(t.Context(), streams, "", 25)
		if err != nil || !more || len(page) != 25 || page[0].ID != groupIDs[0] || page[24].ID != ids[4] {
			t.Fatalf("ListAfter(\"\") = %d items, more %v, %v", len(page), more, err)
		}
		onlyQueries(t, "Query")
		bounded(t, "s#"+user, 26)
		bounded(t, "s#"+group, 26)
	})

	t.Run("ListLatest", func(t *testing.T) {
		f.log.reset()
		page, err := f.inbox.ListLatest(t.Context(), streams, 10)
		if err != nil || len(page) != 10 || page[0].ID != ids[490] || page[9].ID != ids[499] {
			t.Fatalf("ListLatest = %d items, %v", len(page), err)
		}
		onlyQueries(t, "Query")
		bounded(t, "s#"+user, 10)
		bounded(t, "s#"+group, 10)
	})

	t.Run("CountUnread", func(t *testing.T) {
		f.log.reset()
		if got, err := f.inbox.CountUnread(t.Context(), "big", streams, 100); err != nil || got != 100 {
			t.Fatalf("CountUnread = %d, %v; want 100", got, err)
		}
		onlyQueries(t, "GetItem", "Query")
		bounded(t, "s#"+user, 100)

		// Read marks among the newest: the walk goes that much further.
		if err := f.inbox.MarkRead(t.Context(), "big", ids[total-7:], time.Now().Add(time.Hour)); err != nil {
			t.Fatal(err)
		}
		f.log.reset()
		if got, err := f.inbox.CountUnread(t.Context(), "big", streams, 100); err != nil || got != 100 {
			t.Fatalf("CountUnread with 7 read = %d, %v; want 100", got, err)
		}
		onlyQueries(t, "GetItem", "Query")
		bounded(t, "s#"+user, 107)
		bounded(t, "r#big", 7)

		// The watermark bounds the key range: nothing at or below it is read.
		if err := f.inbox.MarkAllRead(t.Context(), "big", ids[460]); err != nil {
			t.Fatal(err)
		}
		f.log.reset()
		if got, err := f.inbox.CountUnread(t.Context(), "big", streams, 100); err != nil || got != 39-7 {
			t.Fatalf("CountUnread above the watermark = %d, %v; want %d", got, err, 39-7)
		}
		bounded(t, "s#"+user, 39)
		bounded(t, "s#"+group, 0)
		bounded(t, "r#big", 7)
	})
}

// TestInboxExpiredPrefix: expired items (TTL runs late, dynalite never) at
// the old end of a stream cost more reads, in growing pages, not a read of
// the whole stream.
func TestInboxExpiredPrefix(t *testing.T) {
	t.Parallel()
	f := newInboxFixture(t)
	base := time.Now().Add(-time.Hour)
	dead := f.putStream(t, "user:old", base, 300, `{}`, time.Now().Add(-time.Hour))
	alive := f.putStream(t, "user:old", base.Add(time.Second), 200, `{}`, time.Now().Add(time.Hour))
	_ = dead

	page, more, err := f.inbox.ListAfter(t.Context(), []string{"user:old"}, "", 10)
	if err != nil || !more || len(page) != 10 || page[0].ID != alive[0] || page[9].ID != alive[9] {
		t.Fatalf("ListAfter = %d items, more %v, %v", len(page), more, err)
	}
	outs := f.log.queries("")
	read, _ := scanned(outs)
	t.Logf("%d Queries read %d items", len(outs), read)
	if len(outs) > 6 || read > 2*(300+11) {
		t.Errorf("%d Queries read %d items to skip 300 expired; want at most 6 reading at most %d", len(outs), read, 2*(300+11))
	}
}

func TestInboxConcurrentClaimsOneWinner(t *testing.T) {
	t.Parallel()
	f := newInboxFixture(t)
	const racers = 50
	type result struct {
		id, first string
		claimed   bool
		err       error
	}
	results := make([]result, racers)
	start := make(chan struct{})
	var wg sync.WaitGroup
	for i := range results {
		results[i].id = notify.NewID(time.Now())
		wg.Go(func() {
			<-start
			r := &results[i]
			var c notify.IdempotencyClaim
			c, r.err = f.inbox.ClaimIdempotencyKey(t.Context(), "race", r.id, time.Now().Add(24*time.Hour))
			r.first, r.claimed = c.Holder, c.Claimed
		})
	}
	close(start)
	wg.Wait()
	var winner string
	for _, r := range results {
		if r.err != nil {
			t.Fatalf("ClaimIdempotencyKey: %v", r.err)
		}
		if r.claimed {
			if winner != "" {
				t.Fatalf("two winners: %s and %s", winner, r.id)
			}
			winner = r.id
		}
	}
	if winner == "" {
		t.Fatal("no winner")
	}
	for _, r := range results {
		if r.first != winner {
			t.Errorf("claim %s returned %s, want the winner %s", r.id, r.first, winner)
		}
	}
	puts, gets := 0, 0
	for _, c := range f.log.snapshot() {
		switch in := c.in.(type) {
		case *dynamodb.PutItemInput:
			puts++
			if aws.ToString(in.ConditionExpression) == "" {
				t.Error("unconditional claim")
			}
		case *dynamodb.GetItemInput:
			gets++
			if !aws.ToBool(in.ConsistentRead) {
				t.Error("the holder is read inconsistently")
			}
		}
	}
	if puts != racers || gets != racers-1 {
		t.Errorf("%d PutItem and %d GetItem, want %d and %d", puts, gets, racers, racers-1)
	}
}

func TestInboxPaginationOverOneMegabyte(t *testing.T) {
	t.Parallel()
	f := newInboxFixture(t)
	// 12 items of 100 KB: 1.2 MB, more than one Query page.
	blob := `{"blob":"` + strings.Repeat("x", 100_000) + `"}`
	ids := f.putStream(t, "user:heavy", time.Now().Add(-time.Minute), 12, blob, time.Now().Add(time.Hour))
	streams := []string{"user:heavy"}

	page, more, err := f.inbox.ListAfter(t.Context(), streams, "", 20)
	if err != nil || more || len(page) != 12 {
		t.Fatalf("ListAfter = %d items, more %v, %v; want 12, false", len(page), more, err)
	}
	for i, it := range page {
		if it.ID != ids[i] || string(it.Payload) != blob {
			t.Errorf("item %d: %s (%d bytes), want %s", i, it.ID, len(it.Payload), ids[i])
		}
	}
	if q := len(f.log.queries("")); q < 2 {
		t.Errorf("%d Queries, want at least 2 (1 MB pages)", q)
	}

	// Paging with a cursor gets each once.
	var got []string
	cursor := ""
	for range 10 {
		page, more, err := f.inbox.ListAfter(t.Context(), streams, cursor, 5)
		if err != nil {
			t.Fatal(err)
		}
		for _, it := range page {
			got = append(got, it.ID)
		}
		if !more {
			break
		}
		cursor = page[len(page)-1].ID
	}
	if !slices.Equal(got, ids) {
		t.Errorf("paged ids %q, want %q", got, ids)
	}

	latest, err := f.inbox.ListLatest(t.Context(), streams, 20)
	if err != nil || len(latest) != 12 || latest[0].ID != ids[0] {
		t.Errorf("ListLatest = %d items, %v", len(latest), err)
	}
	if n, err := f.inbox.CountUnread(t.Context(), "heavy", streams, 100); err != nil || n != 12 {
		t.Errorf("CountUnread = %d, %v; want 12", n, err)
	}
}

func TestInboxFanOutBatches(t *testing.T) {
	t.Parallel()
	f := newInboxFixture(t)
	streams := make([]string, 1000)
	for i := range streams {
		streams[i] = fmt.Sprintf("user:u%04d", i)
	}
	id := notify.NewID(time.Now())
	start := time.Now()
	if err := f.inbox.AppendNotification(t.Context(), notify.StoredNotification{ID: id, Payload: []byte(`{}`)}, streams, time.Now().Add(time.Hour)); err != nil {
		t.Fatal(err)
	}
	t.Logf("1001 items in %v", time.Since(start))
	total := 0
	for _, c := range f.log.snapshot() {
		in, ok := c.in.(*dynamodb.BatchWriteItemInput)
		if !ok {
			t.Errorf("unexpected %T", c.in)
			continue
		}
		k := len(in.RequestItems[f.table])
		if k > batchSize {
			t.Errorf("batch of %d", k)
		}
		total += k
	}
	if total != 1001 {
		t.Errorf("%d writes, want 1001", total)
	}
	if got := len(f.rawItems(t)); got != 1001 {
		t.Errorf("%d items stored, want 1001", got)
	}
	vis, err := f.inbox.VisibleIDs(t.Context(), []string{"user:u0999", "broadcast"}, []string{id})
	if err != nil || !slices.Equal(vis, []string{id}) {
		t.Errorf("VisibleIDs = %q, %v", vis, err)
	}
}

func TestInboxVisibleIDsBatches(t *testing.T) {
	t.Parallel()
	f := newInboxFixture(t)
	var want, ask []string
	for i := range 150 {
		id := notify.NewID(time.Now())
		streams := []string{"user:a"}
		if i%3 == 0 {
			streams = []string{"user:b"}
		}
		exp := time.Now().Add(time.Hour)
		if i%10 == 1 {
			exp = time.Now().Add(-time.Hour)
		}
		if err := f.inbox.AppendNotification(t.Context(), notify.StoredNotification{ID: id, Payload: []byte(`{}`)}, streams, exp); err != nil {
			t.Fatal(err)
		}
		ask = append(ask, id)
		if i%3 != 0 && i%10 != 1 {
			want = append(want, id)
		}
	}
	slices.Reverse(ask)
	slices.Reverse(want)
	f.log.reset()
	got, err := f.inbox.VisibleIDs(t.Context(), []string{"user:a", "group:x"}, append(ask, ask[0]))
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(got, want) {
		t.Errorf("VisibleIDs = %d ids, want %d in the order given", len(got), len(want))
	}
	var sizes []int
	for _, c := range f.log.snapshot() {
		in, ok := c.in.(*dynamodb.BatchGetItemInput)
		if !ok {
			t.Errorf("unexpected %T", c.in)
			continue
		}
		ka := in.RequestItems[f.table]
		if !aws.ToBool(ka.ConsistentRead) {
			t.Error("BatchGetItem is not consistent")
		}
		sizes = append(sizes, len(ka.Keys))
	}
	if !slices.Equal(sizes, []int{100, 50}) {
		t.Errorf("BatchGetItem sizes %v, want [100 50]", sizes)
	}
}

func TestCreateNotificationsTable(t *testing.T) {
	t.Parallel()
	f := newInboxFixture(t)
	if err := CreateNotificationsTable(t.Context(), f.client, f.table); err != nil {
		t.Fatalf("CreateNotificationsTable again: %v", err)
	}
	out, err := f.client.DescribeTable(t.Context(), &dynamodb.DescribeTableInput{TableName: aws.String(f.table)})
	if err != nil {
		t.Fatal(err)
	}
	tbl := out.Table
	var keys []string
	for _, k := range tbl.KeySchema {
		keys = append(keys, aws.ToString(k.AttributeName)+":"+string(k.KeyType))
	}
	if got := strings.Join(keys, ","); got != "pk:HASH,sk:RANGE" {
		t.Errorf("key schema %s", got)
	}
	if len(tbl.GlobalSecondaryIndexes) != 0 || len(tbl.LocalSecondaryIndexes) != 0 {
		t.Errorf("indexes %+v %+v, want none", tbl.GlobalSecondaryIndexes, tbl.LocalSecondaryIndexes)
	}
	if tbl.BillingModeSummary == nil || tbl.BillingModeSummary.BillingMode != types.BillingModePayPerRequest {
		t.Errorf("billing mode %+v, want PAY_PER_REQUEST", tbl.BillingModeSummary)
	}
	if tbl.TableStatus != types.TableStatusActive {
		t.Errorf("status %s", tbl.TableStatus)
	}
}

func TestInboxErrorsAreInternal(t *testing.T) {
	t.Parallel()
	f := newInboxFixture(t)
	in := NewInbox(f.client, "no-such-table")
	ctx := t.Context()
	check := func(what string, err error) {
		t.Helper()
		if code := notify.ErrorCode(err); code != notify.EINTERNAL {
			t.Errorf("%s: code %q (%v), want %q", what, code, err, notify.EINTERNAL)
		}
		var rnf *types.ResourceNotFoundException
		if !errors.As(err, &rnf) {
			t.Errorf("%s: %v does not wrap the DynamoDB error", what, err)
		}
	}
	id := notify.NewID(time.Now())
	streams := []string{"user:42"}
	_, err := in.ClaimIdempotencyKey(ctx, "k", id, time.Now().Add(time.Hour))
	check("ClaimIdempotencyKey", err)
	check("ReleaseIdempotencyKey", in.ReleaseIdempotencyKey(ctx, "k", id))
	check("AppendNotification", in.AppendNotification(ctx, notify.StoredNotification{ID: id, Payload: []byte(`{}`)}, streams, time.Now().Add(time.Hour)))
	_, _, err = in.ListAfter(ctx, streams, "", 10)
	check("ListAfter", err)
	_, err = in.ListLatest(ctx, streams, 10)
	check("ListLatest", err)
	_, err = in.VisibleIDs(ctx, streams, []string{id})
	check("VisibleIDs", err)
	check("MarkRead", in.MarkRead(ctx, "42", []string{id}, time.Now().Add(time.Hour)))
	check("MarkAllRead", in.MarkAllRead(ctx, "42", id))
	_, err = in.CountUnread(ctx, "42", streams, 10)
	check("CountUnread", err)
	_, err = in.ReadState(ctx, "42", []string{id})
	check("ReadState", err)
}

// ReadState reads the watermark and the marks of exactly the ids asked, in
// one BatchGetItem for a page of up to 99 ids and two (concurrently) for a
// full sync page of 100: never a request per id, never the user's other
// marks.
func TestInboxReadStateBatches(t *testing.T) {
	t.Parallel()
	f := newInboxFixture(t)
	ctx := t.Context()
	base := time.Now()
	var ids []string
	for i := range notify.MaxSyncLimit {
		ids = append(ids, notify.NewID(base.Add(time.Duration(i)*time.Millisecond)))
	}
	// Many marks of other notifications, which ReadState must not read.
	var others []string
	for i := range 150 {
		others = append(others, notify.NewID(base.Add(time.Hour+time.Duration(i)*time.Millisecond)))
	}
	if err := f.inbox.MarkRead(ctx, "42", others, time.Now().Add(time.Hour)); err != nil {
		t.Fatal(err)
	}
	if err := f.inbox.MarkRead(ctx, "42", []string{ids[50], ids[98], ids[99]}, time.Now().Add(time.Hour)); err != nil {
		t.Fatal(err)
	}
	if err := f.inbox.MarkRead(ctx, "43", []string{ids[60]}, time.Now().Add(time.Hour)); err != nil {
		t.Fatal(err)
	}
	if err := f.inbox.MarkAllRead(ctx, "42", ids[9]); err != nil {
		t.Fatal(err)
	}
	want := func(id string) bool { return id <= ids[9] || id == ids[50] || id == ids[98] || id == ids[99] }

	for _, tc := range []struct {
		ask   []string
		sizes []int
	}{
		{ids[:99], []int{100}},
		{ids, []int{1, 100}},
		{append(slices.Clone(ids[90:]), ids[95], ids[91]), []int{11}},
		{nil, nil},
	} {
		f.log.reset()
		got, err := f.inbox.ReadState(ctx, "42", tc.ask)
		if err != nil {
			t.Fatalf("ReadState(%d ids): %v", len(tc.ask), err)
		}
		for i, id := range tc.ask {
			if got[i] != want(id) {
				t.Errorf("ReadState(%d ids): %s read = %v, want %v", len(tc.ask), id, got[i], want(id))
			}
		}
		var sizes []int
		for _, c := range f.log.snapshot() {
			in, ok := c.in.(*dynamodb.BatchGetItemInput)
			if !ok {
				t.Errorf("ReadState(%d ids): unexpected %T", len(tc.ask), c.in)
				continue
			}
			ka := in.RequestItems[f.table]
			if !aws.ToBool(ka.ConsistentRead) {
				t.Error("BatchGetItem is not consistent")
			}
			sizes = append(sizes, len(ka.Keys))
		}
		slices.Sort(sizes)
		if !slices.Equal(sizes, tc.sizes) {
			t.Errorf("ReadState(%d ids): BatchGetItem sizes %v, want %v", len(tc.ask), sizes, tc.sizes)
		}
	}
}

// inboxFake adds the inbox's extra operations to fakeAPI.
type inboxFake struct {
	*fakeAPI
	batchGetItem func(*dynamodb.BatchGetItemInput) (*dynamodb.BatchGetItemOutput, error)
	updateItem   func(*dynamodb.UpdateItemInput) (*dynamodb.UpdateItemOutput, error)
}

func (f *inboxFake) BatchGetItem(_ context.Context, in *dynamodb.BatchGetItemInput, _ ...func(*dynamodb.Options)) (*dynamodb.BatchGetItemOutput, error) {
	if f.batchGetItem == nil {
		return nil, errUnset
	}
	return f.batchGetItem(in)
}

func (f *inboxFake) UpdateItem(_ context.Context, in *dynamodb.UpdateItemInput, _ ...func(*dynamodb.Options)) (*dynamodb.UpdateItemOutput, error) {
	if f.updateItem == nil {
		return nil, errUnset
	}
	return f.updateItem(in)
}

// newFakeInbox returns an Inbox on f whose backoff waits delay and records
// the attempts.
func newFakeInbox(f *inboxFake, delay time.Duration) (*Inbox, func() []int) {
	in := newInbox(f, "t")
	var mu sync.Mutex
	var attempts []int
	in.w.backoff = func(n int) time.Duration {
		mu.Lock()
		attempts = append(attempts, n)
		mu.Unlock()
		return delay
	}
	return in, func() []int {
		mu.Lock()
		defer mu.Unlock()
		return slices.Clone(attempts)
	}
}

func TestInboxAppendRetriesUnprocessed(t *testing.T) {
	var mu sync.Mutex
	stored := make(map[string]int)
	f := &inboxFake{fakeAPI: &fakeAPI{batchWriteItem: func(in *dynamodb.BatchWriteItemInput) (*dynamodb.BatchWriteItemOutput, error) {
		reqs := in.RequestItems["t"]
		mu.Lock()
		stored[str(reqs[0].PutRequest.Item, AttrPK)]++
		mu.Unlock()
		// Process one request per call, hand the rest back.
		return &dynamodb.BatchWriteItemOutput{UnprocessedItems: map[string][]types.WriteRequest{"t": reqs[1:]}}, nil
	}}}
	in, attempts := newFakeInbox(f, time.Microsecond)
	streams := []string{"user:1", "user:2", "group:g"}
	if err := in.AppendNotification(t.Context(), notify.StoredNotification{ID: "01J", Payload: []byte(`{}`)}, streams, time.Now().Add(time.Hour)); err != nil {
		t.Fatal(err)
	}
	if len(stored) != 4 {
		t.Errorf("stored %v, want 4 items each once", stored)
	}
	if got := attempts(); !slices.Equal(got, []int{1, 2, 3}) {
		t.Errorf("backoff attempts %v, want [1 2 3]", got)
	}
}

func TestInboxAppendBoundsConcurrency(t *testing.T) {
	var inFlight, peak atomic.Int32
	var mu sync.Mutex
	keys := make(map[string]bool)
	release := make(chan struct{})
	f := &inboxFake{fakeAPI: &fakeAPI{batchWriteItem: func(in *dynamodb.BatchWriteItemInput) (*dynamodb.BatchWriteItemOutput, error) {
		k := inFlight.Add(1)
		defer inFlight.Add(-1)
		for {
			p := peak.Load()
			if k <= p || peak.CompareAndSwap(p, k) {
				break
			}
		}
		mu.Lock()
		for _, r := range in.RequestItems["t"] {
			keys[str(r.PutRequest.Item, AttrPK)+"|"+str(r.PutRequest.Item, AttrSK)] = true
		}
		mu.Unlock()
		<-release
		return &dynamodb.BatchWriteItemOutput{}, nil
	}}}
	in, _ := newFakeInbox(f, time.Microsecond)
	streams := make([]string, 200)
	for i := range streams {
		streams[i] = fmt.Sprintf("user:%d", i)
	}
	done := make(chan error)
	go func() {
		done <- in.AppendNotification(t.Context(), notify.StoredNotification{ID: "01J", Payload: []byte(`{}`)}, streams, time.Now().Add(time.Hour))
	}()
	deadline := time.Now().Add(5 * time.Second)
	for inFlight.Load() < appendConcurrency && time.Now().Before(deadline) {
		time.Sleep(time.Millisecond)
	}
	time.Sleep(10 * time.Millisecond)
	close(release)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if p := peak.Load(); p != appendConcurrency {
		t.Errorf("peak concurrent batches %d, want %d", p, appendConcurrency)
	}
	if len(keys) != 201 {
		t.Errorf("%d distinct items written, want 201", len(keys))
	}
}

func TestInboxAppendRespectsDeadline(t *testing.T) {
	var mu sync.Mutex
	var deleted []string
	f := &inboxFake{fakeAPI: &fakeAPI{batchWriteItem: func(in *dynamodb.BatchWriteItemInput) (*dynamodb.BatchWriteItemOutput, error) {
		reqs := in.RequestItems["t"]
		if reqs[0].DeleteRequest != nil {
			mu.Lock()
			for _, r := range reqs {
				deleted = append(deleted, str(r.DeleteRequest.Key, AttrPK))
			}
			mu.Unlock()
			return &dynamodb.BatchWriteItemOutput{}, nil
		}
		// Throttled for ever.
		return &dynamodb.BatchWriteItemOutput{UnprocessedItems: map[string][]types.WriteRequest{"t": reqs}}, nil
	}}}
	in, _ := newFakeInbox(f, time.Minute)
	ctx, cancel := context.WithTimeout(t.Context(), 50*time.Millisecond)
	defer cancel()
	start := time.Now()
	err := in.AppendNotification(ctx, notify.StoredNotification{ID: "01J", Payload: []byte(`{}`)}, []string{"user:1", "group:g"}, time.Now().Add(time.Hour))
	if notify.ErrorCode(err) != notify.EINTERNAL || !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("AppendNotification = %v, want EINTERNAL wrapping DeadlineExceeded", err)
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Errorf("returned after %v", d)
	}
	slices.Sort(deleted)
	if want := []string{"n#01J", "s#group:g", "s#user:1"}; !slices.Equal(deleted, want) {
		t.Errorf("cleanup deleted %q, want %q", deleted, want)
	}
}

func TestInboxVisibleIDsRetriesUnprocessedKeys(t *testing.T) {
	var sizes []int
	f := &inboxFake{fakeAPI: &fakeAPI{}, batchGetItem: func(in *dynamodb.BatchGetItemInput) (*dynamodb.BatchGetItemOutput, error) {
		ka := in.RequestItems["t"]
		sizes = append(sizes, len(ka.Keys))
		first := ka.Keys[0]
		item := map[string]types.AttributeValue{
			AttrPK: first[AttrPK], AttrSK: first[AttrSK],
			AttrStreams:   &types.AttributeValueMemberL{Value: []types.AttributeValue{sv("user:1")}},
			AttrExpiresAt: n(time.Now().Add(time.Hour).Unix()),
		}
		out := &dynamodb.BatchGetItemOutput{Responses: map[string][]map[string]types.AttributeValue{"t": {item}}}
		if len(ka.Keys) > 1 {
			rest := ka
			rest.Keys = ka.Keys[1:]
			out.UnprocessedKeys = map[string]types.KeysAndAttributes{"t": rest}
		}
		return out, nil
	}}
	in, attempts := newFakeInbox(f, time.Microsecond)
	ids := []string{"c", "a", "b", "a"}
	got, err := in.VisibleIDs(t.Context(), []string{"user:1"}, ids)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(got, []string{"c", "a", "b"}) {
		t.Errorf("VisibleIDs = %q", got)
	}
	if !slices.Equal(sizes, []int{3, 2, 1}) || !slices.Equal(attempts(), []int{1, 2}) {
		t.Errorf("batch sizes %v, backoff attempts %v", sizes, attempts())
	}
}

func TestInboxClaimRetriesWhenHolderVanishes(t *testing.T) {
	puts := 0
	f := &inboxFake{fakeAPI: &fakeAPI{
		putItem: func(*dynamodb.PutItemInput) (*dynamodb.PutItemOutput, error) {
			puts++
			if puts < 3 {
				return nil, &types.ConditionalCheckFailedException{}
			}
			return &dynamodb.PutItemOutput{}, nil
		},
		// The holder was released (or expired) between the two calls.
		getItem: func(*dynamodb.GetItemInput) (*dynamodb.GetItemOutput, error) { return &dynamodb.GetItemOutput{}, nil },
	}}
	in, _ := newFakeInbox(f, time.Microsecond)
	c, err := in.ClaimIdempotencyKey(t.Context(), "k", "mine", time.Now().Add(time.Hour))
	first, claimed := c.Holder, c.Claimed
	if err != nil || !claimed || first != "mine" || puts != 3 {
		t.Errorf("ClaimIdempotencyKey = %s, %v, %v after %d puts", first, claimed, err, puts)
	}

	puts = -1000 // never succeeds
	_, err = in.ClaimIdempotencyKey(t.Context(), "k", "mine", time.Now().Add(time.Hour))
	if notify.ErrorCode(err) != notify.EINTERNAL {
		t.Errorf("endless contention: %v, want EINTERNAL", err)
	}
}

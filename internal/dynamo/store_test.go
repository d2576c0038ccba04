package dynamo

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
	"github.com/aws/smithy-go/middleware"

	"github.com/workorders/notify/internal/notify"
	"github.com/workorders/notify/internal/notify/storetest"
	"github.com/workorders/notify/internal/testenv"
)

// callLog records the operations of a client, their inputs and outputs.
type callLog struct {
	mu    sync.Mutex
	calls []call
}

// call is one operation a client sent: its input and, when it succeeded,
// its output.
type call struct{ in, out any }

func (l *callLog) add(in, out any) {
	l.mu.Lock()
	l.calls = append(l.calls, call{in, out})
	l.mu.Unlock()
}

func (l *callLog) reset() {
	l.mu.Lock()
	l.calls = nil
	l.mu.Unlock()
}

func (l *callLog) snapshot() []call {
	l.mu.Lock()
	defer l.mu.Unlock()
	return slices.Clone(l.calls)
}

// inputs returns the recorded operations' inputs, in order.
func (l *callLog) inputs() []any {
	var out []any
	for _, c := range l.snapshot() {
		out = append(out, c.in)
	}
	return out
}

// names returns the operation names, e.g. "Query", in order.
func (l *callLog) names() []string {
	var out []string
	for _, in := range l.inputs() {
		out = append(out, strings.TrimSuffix(strings.TrimPrefix(fmt.Sprintf("%T", in), "*dynamodb."), "Input"))
	}
	return out
}

// recordingClient is a client of the shared dynalite that records every
// operation it sends in log.
func recordingClient(t testing.TB) (*dynamodb.Client, *callLog) {
	t.Helper()
	log := &callLog{}
	cfg := testenv.AWSConfig(t, testenv.Dynalite(t))
	client := dynamodb.NewFromConfig(cfg, func(o *dynamodb.Options) {
		o.APIOptions = append(o.APIOptions, func(stack *middleware.Stack) error {
			return stack.Initialize.Add(middleware.InitializeMiddlewareFunc("recordCall",
				func(ctx context.Context, in middleware.InitializeInput, next middleware.InitializeHandler) (middleware.InitializeOutput, middleware.Metadata, error) {
					out, md, err := next.HandleInitialize(ctx, in)
					log.add(in.Parameters, out.Result)
					return out, md, err
				}), middleware.Before)
		})
	})
	return client, log
}

// count returns how many operations of op's input type were recorded.
func count[T any](r *callLog) int {
	n := 0
	for _, op := range r.inputs() {
		if _, ok := op.(T); ok {
			n++
		}
	}
	return n
}

// fixture is a fresh table on dynalite with a recording client.
type fixture struct {
	client *dynamodb.Client
	table  string
	rec    *callLog
	store  *Store
}

// newFixture creates a fresh connections table on the shared dynalite and
// deletes it when t ends.
func newFixture(t testing.TB) *fixture {
	t.Helper()
	client, rec := recordingClient(t)
	table := freshTable(t, client, rec, "connections", CreateConnectionsTable)
	return &fixture{client: client, table: table, rec: rec, store: New(client, table)}
}

// freshTable creates a table with create under a unique name, drops it when
// t ends, and clears log of the creation's calls.
func freshTable(t testing.TB, client *dynamodb.Client, log *callLog, prefix string,
	create func(context.Context, *dynamodb.Client, string) error) string {
	t.Helper()
	table := testenv.UniqueName(prefix)
	if err := create(context.Background(), client, table); err != nil {
		t.Fatalf("creating table %s: %v", table, err)
	}
	t.Cleanup(func() {
		_, _ = client.DeleteTable(context.Background(), &dynamodb.DeleteTableInput{TableName: aws.String(table)})
	})
	log.reset()
	return table
}

// rawItems returns every item of the table, keyed by "pk|sk".
func (f *fixture) rawItems(t *testing.T) map[string]map[string]types.AttributeValue {
	t.Helper()
	out := make(map[string]map[string]types.AttributeValue)
	in := &dynamodb.ScanInput{TableName: aws.String(f.table), ConsistentRead: aws.Bool(true)}
	for {
		page, err := f.client.Scan(t.Context(), in)
		if err != nil {
			t.Fatalf("Scan: %v", err)
		}
		for _, it := range page.Items {
			out[str(it, AttrPK)+"|"+str(it, AttrSK)] = it
		}
		if len(page.LastEvaluatedKey) == 0 {
			return out
		}
		in.ExclusiveStartKey = page.LastEvaluatedKey
	}
}

func TestStoreSuite(t *testing.T) {
	testenv.Dynalite(t) // skip early when dynalite is missing
	storetest.Run(t, func(t *testing.T) notify.ConnectionStore {
		return newFixture(t).store
	})
}

// attrs renders an item as name=TYPE:value, sorted, for comparison.
func attrs(item map[string]types.AttributeValue) []string {
	var out []string
	for name, v := range item {
		switch v := v.(type) {
		case *types.AttributeValueMemberS:
			out = append(out, name+"=S:"+v.Value)
		case *types.AttributeValueMemberN:
			out = append(out, name+"=N:"+v.Value)
		case *types.AttributeValueMemberL:
			var l []string
			for _, e := range v.Value {
				if s, ok := e.(*types.AttributeValueMemberS); ok {
					l = append(l, "S:"+s.Value)
				} else {
					l = append(l, fmt.Sprintf("%T", e))
				}
			}
			out = append(out, name+"=L:["+strings.Join(l, ",")+"]")
		default:
			out = append(out, fmt.Sprintf("%s=%T", name, v))
		}
	}
	slices.Sort(out)
	return out
}

func TestItemLayout(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	connectedAt := time.UnixMilli(1764064800123).Add(456 * time.Microsecond)
	f.store.now = func() time.Time { return connectedAt }
	expiresAt := time.Unix(1764072000, 900_000_000)
	with := notify.Connection{ID: "Abc123=", UserID: "42", Groups: []string{"team:plant-3", "user:43", "team:plant-3"},
		ConnectedAt: connectedAt, ExpiresAt: expiresAt, TokenExpiresAt: time.Unix(1764068400, 500_000_000)}
	without := notify.Connection{ID: "Xyz789=", UserID: "43", ConnectedAt: connectedAt, ExpiresAt: expiresAt}
	for _, c := range []notify.Connection{with, without} {
		if err := f.store.SaveConnection(t.Context(), c); err != nil {
			t.Fatalf("SaveConnection: %v", err)
		}
	}

	// The connection item is written last, after the memberships.
	names := f.rec.names()
	if len(names) == 0 || names[len(names)-1] != "PutItem" || count[*dynamodb.PutItemInput](f.rec) != 2 {
		t.Errorf("operations = %q, want memberships by BatchWriteItem then one PutItem per connection", names)
	}
	if err := f.store.RevokeUser(t.Context(), "42", time.Unix(1764064000, 0), time.Unix(1764668800, 0)); err != nil {
		t.Fatalf("RevokeUser: %v", err)
	}

	const ms, sec, tok = "N:1764064800123", "N:1764072000", "tokenExpiresAt=N:1764068400"
	want := map[string][]string{
		"conn#Abc123=|conn": {"connectedAt=" + ms, "connectionId=S:Abc123=", "expiresAt=" + sec,
			"groups=L:[S:team:plant-3,S:user:43]", "pk=S:conn#Abc123=", "sk=S:conn", tok, "userId=S:42"},
		"user#42|Abc123=": {"connectedAt=" + ms, "expiresAt=" + sec, "pk=S:user#42", "sk=S:Abc123=", tok, "userId=S:42"},
		// Abc123= is in shard 06 (see TestGroupShardIsStable).
		"group#team:plant-3#06|Abc123=": {"connectedAt=" + ms, "expiresAt=" + sec, "pk=S:group#team:plant-3#06", "sk=S:Abc123=", tok, "userId=S:42"},
		"group#user:43#06|Abc123=":      {"connectedAt=" + ms, "expiresAt=" + sec, "pk=S:group#user:43#06", "sk=S:Abc123=", tok, "userId=S:42"},
		"conn#Xyz789=|conn": {"connectedAt=" + ms, "connectionId=S:Xyz789=", "expiresAt=" + sec,
			"pk=S:conn#Xyz789=", "sk=S:conn", "userId=S:43"},
		"user#43|Xyz789=":    {"connectedAt=" + ms, "expiresAt=" + sec, "pk=S:user#43", "sk=S:Xyz789=", "userId=S:43"},
		"revoked#42|revoked": {"expiresAt=N:1764668800", "pk=S:revoked#42", "revokedAt=N:1764064000", "sk=S:revoked"},
	}
	got := f.rawItems(t)
	for key, w := range want {
		item, ok := got[key]
		if !ok {
			t.Errorf("item %s missing", key)
			continue
		}
		if a := attrs(item); !slices.Equal(a, w) {
			t.Errorf("item %s:\n got %q\nwant %q", key, a, w)
		}
	}
	for key := range got {
		if _, ok := want[key]; !ok {
			t.Errorf("unexpected item %s: %q", key, attrs(got[key]))
		}
	}

	// And reads give the connection back.
	c, err := f.store.GetConnection(t.Context(), with.ID)
	if err != nil {
		t.Fatalf("GetConnection: %v", err)
	}
	if c.UserID != "42" || !slices.Equal(c.Groups, []string{"team:plant-3", "user:43"}) ||
		c.ConnectedAt.UnixMilli() != 1764064800123 || c.ExpiresAt.Unix() != 1764072000 {
		t.Errorf("GetConnection = %+v", c)
	}
	for _, op := range f.rec.inputs() {
		if in, ok := op.(*dynamodb.GetItemInput); ok && !aws.ToBool(in.ConsistentRead) {
			t.Error("GetConnection does not read consistently")
		}
	}
}

func TestBatchWritesInChunksOf25(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	groups := make([]string, notify.MaxGroupsPerConnection)
	for i := range groups {
		groups[i] = fmt.Sprintf("g%02d", i)
	}
	c := notify.Connection{ID: "big=", UserID: "42", Groups: groups, ConnectedAt: time.Now(), ExpiresAt: time.Now().Add(time.Hour)}
	if err := f.store.SaveConnection(t.Context(), c); err != nil {
		t.Fatalf("SaveConnection: %v", err)
	}
	var sizes []int
	for _, op := range f.rec.inputs() {
		if in, ok := op.(*dynamodb.BatchWriteItemInput); ok {
			sizes = append(sizes, len(in.RequestItems[f.table]))
		}
	}
	if !slices.Equal(sizes, []int{25, 25, 1}) {
		t.Errorf("BatchWriteItem sizes = %v, want [25 25 1]", sizes)
	}
	if n := len(f.rawItems(t)); n != 52 {
		t.Errorf("%d items stored, want 52", n)
	}

	f.rec.reset()
	if err := f.store.DeleteConnection(t.Context(), c.ID); err != nil {
		t.Fatalf("DeleteConnection: %v", err)
	}
	if names := f.rec.names(); !slices.Equal(names, []string{"GetItem", "BatchWriteItem", "BatchWriteItem", "BatchWriteItem", "DeleteItem"}) {
		t.Errorf("DeleteConnection operations = %q", names)
	}
	if n := len(f.rawItems(t)); n != 0 {
		t.Errorf("%d items left after DeleteConnection, want 0", n)
	}
}

func TestFanOutOperations(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	now := time.Now()
	for i := range 6 {
		c := notify.Connection{ID: fmt.Sprintf("c%d=", i), UserID: fmt.Sprintf("u%d", i%3),
			Groups: []string{fmt.Sprintf("g%d", i%2)}, ConnectedAt: now, ExpiresAt: now.Add(time.Hour)}
		if err := f.store.SaveConnection(t.Context(), c); err != nil {
			t.Fatal(err)
		}
	}
	walk := func(target notify.Target) []string {
		t.Helper()
		f.rec.reset()
		var ids []string
		err := f.store.ForEachTarget(t.Context(), target, func(page []notify.Connection) error {
			for _, c := range page {
				ids = append(ids, c.ID)
			}
			return nil
		})
		if err != nil {
			t.Fatalf("ForEachTarget(%+v): %v", target, err)
		}
		slices.Sort(ids)
		return ids
	}

	t.Run("UsersAndGroupsQuery", func(t *testing.T) {
		ids := walk(notify.Target{Users: []string{"u0", "u1", "u0"}, Groups: []string{"g1"}})
		if want := []string{"c0=", "c1=", "c1=", "c3=", "c3=", "c4=", "c5="}; !slices.Equal(ids, want) {
			t.Errorf("ids = %q, want %q", ids, want)
		}
		var pks []string
		for _, op := range f.rec.inputs() {
			in, ok := op.(*dynamodb.QueryInput)
			if !ok {
				t.Errorf("unexpected operation %T", op)
				continue
			}
			for _, v := range in.ExpressionAttributeValues {
				if s, ok := v.(*types.AttributeValueMemberS); ok { // the partition key; :now is a number
					pks = append(pks, s.Value)
				}
			}
			if in.IndexName != nil || aws.ToString(in.FilterExpression) == "" || !aws.ToBool(in.ConsistentRead) {
				t.Errorf("Query on index %q with filter %q, consistent %v; want the table, a filter, consistent",
					aws.ToString(in.IndexName), aws.ToString(in.FilterExpression), aws.ToBool(in.ConsistentRead))
			}
		}
		slices.Sort(pks)
		var want []string
		for shard := range groupShards {
			want = append(want, groupPK("g1", shard))
		}
		want = append(want, "user#u0", "user#u1")
		if !slices.Equal(pks, want) {
			t.Errorf("queried %q, want %q (one Query per distinct key: each shard of g1, each user)", pks, want)
		}
	})

	t.Run("BroadcastScansIndexOnly", func(t *testing.T) {
		ids := walk(notify.Target{Broadcast: true, Users: []string{"u0"}, Groups: []string{"g0"}})
		if want := []string{"c0=", "c1=", "c2=", "c3=", "c4=", "c5="}; !slices.Equal(ids, want) {
			t.Errorf("ids = %q, want each connection once: %q", ids, want)
		}
		var segments []int32
		for _, op := range f.rec.inputs() {
			in, ok := op.(*dynamodb.ScanInput)
			if !ok {
				t.Errorf("unexpected operation %T in a broadcast", op)
				continue
			}
			if aws.ToString(in.IndexName) != IndexByConnection || aws.ToInt32(in.TotalSegments) != scanSegments {
				t.Errorf("Scan of index %q with %d segments", aws.ToString(in.IndexName), aws.ToInt32(in.TotalSegments))
			}
			segments = append(segments, aws.ToInt32(in.Segment))
		}
		slices.Sort(segments)
		if want := []int32{0, 1, 2, 3}; !slices.Equal(segments, want) {
			t.Errorf("segments scanned = %v, want %v", segments, want)
		}
	})

	t.Run("NoTarget", func(t *testing.T) {
		if ids := walk(notify.Target{}); len(ids) != 0 || len(f.rec.inputs()) != 0 {
			t.Errorf("empty target: ids %q, operations %q", ids, f.rec.names())
		}
	})
}

// putRaw writes an item directly, bypassing the store.
func (f *fixture) putRaw(t *testing.T, item map[string]types.AttributeValue) {
	t.Helper()
	if _, err := f.client.PutItem(t.Context(), &dynamodb.PutItemInput{TableName: aws.String(f.table), Item: item}); err != nil {
		t.Fatalf("PutItem: %v", err)
	}
}

func TestPaginationOverOneMegabyte(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	// 40 items of 200 KB in one shard of a group and as connection items:
	// about 8 MB each way, so that shard's Query and each Scan segment need
	// several pages. (Reads do not care which shard holds an item.)
	pad := &types.AttributeValueMemberS{Value: strings.Repeat("p", 200_000)}
	now := time.Now()
	exp := n(now.Add(time.Hour).Unix())
	const items = 40
	for i := range items {
		id := fmt.Sprintf("c%02d=", i)
		f.putRaw(t, map[string]types.AttributeValue{
			AttrPK: &types.AttributeValueMemberS{Value: groupPK("big", 3)}, AttrSK: &types.AttributeValueMemberS{Value: id},
			AttrUserID: &types.AttributeValueMemberS{Value: "u"}, AttrConnectedAt: n(now.UnixMilli()), AttrExpiresAt: exp,
			"pad": pad,
		})
		f.putRaw(t, map[string]types.AttributeValue{
			AttrPK: &types.AttributeValueMemberS{Value: connKey(id).PK}, AttrSK: &types.AttributeValueMemberS{Value: connSK},
			AttrConnectionID: &types.AttributeValueMemberS{Value: id},
			AttrUserID:       &types.AttributeValueMemberS{Value: "u"}, AttrConnectedAt: n(now.UnixMilli()), AttrExpiresAt: exp,
			"pad": pad,
		})
	}
	for _, tc := range []struct {
		name   string
		target notify.Target
		minOps int
	}{
		{"Query", notify.Target{Groups: []string{"big"}}, groupShards - 1 + 5},
		{"Scan", notify.Target{Broadcast: true}, scanSegments + 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f.rec.reset()
			seen := make(map[string]int)
			pages := 0
			err := f.store.ForEachTarget(t.Context(), tc.target, func(page []notify.Connection) error {
				pages++
				for _, c := range page {
					seen[c.ID]++
				}
				return nil
			})
			if err != nil {
				t.Fatalf("ForEachTarget: %v", err)
			}
			if len(seen) != items {
				t.Errorf("saw %d connections, want %d", len(seen), items)
			}
			for id, k := range seen {
				if k != 1 {
					t.Errorf("%s seen %d times", id, k)
				}
			}
			if ops := len(f.rec.inputs()); ops < tc.minOps {
				t.Errorf("%d requests, want at least %d (pagination)", ops, tc.minOps)
			}
			t.Logf("%d pages in %d requests", pages, len(f.rec.inputs()))
		})
	}
}

func TestDeleteGoneConnectionCondition(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	connectedAt := time.UnixMilli(time.Now().Add(-time.Minute).UnixMilli())
	c := notify.Connection{ID: "gone=", UserID: "42", Groups: []string{"g1", "g2"}, ConnectedAt: connectedAt, ExpiresAt: time.Now().Add(time.Hour)}
	if err := f.store.SaveConnection(t.Context(), c); err != nil {
		t.Fatal(err)
	}

	// At or before connectedAt: the condition fails and nothing is removed.
	for _, cutoff := range []time.Time{connectedAt.Add(-time.Second), connectedAt, connectedAt.Add(999 * time.Microsecond)} {
		f.rec.reset()
		removed, err := f.store.DeleteGoneConnection(t.Context(), c.ID, cutoff)
		if err != nil || removed {
			t.Errorf("DeleteGoneConnection(cutoff %v) = %v, %v; want false, nil", cutoff.Sub(connectedAt), removed, err)
		}
		if names := f.rec.names(); !slices.Equal(names, []string{"DeleteItem"}) {
			t.Errorf("operations = %q, want one conditional DeleteItem", names)
		}
		if n := len(f.rawItems(t)); n != 4 {
			t.Errorf("%d items stored after a refused delete, want 4", n)
		}
	}

	f.rec.reset()
	removed, err := f.store.DeleteGoneConnection(t.Context(), c.ID, connectedAt.Add(time.Millisecond))
	if err != nil || !removed {
		t.Fatalf("DeleteGoneConnection(1 ms after) = %v, %v; want true, nil", removed, err)
	}
	ops := f.rec.inputs()
	del, ok := ops[0].(*dynamodb.DeleteItemInput)
	if !ok || aws.ToString(del.ConditionExpression) == "" || del.ReturnValues != types.ReturnValueAllOld {
		t.Errorf("first operation %+v, want a conditional DeleteItem returning ALL_OLD", ops[0])
	}
	if names := f.rec.names(); !slices.Equal(names, []string{"DeleteItem", "BatchWriteItem"}) {
		t.Errorf("operations = %q, want DeleteItem then BatchWriteItem (no GetItem)", names)
	}
	if items := f.rawItems(t); len(items) != 0 {
		t.Errorf("items left: %v", items)
	}
}

func TestExpiredIsNotFoundWithoutTTL(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	now := time.Now()
	f.store.now = func() time.Time { return now }
	c := notify.Connection{ID: "e=", UserID: "42", Groups: []string{"g"}, ConnectedAt: now.Add(-time.Hour), ExpiresAt: now.Add(time.Second)}
	if err := f.store.SaveConnection(t.Context(), c); err != nil {
		t.Fatal(err)
	}
	if _, err := f.store.GetConnection(t.Context(), c.ID); err != nil {
		t.Fatalf("GetConnection before expiry: %v", err)
	}
	// Exactly at expiresAt (in seconds) it is expired, though still stored.
	f.store.now = func() time.Time { return time.Unix(c.ExpiresAt.Unix(), 0) }
	if _, err := f.store.GetConnection(t.Context(), c.ID); notify.ErrorCode(err) != notify.ENOTFOUND {
		t.Errorf("GetConnection at expiry: %v, want ENOTFOUND", err)
	}
	for _, target := range []notify.Target{{Users: []string{"42"}}, {Groups: []string{"g"}}, {Broadcast: true}} {
		err := f.store.ForEachTarget(t.Context(), target, func(page []notify.Connection) error {
			return fmt.Errorf("got %d expired connections", len(page))
		})
		if err != nil {
			t.Errorf("ForEachTarget(%+v): %v", target, err)
		}
	}
	if n := len(f.rawItems(t)); n != 3 {
		t.Errorf("%d items stored, want 3 (dynalite has no TTL)", n)
	}
}

func TestErrorsAreInternal(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	s := New(f.client, "no-such-table")
	c := notify.Connection{ID: "x=", UserID: "42", Groups: []string{"g"}, ConnectedAt: time.Now(), ExpiresAt: time.Now().Add(time.Hour)}
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
	check("SaveConnection", s.SaveConnection(t.Context(), c))
	_, err := s.GetConnection(t.Context(), c.ID)
	check("GetConnection", err)
	check("DeleteConnection", s.DeleteConnection(t.Context(), c.ID))
	_, err = s.DeleteGoneConnection(t.Context(), c.ID, time.Now())
	check("DeleteGoneConnection", err)
	check("ForEachTarget", s.ForEachTarget(t.Context(), notify.Target{Users: []string{"42"}}, func([]notify.Connection) error { return nil }))
	check("ForEachTarget broadcast", s.ForEachTarget(t.Context(), notify.Target{Broadcast: true}, func([]notify.Connection) error { return nil }))

	if err := f.store.SaveConnection(t.Context(), notify.Connection{UserID: "42"}); notify.ErrorCode(err) != notify.EINVALID {
		t.Errorf("SaveConnection without id: %v, want EINVALID", err)
	}
}

func TestCreateConnectionsTable(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	// A second call on an existing table is fine.
	if err := CreateConnectionsTable(t.Context(), f.client, f.table); err != nil {
		t.Fatalf("CreateConnectionsTable again: %v", err)
	}
	out, err := f.client.DescribeTable(t.Context(), &dynamodb.DescribeTableInput{TableName: aws.String(f.table)})
	if err != nil {
		t.Fatal(err)
	}
	tbl := out.Table
	keys := func(ks []types.KeySchemaElement) string {
		var s []string
		for _, k := range ks {
			s = append(s, aws.ToString(k.AttributeName)+":"+string(k.KeyType))
		}
		return strings.Join(s, ",")
	}
	if got := keys(tbl.KeySchema); got != "pk:HASH,sk:RANGE" {
		t.Errorf("key schema %s", got)
	}
	if len(tbl.GlobalSecondaryIndexes) != 1 {
		t.Fatalf("%d GSIs, want 1", len(tbl.GlobalSecondaryIndexes))
	}
	g := tbl.GlobalSecondaryIndexes[0]
	if aws.ToString(g.IndexName) != IndexByConnection || keys(g.KeySchema) != "connectionId:HASH" ||
		g.Projection == nil || g.Projection.ProjectionType != types.ProjectionTypeAll {
		t.Errorf("GSI %s %s %+v", aws.ToString(g.IndexName), keys(g.KeySchema), g.Projection)
	}
	if tbl.BillingModeSummary == nil || tbl.BillingModeSummary.BillingMode != types.BillingModePayPerRequest {
		t.Errorf("billing mode %+v, want PAY_PER_REQUEST", tbl.BillingModeSummary)
	}
	if tbl.TableStatus != types.TableStatusActive {
		t.Errorf("status %s", tbl.TableStatus)
	}
}

package dynamo

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"hash/fnv"
	"maps"
	"math/rand/v2"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
	"golang.org/x/sync/errgroup"

	"github.com/workorders/notify/internal/notify"
	"github.com/workorders/notify/internal/testenv"
)

// TestGroupShardIsStable pins the shard function: it is part of the stored
// schema, and a change would orphan every group item already written.
func TestGroupShardIsStable(t *testing.T) {
	for id, want := range map[string]int{
		"Abc123=": 6, "Xyz789=": 10, "c=": 4, "gone=": 11, "L0SM9cOFvHcCIhw=": 13, "a": 0, "": 9,
	} {
		if got := groupShard(id); got != want {
			t.Errorf("groupShard(%q) = %d, want %d", id, got, want)
		}
	}
	// It is FNV-1a as hash/fnv computes it, folded, modulo groupShards.
	for i := range 1000 {
		id := fmt.Sprintf("conn-%d=", i)
		h := fnv.New32a()
		h.Write([]byte(id))
		sum := h.Sum32()
		if got, want := groupShard(id), int((sum^sum>>16)%groupShards); got != want {
			t.Fatalf("groupShard(%q) = %d, want %d", id, got, want)
		}
	}

	// The fixed-width suffix maps a pk back to one (group, shard), even for
	// names holding '#' or ending like a suffix.
	for _, group := range []string{"g", "team:plant-3", "a#01", "x#", "#", "12"} {
		for shard := range groupShards {
			pk := groupPK(group, shard)
			if want := fmt.Sprintf("group#%s#%02d", group, shard); pk != want {
				t.Fatalf("groupPK(%q, %d) = %q, want %q", group, shard, pk, want)
			}
			g, s := pk[len("group#"):len(pk)-3], pk[len(pk)-2:]
			if g != group || s != fmt.Sprintf("%02d", shard) || pk[len(pk)-3] != '#' {
				t.Errorf("%q parses as group %q shard %q", pk, g, s)
			}
		}
	}
}

func TestShardedMembershipsAreDeleted(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	now := time.UnixMilli(time.Now().UnixMilli())
	a := notify.Connection{ID: "L0SM9cOFvHcCIhw=", UserID: "42", Groups: []string{"team:plant-3", "ops"},
		ConnectedAt: now.Add(-time.Minute), ExpiresAt: now.Add(time.Hour)}
	b := notify.Connection{ID: "Xyz789=", UserID: "43", Groups: []string{"team:plant-3", "ops"},
		ConnectedAt: now.Add(-time.Minute), ExpiresAt: now.Add(time.Hour)}
	for _, c := range []notify.Connection{a, b} {
		if err := f.store.SaveConnection(t.Context(), c); err != nil {
			t.Fatalf("SaveConnection(%s): %v", c.ID, err)
		}
	}
	keys := slices.Sorted(maps.Keys(f.rawItems(t)))
	want := []string{
		"conn#L0SM9cOFvHcCIhw=|conn", "conn#Xyz789=|conn",
		"group#ops#10|Xyz789=", "group#ops#13|L0SM9cOFvHcCIhw=",
		"group#team:plant-3#10|Xyz789=", "group#team:plant-3#13|L0SM9cOFvHcCIhw=",
		"user#42|L0SM9cOFvHcCIhw=", "user#43|Xyz789=",
	}
	if !slices.Equal(keys, want) {
		t.Fatalf("items stored:\n got %q\nwant %q", keys, want)
	}

	if err := f.store.DeleteConnection(t.Context(), a.ID); err != nil {
		t.Fatalf("DeleteConnection: %v", err)
	}
	removed, err := f.store.DeleteGoneConnection(t.Context(), b.ID, now)
	if err != nil || !removed {
		t.Fatalf("DeleteGoneConnection = %v, %v; want true, nil", removed, err)
	}
	if items := f.rawItems(t); len(items) != 0 {
		t.Errorf("items left after deleting both connections: %q", slices.Sorted(maps.Keys(items)))
	}
}

// TestGroupWalkCoversEveryShard walks a group whose connections fill every
// shard, with pages of 2 items so that each shard's Query pages too.
func TestGroupWalkCoversEveryShard(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	f.store.pageLimit = 2
	const conns = 160
	now := time.Now()
	perShard := make(map[int]int)
	var cs []notify.Connection
	for i := range conns {
		c := notify.Connection{ID: fmt.Sprintf("w%03d=", i), UserID: fmt.Sprintf("u%d", i%7),
			Groups: []string{"walk", fmt.Sprintf("other%d", i%3)}, ConnectedAt: now, ExpiresAt: now.Add(time.Hour)}
		cs = append(cs, c)
		perShard[groupShard(c.ID)]++
	}
	for shard := range groupShards {
		if perShard[shard] < 3 {
			t.Fatalf("shard %d holds %d connections, want at least 3 (pick other ids): %v", shard, perShard[shard], perShard)
		}
	}
	saveAll(t, f.store, cs, 4)
	// An expired member is filtered in whichever shard it sits.
	expired := notify.Connection{ID: "expired=", UserID: "u0", Groups: []string{"walk"},
		ConnectedAt: now.Add(-3 * time.Hour), ExpiresAt: now.Add(-time.Hour)}
	saveAll(t, f.store, []notify.Connection{expired}, 1)

	f.rec.reset()
	var busy, overlap atomic.Bool
	seen := make(map[string]int)
	err := f.store.ForEachTarget(t.Context(), notify.Target{Groups: []string{"walk"}}, func(page []notify.Connection) error {
		if !busy.CompareAndSwap(false, true) {
			overlap.Store(true)
		}
		defer busy.Store(false)
		for _, c := range page {
			seen[c.ID]++
			if c.UserID == "" || c.ConnectedAt.IsZero() {
				t.Errorf("connection %+v lacks its user or connection time", c)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatalf("ForEachTarget: %v", err)
	}
	if overlap.Load() {
		t.Error("fn was called concurrently")
	}
	for _, c := range cs {
		if seen[c.ID] != 1 {
			t.Errorf("%s seen %d times, want once", c.ID, seen[c.ID])
		}
	}
	if len(seen) != conns {
		t.Errorf("saw %d connections, want %d (expired ones or other groups' included?)", len(seen), conns)
	}

	queries := make(map[string]int) // per pk
	for _, op := range f.rec.inputs() {
		in, ok := op.(*dynamodb.QueryInput)
		if !ok {
			t.Errorf("unexpected operation %T", op)
			continue
		}
		if aws.ToInt32(in.Limit) != 2 {
			t.Errorf("Query Limit %d, want the store's page limit 2", aws.ToInt32(in.Limit))
		}
		for _, v := range in.ExpressionAttributeValues {
			if s, ok := v.(*types.AttributeValueMemberS); ok {
				queries[s.Value]++
			}
		}
	}
	if len(queries) != groupShards {
		t.Errorf("queried %d keys, want the %d shards: %v", len(queries), groupShards, queries)
	}
	for shard := range groupShards {
		pk := groupPK("walk", shard)
		// A shard of n items in pages of 2 takes n/2+1 Queries (the last
		// page may be empty; the expired item adds one item to one shard).
		if got, want := queries[pk], perShard[shard]/2+1; got < want {
			t.Errorf("%s: %d Queries, want at least %d (pages of 2 of %d items)", pk, got, want, perShard[shard])
		}
	}
	t.Logf("%d connections over %d shards (%v) in %d Queries", conns, groupShards, perShard, len(f.rec.inputs()))
}

// TestFanOutStartsBeforeLastShard holds one shard's Query until fn has had
// the pages of all the others: pages flow as they come, not once every shard
// has answered (that would never happen here: the walk would time out).
func TestFanOutStartsBeforeLastShard(t *testing.T) {
	slow := groupPK("g", 0) // among the first started
	release := make(chan struct{})
	f := &fakeAPI{query: func(ctx context.Context, in *dynamodb.QueryInput) (*dynamodb.QueryOutput, error) {
		var pk string
		for _, v := range in.ExpressionAttributeValues {
			if s, ok := v.(*types.AttributeValueMemberS); ok {
				pk = s.Value
			}
		}
		if pk == slow {
			select {
			case <-release:
			case <-ctx.Done():
				return nil, ctx.Err()
			}
		}
		item := map[string]types.AttributeValue{
			AttrSK: sv("c-" + pk), AttrUserID: sv("42"), AttrConnectedAt: n(1), AttrExpiresAt: n(time.Now().Add(time.Hour).Unix()),
		}
		return &dynamodb.QueryOutput{Items: []map[string]types.AttributeValue{item}}, nil
	}}
	s, _ := newFakeStore(f)
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	pages, beforeSlow := 0, -1
	err := s.ForEachTarget(ctx, notify.Target{Groups: []string{"g"}}, func(page []notify.Connection) error {
		pages++
		if page[0].ID == "c-"+slow {
			beforeSlow = pages - 1
		} else if pages == groupShards-1 {
			close(release)
		}
		return nil
	})
	if err != nil {
		t.Fatalf("ForEachTarget: %v (did it wait for every shard before calling fn?)", err)
	}
	if pages != groupShards || beforeSlow != groupShards-1 {
		t.Errorf("%d pages, %d before the held shard's; want %d, %d", pages, beforeSlow, groupShards, groupShards-1)
	}
}

// saveAll saves cs through s, workers at a time.
func saveAll(t *testing.T, s *Store, cs []notify.Connection, workers int) {
	t.Helper()
	var g errgroup.Group
	g.SetLimit(workers)
	for _, c := range cs {
		g.Go(func() error { return s.SaveConnection(t.Context(), c) })
	}
	if err := g.Wait(); err != nil {
		t.Fatalf("SaveConnection: %v", err)
	}
}

// writeCounter counts the write requests of each DynamoDB call per
// partition key (PutItem, DeleteItem and UpdateItem one each, BatchWriteItem
// one per request it holds), as a testenv.Proxy observer.
type writeCounter struct {
	mu    sync.Mutex
	perPK map[string]int
}

// newWriteCounter starts a proxy to dynalite that counts the writes through
// it; the store under test uses the proxy's URL.
func newWriteCounter(t *testing.T) (*writeCounter, string) {
	c := &writeCounter{perPK: make(map[string]int)}
	proxy := testenv.NewProxy(t, testenv.Dynalite(t))
	proxy.Observe(func(op string, body []byte) {
		if err := c.count(op, body); err != nil {
			t.Error(err)
		}
	})
	return c, proxy.URL()
}

// wireItem is an item or key as DynamoDB's JSON protocol carries it, with
// only string attributes read.
type wireItem map[string]struct{ S string }

func (c *writeCounter) count(op string, body []byte) error {
	var in struct {
		Item, Key    wireItem
		RequestItems map[string][]struct {
			PutRequest    *struct{ Item wireItem }
			DeleteRequest *struct{ Key wireItem }
		}
	}
	var pks []string
	switch op {
	case "PutItem", "DeleteItem", "UpdateItem", "BatchWriteItem":
		if err := json.Unmarshal(body, &in); err != nil {
			return fmt.Errorf("decoding %s: %w", op, err)
		}
	}
	switch op {
	case "PutItem":
		pks = append(pks, in.Item[AttrPK].S)
	case "DeleteItem", "UpdateItem":
		pks = append(pks, in.Key[AttrPK].S)
	case "BatchWriteItem":
		for _, reqs := range in.RequestItems {
			for _, r := range reqs {
				switch {
				case r.PutRequest != nil:
					pks = append(pks, r.PutRequest.Item[AttrPK].S)
				case r.DeleteRequest != nil:
					pks = append(pks, r.DeleteRequest.Key[AttrPK].S)
				}
			}
		}
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, pk := range pks {
		c.perPK[pk]++
	}
	return nil
}

// counts returns the writes counted per partition key so far.
func (c *writeCounter) counts() map[string]int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return maps.Clone(c.perPK)
}

// busiest returns the key with the most writes in counts, and their number.
func busiest(counts map[string]int) (string, int) {
	var top string
	for pk, k := range counts {
		if k > counts[top] || (k == counts[top] && pk < top) {
			top = pk
		}
	}
	return top, counts[top]
}

// TestReconnectStorm writes 5,000 connections of distinct users into one
// group, then deletes them, counting the write requests per partition key on
// the wire: the busiest key must stay under DynamoDB's 1,000 writes a second
// per key when the storm comes at 5,000 connects (and as many disconnects) a
// second. It asserts counts, not durations.
func TestReconnectStorm(t *testing.T) {
	if testing.Short() {
		t.Skip("writes 5,000 connections")
	}
	t.Parallel()
	const (
		conns   = 5000
		group   = "storm"
		workers = 8
	)
	counter, endpoint := newWriteCounter(t)
	client := dynamodb.NewFromConfig(testenv.AWSConfig(t, endpoint))
	table := freshTable(t, client, &callLog{}, "storm", CreateConnectionsTable)
	store := New(client, table)

	// API Gateway-like ids (16 characters of base64), from a fixed seed so
	// that the counts are the same on every run.
	rng := rand.NewChaCha8([32]byte{'s', 't', 'o', 'r', 'm'})
	now := time.UnixMilli(time.Now().UnixMilli())
	cs := make([]notify.Connection, conns)
	for i := range cs {
		var b [11]byte
		_, _ = rng.Read(b[:])
		cs[i] = notify.Connection{ID: base64.StdEncoding.EncodeToString(b[:]), UserID: fmt.Sprintf("storm-user-%04d", i),
			Groups: []string{group}, ConnectedAt: now.Add(-time.Minute), ExpiresAt: now.Add(2 * time.Hour)}
	}
	saveAll(t, store, cs, workers)

	shardCounts := func(counts map[string]int) (map[string]int, int) {
		shards, total := make(map[string]int), 0
		for shard := range groupShards {
			pk := groupPK(group, shard)
			shards[pk] = counts[pk]
			total += counts[pk]
		}
		return shards, total
	}
	connects := counter.counts()
	shards, total := shardCounts(connects)
	if total != conns {
		t.Errorf("%d writes to the group's shards, want %d (one per connection)", total, conns)
	}
	for pk, k := range shards {
		if k == 0 {
			t.Errorf("shard %s got no connection", pk)
		}
	}
	if len(connects) != 2*conns+groupShards {
		t.Errorf("%d keys written, want %d (a connection and a user key per connection, and the %d shards)",
			len(connects), 2*conns+groupShards, groupShards)
	}
	pk, top := busiest(connects)
	// At 5,000 connects a second, 20% is 1,000 writes a second on one key.
	if top > conns/5 {
		t.Errorf("busiest key %s got %d of %d connects (%.1f%%), want at most 20%%", pk, top, conns, 100*float64(top)/conns)
	}
	low := slices.Min(slices.Collect(maps.Values(shards)))
	t.Logf("connects: %d into group %q: busiest key %s %d (%.1f%%), quietest shard %d, mean %.1f per shard",
		conns, group, pk, top, 100*float64(top)/conns, low, float64(total)/groupShards)

	// The storm's other half: every connection's $disconnect.
	var g errgroup.Group
	g.SetLimit(workers)
	for i, c := range cs {
		g.Go(func() error {
			if i%2 == 0 {
				return store.DeleteConnection(t.Context(), c.ID)
			}
			removed, err := store.DeleteGoneConnection(t.Context(), c.ID, now)
			if err == nil && !removed {
				err = fmt.Errorf("DeleteGoneConnection(%s) removed nothing", c.ID)
			}
			return err
		})
	}
	if err := g.Wait(); err != nil {
		t.Fatalf("deleting: %v", err)
	}
	shards, total = shardCounts(counter.counts())
	if total != 2*conns {
		t.Errorf("%d writes to the group's shards, want %d (a put and a delete per connection)", total, 2*conns)
	}
	pk, top = busiest(shards)
	if top > 2*conns/10 {
		t.Errorf("busiest shard %s got %d of %d connects and deletes, want at most %d", pk, top, 2*conns, 2*conns/10)
	}
	t.Logf("connects+deletes: busiest shard %s %d of %d (%.1f%%), mean %.1f per shard",
		pk, top, total, 100*float64(top)/float64(total), float64(total)/groupShards)

	out, err := client.Scan(t.Context(), &dynamodb.ScanInput{TableName: aws.String(table), ConsistentRead: aws.Bool(true), Select: types.SelectCount})
	if err != nil {
		t.Fatalf("Scan: %v", err)
	}
	if out.Count != 0 {
		t.Errorf("%d items left after deleting every connection", out.Count)
	}
}

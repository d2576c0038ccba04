package dynamo

import (
	"context"
	"errors"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/workorders/notify/internal/notify"
)

// fakeAPI is an api whose operations are functions set by each test; an
// unset operation fails the call.
type fakeAPI struct {
	getItem        func(*dynamodb.GetItemInput) (*dynamodb.GetItemOutput, error)
	putItem        func(*dynamodb.PutItemInput) (*dynamodb.PutItemOutput, error)
	deleteItem     func(*dynamodb.DeleteItemInput) (*dynamodb.DeleteItemOutput, error)
	batchWriteItem func(*dynamodb.BatchWriteItemInput) (*dynamodb.BatchWriteItemOutput, error)
	query          func(context.Context, *dynamodb.QueryInput) (*dynamodb.QueryOutput, error)
	scan           func(context.Context, *dynamodb.ScanInput) (*dynamodb.ScanOutput, error)
	updateItem     func(*dynamodb.UpdateItemInput) (*dynamodb.UpdateItemOutput, error)
}

var errUnset = errors.New("operation not expected")

func (f *fakeAPI) GetItem(_ context.Context, in *dynamodb.GetItemInput, _ ...func(*dynamodb.Options)) (*dynamodb.GetItemOutput, error) {
	if f.getItem == nil {
		return nil, errUnset
	}
	return f.getItem(in)
}

func (f *fakeAPI) PutItem(_ context.Context, in *dynamodb.PutItemInput, _ ...func(*dynamodb.Options)) (*dynamodb.PutItemOutput, error) {
	if f.putItem == nil {
		return nil, errUnset
	}
	return f.putItem(in)
}

func (f *fakeAPI) DeleteItem(_ context.Context, in *dynamodb.DeleteItemInput, _ ...func(*dynamodb.Options)) (*dynamodb.DeleteItemOutput, error) {
	if f.deleteItem == nil {
		return nil, errUnset
	}
	return f.deleteItem(in)
}

func (f *fakeAPI) BatchWriteItem(_ context.Context, in *dynamodb.BatchWriteItemInput, _ ...func(*dynamodb.Options)) (*dynamodb.BatchWriteItemOutput, error) {
	if f.batchWriteItem == nil {
		return nil, errUnset
	}
	return f.batchWriteItem(in)
}

func (f *fakeAPI) Query(ctx context.Context, in *dynamodb.QueryInput, _ ...func(*dynamodb.Options)) (*dynamodb.QueryOutput, error) {
	if f.query == nil {
		return nil, errUnset
	}
	return f.query(ctx, in)
}

func (f *fakeAPI) Scan(ctx context.Context, in *dynamodb.ScanInput, _ ...func(*dynamodb.Options)) (*dynamodb.ScanOutput, error) {
	if f.scan == nil {
		return nil, errUnset
	}
	return f.scan(ctx, in)
}

func (f *fakeAPI) UpdateItem(_ context.Context, in *dynamodb.UpdateItemInput, _ ...func(*dynamodb.Options)) (*dynamodb.UpdateItemOutput, error) {
	if f.updateItem == nil {
		return nil, errUnset
	}
	return f.updateItem(in)
}

func newFakeStore(f *fakeAPI) (*Store, *[]int) {
	s := newStore(f, "t")
	var backoffs []int
	s.w.backoff = func(n int) time.Duration {
		backoffs = append(backoffs, n)
		return time.Microsecond
	}
	return s, &backoffs
}

// sv returns a string attribute.
func sv(v string) *types.AttributeValueMemberS { return &types.AttributeValueMemberS{Value: v} }

// n returns a number attribute.
func n(v int64) *types.AttributeValueMemberN {
	return &types.AttributeValueMemberN{Value: strconv.FormatInt(v, 10)}
}

// str returns a string attribute of item, or "".
func str(item map[string]types.AttributeValue, name string) string {
	if v, ok := item[name].(*types.AttributeValueMemberS); ok {
		return v.Value
	}
	return ""
}

func testConn() notify.Connection {
	now := time.Now()
	return notify.Connection{ID: "c=", UserID: "42", Groups: []string{"g1", "g2", "g3"}, ConnectedAt: now, ExpiresAt: now.Add(time.Hour)}
}

func TestUnprocessedItemsAreRetried(t *testing.T) {
	var sizes []int
	f := &fakeAPI{
		batchWriteItem: func(in *dynamodb.BatchWriteItemInput) (*dynamodb.BatchWriteItemOutput, error) {
			reqs := in.RequestItems["t"]
			sizes = append(sizes, len(reqs))
			// Process one request per call, hand the rest back.
			return &dynamodb.BatchWriteItemOutput{UnprocessedItems: map[string][]types.WriteRequest{"t": reqs[1:]}}, nil
		},
		putItem: func(*dynamodb.PutItemInput) (*dynamodb.PutItemOutput, error) { return &dynamodb.PutItemOutput{}, nil },
	}
	s, backoffs := newFakeStore(f)
	if err := s.SaveConnection(t.Context(), testConn()); err != nil {
		t.Fatalf("SaveConnection: %v", err)
	}
	if want := []int{4, 3, 2, 1}; !equal(sizes, want) {
		t.Errorf("batch sizes %v, want %v", sizes, want)
	}
	if want := []int{1, 2, 3}; !equal(*backoffs, want) {
		t.Errorf("backoff attempts %v, want %v", *backoffs, want)
	}
}

func TestUnprocessedItemsGiveUp(t *testing.T) {
	var deletes, puts int
	f := &fakeAPI{
		batchWriteItem: func(in *dynamodb.BatchWriteItemInput) (*dynamodb.BatchWriteItemOutput, error) {
			reqs := in.RequestItems["t"]
			if reqs[0].DeleteRequest != nil {
				deletes += len(reqs)
				return &dynamodb.BatchWriteItemOutput{}, nil
			}
			return &dynamodb.BatchWriteItemOutput{UnprocessedItems: map[string][]types.WriteRequest{"t": reqs}}, nil
		},
		putItem: func(*dynamodb.PutItemInput) (*dynamodb.PutItemOutput, error) { puts++; return nil, nil },
		deleteItem: func(*dynamodb.DeleteItemInput) (*dynamodb.DeleteItemOutput, error) {
			return &dynamodb.DeleteItemOutput{}, nil
		},
	}
	s, backoffs := newFakeStore(f)
	err := s.SaveConnection(t.Context(), testConn())
	if notify.ErrorCode(err) != notify.EINTERNAL {
		t.Fatalf("SaveConnection = %v, want EINTERNAL", err)
	}
	if len(*backoffs) != maxBatchAttempts-1 {
		t.Errorf("%d retries, want %d", len(*backoffs), maxBatchAttempts-1)
	}
	if puts != 0 {
		t.Error("connection item written although its memberships were not")
	}
	if deletes != 4 {
		t.Errorf("cleanup deleted %d memberships, want 4", deletes)
	}
}

func TestDefaultBackoff(t *testing.T) {
	for n := 1; n <= 20; n++ {
		d := defaultBackoff(n)
		if d <= 0 || d > time.Second {
			t.Errorf("defaultBackoff(%d) = %v", n, d)
		}
	}
}

func TestSaveFailureCleansUp(t *testing.T) {
	var mu sync.Mutex
	var deleted []string
	f := &fakeAPI{
		batchWriteItem: func(in *dynamodb.BatchWriteItemInput) (*dynamodb.BatchWriteItemOutput, error) {
			mu.Lock()
			defer mu.Unlock()
			for _, r := range in.RequestItems["t"] {
				if r.DeleteRequest != nil {
					deleted = append(deleted, str(r.DeleteRequest.Key, AttrPK))
				}
			}
			return &dynamodb.BatchWriteItemOutput{}, nil
		},
		putItem: func(*dynamodb.PutItemInput) (*dynamodb.PutItemOutput, error) { return nil, errors.New("boom") },
		deleteItem: func(in *dynamodb.DeleteItemInput) (*dynamodb.DeleteItemOutput, error) {
			deleted = append(deleted, str(in.Key, AttrPK))
			return &dynamodb.DeleteItemOutput{}, nil
		},
	}
	s, _ := newFakeStore(f)
	err := s.SaveConnection(t.Context(), testConn())
	if notify.ErrorCode(err) != notify.EINTERNAL {
		t.Fatalf("SaveConnection = %v, want EINTERNAL", err)
	}
	// c= is in shard 04 (see TestGroupShardIsStable).
	if want := []string{"user#42", "group#g1#04", "group#g2#04", "group#g3#04", "conn#c="}; !equal(deleted, want) {
		t.Errorf("cleanup deleted %q, want %q", deleted, want)
	}
}

// endlessPages answers every Query and Scan with one item and a
// LastEvaluatedKey, counting calls in flight.
func endlessPages(inFlight *atomic.Int32) *fakeAPI {
	item := map[string]types.AttributeValue{
		AttrSK: &types.AttributeValueMemberS{Value: "c="}, AttrConnectionID: &types.AttributeValueMemberS{Value: "c="},
		AttrUserID: &types.AttributeValueMemberS{Value: "42"}, AttrConnectedAt: n(1), AttrExpiresAt: n(2),
	}
	page := func(ctx context.Context) ([]map[string]types.AttributeValue, map[string]types.AttributeValue, error) {
		inFlight.Add(1)
		defer inFlight.Add(-1)
		select {
		case <-ctx.Done():
			return nil, nil, ctx.Err()
		case <-time.After(time.Millisecond):
		}
		return []map[string]types.AttributeValue{item}, item, nil
	}
	return &fakeAPI{
		query: func(ctx context.Context, _ *dynamodb.QueryInput) (*dynamodb.QueryOutput, error) {
			items, last, err := page(ctx)
			return &dynamodb.QueryOutput{Items: items, LastEvaluatedKey: last}, err
		},
		scan: func(ctx context.Context, _ *dynamodb.ScanInput) (*dynamodb.ScanOutput, error) {
			items, last, err := page(ctx)
			return &dynamodb.ScanOutput{Items: items, LastEvaluatedKey: last}, err
		},
	}
}

func TestForEachTargetStopsReaders(t *testing.T) {
	targets := []notify.Target{
		{Users: []string{"a", "b", "c", "d", "e", "f", "g", "h", "i", "j"}, Groups: []string{"x", "y"}},
		{Broadcast: true},
	}
	for _, target := range targets {
		t.Run("FnError", func(t *testing.T) {
			var inFlight atomic.Int32
			s, _ := newFakeStore(endlessPages(&inFlight))
			stop := errors.New("stop")
			calls := 0
			err := s.ForEachTarget(t.Context(), target, func([]notify.Connection) error {
				calls++
				if calls == 5 {
					return stop
				}
				return nil
			})
			if !errors.Is(err, stop) || calls != 5 {
				t.Errorf("ForEachTarget = %v after %d calls, want fn's error after 5", err, calls)
			}
			if n := inFlight.Load(); n != 0 {
				t.Errorf("%d reads still running after ForEachTarget returned", n)
			}
		})
		t.Run("Canceled", func(t *testing.T) {
			var inFlight atomic.Int32
			s, _ := newFakeStore(endlessPages(&inFlight))
			ctx, cancel := context.WithCancel(t.Context())
			calls := 0
			err := s.ForEachTarget(ctx, target, func([]notify.Connection) error {
				calls++
				if calls == 3 {
					cancel()
				}
				return nil
			})
			if !errors.Is(err, context.Canceled) || notify.ErrorCode(err) != notify.EINTERNAL {
				t.Errorf("ForEachTarget = %v, want an EINTERNAL error wrapping context.Canceled", err)
			}
			if calls != 3 {
				t.Errorf("fn called %d times, want 3 (none after cancel)", calls)
			}
			if n := inFlight.Load(); n != 0 {
				t.Errorf("%d reads still running after ForEachTarget returned", n)
			}
		})
	}
}

func TestForEachTargetBoundsConcurrency(t *testing.T) {
	var inFlight, peak atomic.Int32
	release := make(chan struct{})
	f := &fakeAPI{query: func(ctx context.Context, _ *dynamodb.QueryInput) (*dynamodb.QueryOutput, error) {
		n := inFlight.Add(1)
		defer inFlight.Add(-1)
		for {
			p := peak.Load()
			if n <= p || peak.CompareAndSwap(p, n) {
				break
			}
		}
		<-release
		return &dynamodb.QueryOutput{}, nil
	}}
	s, _ := newFakeStore(f)
	var users []string
	for i := range 40 {
		users = append(users, string(rune('A'+i)))
	}
	done := make(chan error)
	go func() {
		done <- s.ForEachTarget(t.Context(), notify.Target{Users: users}, func([]notify.Connection) error { return nil })
	}()
	deadline := time.Now().Add(5 * time.Second)
	for inFlight.Load() < queryConcurrency && time.Now().Before(deadline) {
		time.Sleep(time.Millisecond)
	}
	time.Sleep(10 * time.Millisecond)
	close(release)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if p := peak.Load(); p != queryConcurrency {
		t.Errorf("peak concurrent queries %d, want %d", p, queryConcurrency)
	}
}

func equal[T comparable](a, b []T) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

func TestBatchWriterStopsAtEndOfContext(t *testing.T) {
	calls := 0
	w := newBatchWriter(&fakeAPI{batchWriteItem: func(in *dynamodb.BatchWriteItemInput) (*dynamodb.BatchWriteItemOutput, error) {
		calls++
		return &dynamodb.BatchWriteItemOutput{UnprocessedItems: in.RequestItems}, nil
	}}, "t")
	w.backoff = func(int) time.Duration { return time.Hour }
	ctx, cancel := context.WithTimeout(t.Context(), 20*time.Millisecond)
	defer cancel()
	writes := []types.WriteRequest{{DeleteRequest: &types.DeleteRequest{Key: marshal(connKey("c="))}}}
	if err := w.write(ctx, writes); !errors.Is(err, context.DeadlineExceeded) || calls != 1 {
		t.Errorf("write = %v after %d calls, want the deadline after 1", err, calls)
	}
}

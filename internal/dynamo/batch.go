package dynamo

import (
	"context"
	"fmt"
	"math/rand/v2"
	"slices"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
)

const (
	// batchSize is BatchWriteItem's limit of requests per call.
	batchSize = 25
	// maxBatchAttempts bounds the calls for one chunk while requests come
	// back unprocessed (UnprocessedItems, or BatchGetItem's UnprocessedKeys).
	maxBatchAttempts = 10
)

// batchWriteAPI is the part of *dynamodb.Client a batchWriter uses.
type batchWriteAPI interface {
	BatchWriteItem(context.Context, *dynamodb.BatchWriteItemInput, ...func(*dynamodb.Options)) (*dynamodb.BatchWriteItemOutput, error)
}

// batchWriter runs write requests on one table with BatchWriteItem.
type batchWriter struct {
	db    batchWriteAPI
	table string
	// backoff returns the delay before retry attempt n (1-based) of
	// unprocessed items; tests may replace it.
	backoff func(n int) time.Duration
}

func newBatchWriter(db batchWriteAPI, table string) *batchWriter {
	return &batchWriter{db: db, table: table, backoff: defaultBackoff}
}

// defaultBackoff doubles from 25 ms up to 1 s, with jitter.
func defaultBackoff(n int) time.Duration {
	d := min(25*time.Millisecond<<min(n-1, 6), time.Second)
	return d/2 + rand.N(d/2+1)
}

// write runs writes in chunks of 25, one after the other, retrying a
// chunk's UnprocessedItems (see retry). It stops at the first error or the
// end of ctx. The writes must not hold two requests for one key.
func (w *batchWriter) write(ctx context.Context, writes []types.WriteRequest) error {
	for chunk := range slices.Chunk(writes, batchSize) {
		err := w.retry(ctx, "batch write: items", func() (bool, error) {
			out, err := w.db.BatchWriteItem(ctx, &dynamodb.BatchWriteItemInput{
				RequestItems: map[string][]types.WriteRequest{w.table: chunk},
			})
			if err != nil {
				return false, err
			}
			chunk = out.UnprocessedItems[w.table]
			return len(chunk) > 0, nil
		})
		if err != nil {
			return err
		}
	}
	return nil
}

// retry calls call, and again after w.backoff(n) while it reports requests
// left unprocessed, at most maxBatchAttempts calls. It stops at the first
// error or the end of ctx.
func (w *batchWriter) retry(ctx context.Context, what string, call func() (left bool, err error)) error {
	for attempt := 1; ; attempt++ {
		left, err := call()
		if err != nil || !left {
			return err
		}
		if attempt == maxBatchAttempts {
			return fmt.Errorf("%s still unprocessed after %d attempts", what, maxBatchAttempts)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(w.backoff(attempt)):
		}
	}
}

// putRequest returns a write request putting item.
func putRequest(item any) types.WriteRequest {
	return types.WriteRequest{PutRequest: &types.PutRequest{Item: marshal(item)}}
}

// deleteRequest returns a write request deleting the item under k.
func deleteRequest(k key) types.WriteRequest {
	return types.WriteRequest{DeleteRequest: &types.DeleteRequest{Key: marshal(k)}}
}

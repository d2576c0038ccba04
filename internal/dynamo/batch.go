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
	// maxBatchAttempts bounds the calls for one chunk while items come back
	// unprocessed.
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
// chunk's UnprocessedItems after w.backoff, at most maxBatchAttempts calls
// per chunk. It stops at the first error or the end of ctx. The writes must
// not hold two requests for one key.
func (w *batchWriter) write(ctx context.Context, writes []types.WriteRequest) error {
	for chunk := range slices.Chunk(writes, batchSize) {
		for attempt := 1; len(chunk) > 0; attempt++ {
			if attempt > 1 {
				if attempt > maxBatchAttempts {
					return fmt.Errorf("batch write: items still unprocessed after %d attempts", maxBatchAttempts)
				}
				select {
				case <-ctx.Done():
					return ctx.Err()
				case <-time.After(w.backoff(attempt - 1)):
				}
			}
			out, err := w.db.BatchWriteItem(ctx, &dynamodb.BatchWriteItemInput{
				RequestItems: map[string][]types.WriteRequest{w.table: chunk},
			})
			if err != nil {
				return err
			}
			chunk = out.UnprocessedItems[w.table]
		}
	}
	return nil
}

package fanout_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"

	"github.com/workorders/notify/internal/fanout"
	"github.com/workorders/notify/internal/metrics"
	"github.com/workorders/notify/internal/notify"
)

// A stand-in for the Lambda Invoke API's error answers, which the local
// stack cannot be made to give (a throttle, a 5xx). The successful path runs
// against the real local stack in internal/devstack's TestFanoutE2E.
func lambdaAPI(t *testing.T, answers ...func(w http.ResponseWriter)) (*fanout.Invoker, *atomic.Int64) {
	t.Helper()
	var calls atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n := int(calls.Add(1))
		if !strings.HasSuffix(r.URL.Path, "/functions/FanoutFunction/invocations") {
			t.Errorf("path %s", r.URL.Path)
		}
		answers[min(n, len(answers))-1](w)
	}))
	t.Cleanup(srv.Close)
	cfg := aws.Config{Region: "us-east-1", Credentials: credentials.NewStaticCredentialsProvider("AKID", "secret", "")}
	return fanout.New(cfg, fanout.Options{Function: "FanoutFunction", Endpoint: srv.URL, Shards: 2}), &calls
}

func throttled(w http.ResponseWriter) {
	w.Header().Set("X-Amzn-Errortype", "TooManyRequestsException")
	w.WriteHeader(http.StatusTooManyRequests)
	_, _ = w.Write([]byte(`{"message":"Rate exceeded","Reason":"ReservedFunctionConcurrentInvocationLimitExceeded"}`))
}

func serverError(w http.ResponseWriter) {
	w.Header().Set("X-Amzn-Errortype", "ServiceException")
	w.WriteHeader(http.StatusInternalServerError)
	_, _ = w.Write([]byte(`{"message":"internal"}`))
}

func answer(body string) func(w http.ResponseWriter) {
	return func(w http.ResponseWriter) { _, _ = w.Write([]byte(body)) }
}

var batch = notify.FanoutBatch{Frame: []byte(`{"type":"notification"}`), Connections: []notify.FanoutConnection{{ID: "a"}}}

// A throttled Invoke ran nothing: it is retried, and the answer's Throttled
// (Management API 429s inside the batch) is added to the publish's metrics.
func TestThrottledInvokeIsRetried(t *testing.T) {
	inv, calls := lambdaAPI(t, throttled, answer(`{"delivered":1,"gone":0,"failed":0,"throttled":3,"reachedUsers":[]}`))
	rec := metrics.NewRecord("PublishFunction", time.Now())
	res, err := inv.Fanout(metrics.NewContext(context.Background(), rec), batch)
	if err != nil || res.Delivered != 1 || calls.Load() != 2 {
		t.Fatalf("%+v, %v after %d calls; want delivered 1 after a retry", res, err, calls.Load())
	}
	if got := rec.Value(metrics.Throttled); got != 3 {
		t.Errorf("Throttled %d, want the batch's 3", got)
	}
}

// Anything else may have run the batch: never retried (a retry could send
// every frame twice), an error for the caller to count failed.
func TestOtherFailuresAreNotRetried(t *testing.T) {
	for name, a := range map[string]func(http.ResponseWriter){
		"5xx": serverError,
		"function error": func(w http.ResponseWriter) {
			w.Header().Set("X-Amz-Function-Error", "Unhandled")
			_, _ = w.Write([]byte(`{"errorType":"Runtime.Timeout","errorMessage":"Task timed out after 30.00 seconds"}`))
		},
		"unknown answer field": answer(`{"delivered":1,"sent":1}`),
	} {
		t.Run(name, func(t *testing.T) {
			inv, calls := lambdaAPI(t, a, answer(`{"delivered":1}`))
			_, err := inv.Fanout(context.Background(), batch)
			if notify.ErrorCode(err) != notify.EINTERNAL || calls.Load() != 1 {
				t.Errorf("err %v after %d calls, want EINTERNAL after 1", err, calls.Load())
			}
		})
	}
}

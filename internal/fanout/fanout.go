// Package fanout hands a publish's batches of connections to FanoutFunction
// through the Lambda API: Invoker implements notify.Fanout.
//
// A batch is invoked synchronously (RequestResponse) and never retried once
// Lambda may have run it, so that no connection gets a frame twice: only a
// throttled Invoke (429 TooManyRequestsException, which runs nothing) is
// retried, with backoff. Any other failure (a function error, a timeout, a
// lost answer) is the caller's to count: the batch's connections are
// counted failed and get the notification on sync.
package fanout

import (
	"context"
	"fmt"
	"net/http"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/aws/ratelimit"
	"github.com/aws/aws-sdk-go-v2/aws/retry"
	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	"github.com/aws/aws-sdk-go-v2/service/lambda"
	"github.com/go-json-experiment/json"

	"github.com/workorders/notify/internal/metrics"
	"github.com/workorders/notify/internal/notify"
)

// Options configure an Invoker.
type Options struct {
	// Function is FanoutFunction's name or ARN.
	Function string
	// Endpoint replaces the Lambda endpoint (the local stack's); empty on AWS.
	Endpoint string
	// Shards is the number of batches expected in flight at once: it sizes
	// the idle connection pool.
	Shards int
}

// Invoker invokes FanoutFunction for each batch. It is safe for concurrent
// use; build one per process and reuse it.
type Invoker struct {
	client   *lambda.Client
	function string
}

var _ notify.Fanout = (*Invoker)(nil)

// throttleCodes are the Invoke answers that mean the function did not run.
var throttleCodes = map[string]struct{}{"TooManyRequestsException": {}}

// New returns an Invoker signing with cfg's credentials and region.
func New(cfg aws.Config, opts Options) *Invoker {
	n := max(opts.Shards, 1)
	httpClient := awshttp.NewBuildableClient().WithTransportOptions(func(t *http.Transport) {
		t.MaxIdleConns = n
		t.MaxIdleConnsPerHost = n
	})
	client := lambda.NewFromConfig(cfg, func(o *lambda.Options) {
		if opts.Endpoint != "" {
			o.BaseEndpoint = aws.String(opts.Endpoint)
		}
		o.HTTPClient = httpClient
		o.RetryMaxAttempts = 0
		o.Retryer = retry.NewStandard(func(o *retry.StandardOptions) {
			o.MaxAttempts = 4
			o.MaxBackoff = 2 * time.Second
			// Only a throttle: anything else may have run the batch.
			o.Retryables = []retry.IsErrorRetryable{
				retry.NoRetryCanceledError{},
				retry.RetryableErrorCode{Codes: throttleCodes},
			}
			o.Throttles = []retry.IsErrorThrottle{retry.ThrottleErrorCode{Codes: throttleCodes}}
			// Bounded already: at most Shards invokes in flight per publish.
			o.RateLimiter = ratelimit.None
		})
	})
	return &Invoker{client: client, function: opts.Function}
}

// NewClient is New as an app.FanoutClient: the Lambda endpoint is AWS's,
// or the SDK's AWS_ENDPOINT_URL_LAMBDA override.
func NewClient(cfg aws.Config, function string, shards int) notify.Fanout {
	return New(cfg, Options{Function: function, Shards: shards})
}

// Fanout invokes FanoutFunction with b and returns its answer. The
// Management API 429s it retried are added to the Throttled metric of the
// invocation's record (metrics.FromContext).
func (i *Invoker) Fanout(ctx context.Context, b notify.FanoutBatch) (notify.FanoutResult, error) {
	payload, err := notify.MarshalFanoutBatch(b)
	if err != nil {
		return notify.FanoutResult{}, notify.Wrap(notify.EINTERNAL, err, "fan-out: encoding the batch")
	}
	out, err := i.client.Invoke(ctx, &lambda.InvokeInput{FunctionName: aws.String(i.function), Payload: payload})
	if err != nil {
		return notify.FanoutResult{}, notify.Wrap(notify.EINTERNAL, err, "fan-out: invoking "+i.function+" failed")
	}
	if out.FunctionError != nil {
		var fe struct {
			ErrorType    string `json:"errorType"`
			ErrorMessage string `json:"errorMessage"`
		}
		_ = json.Unmarshal(out.Payload, &fe)
		return notify.FanoutResult{}, notify.Errorf(notify.EINTERNAL, "fan-out: %s answered %s: %s: %s",
			i.function, aws.ToString(out.FunctionError), fe.ErrorType, fe.ErrorMessage)
	}
	var res notify.FanoutResult
	if err := json.Unmarshal(out.Payload, &res, json.RejectUnknownMembers(true)); err != nil {
		return notify.FanoutResult{}, notify.Wrap(notify.EINTERNAL, err, fmt.Sprintf("fan-out: %s answered what is not a result", i.function))
	}
	metrics.FromContext(ctx).Add(metrics.Throttled, res.Throttled)
	return res, nil
}

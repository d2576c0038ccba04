// Package apigw sends frames to WebSocket clients through the API Gateway
// Management API (the @connections endpoint of a WebSocket API stage).
//
// Sender implements notify.Sender. It owns its HTTP transport and its
// retryer, both sized for the fan-out concurrency, so that a publish that
// posts to thousands of connections neither re-dials for every request nor
// gives up retrying once a shared retry budget is spent.
package apigw

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/aws/ratelimit"
	"github.com/aws/aws-sdk-go-v2/aws/retry"
	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	"github.com/aws/aws-sdk-go-v2/service/apigatewaymanagementapi"
	"github.com/aws/aws-sdk-go-v2/service/apigatewaymanagementapi/types"

	"github.com/workorders/notify/internal/metrics"
	"github.com/workorders/notify/internal/notify"
)

// Defaults applied by New to zero Options fields.
const (
	DefaultConcurrency = notify.DefaultConcurrency
	DefaultMaxAttempts = 5
	// DefaultMaxBackoff caps one retry delay. Throttling retries start from a
	// 1 s base in the SDK (delay = rand[0,1) * min(1s * 2^i, MaxBackoff)), so
	// with 5 attempts a throttled post waits at most 1+2+2+2 = 7 s, 3.5 s on
	// average: enough for a burst to pass, well inside a Lambda's budget.
	DefaultMaxBackoff = 2 * time.Second
)

// Options configure a Sender.
type Options struct {
	// Endpoint is the stage's Management API endpoint, e.g.
	// https://abc.execute-api.eu-west-1.amazonaws.com/prod (see EndpointFor)
	// or http://127.0.0.1:3001 locally. A wss:// or ws:// URL (the one
	// clients connect to) is accepted and turned into https:// or http://.
	Endpoint string
	// Concurrency is the number of posts expected in flight at once (the
	// size of the caller's worker pool). It sizes the idle connection pool.
	// Zero means DefaultConcurrency.
	Concurrency int
	// MaxAttempts is the number of attempts per call, the first included.
	// Zero means DefaultMaxAttempts.
	MaxAttempts int
	// MaxBackoff caps the delay before one retry. Zero means
	// DefaultMaxBackoff.
	MaxBackoff time.Duration
}

// Sender posts to connections through the Management API. It is safe for
// concurrent use; build one per process (Lambda container) and reuse it.
type Sender struct {
	client *apigatewaymanagementapi.Client
}

var _ notify.Sender = (*Sender)(nil)

// EndpointFor returns the Management API endpoint of a WebSocket API stage.
// Build it from the API id and the stage rather than from the event's
// domainName: a custom domain may carry a base path mapping.
func EndpointFor(apiID, region, stage string) string {
	return "https://" + apiID + ".execute-api." + region + ".amazonaws.com/" + strings.Trim(stage, "/")
}

// New returns a Sender for opts.Endpoint that signs with cfg's credentials
// and region. cfg's HTTP client and retryer are not used: the Sender builds
// its own, sized by opts. Loading cfg is the caller's business.
func New(cfg aws.Config, opts Options) *Sender {
	if opts.Concurrency <= 0 {
		opts.Concurrency = DefaultConcurrency
	}
	if opts.MaxAttempts <= 0 {
		opts.MaxAttempts = DefaultMaxAttempts
	}
	if opts.MaxBackoff <= 0 {
		opts.MaxBackoff = DefaultMaxBackoff
	}
	endpoint := opts.Endpoint
	switch {
	case strings.HasPrefix(endpoint, "wss://"):
		endpoint = "https://" + strings.TrimPrefix(endpoint, "wss://")
	case strings.HasPrefix(endpoint, "ws://"):
		endpoint = "http://" + strings.TrimPrefix(endpoint, "ws://")
	}

	// The SDK's transport keeps only 10 idle connections per host: with a
	// pool of 64 posting goroutines, 54 connections would be closed after
	// every response and re-dialled (TCP + TLS) for the next post. Keep one
	// idle connection per expected worker instead. Keep-alives stay on.
	n := opts.Concurrency
	httpClient := awshttp.NewBuildableClient().WithTransportOptions(func(t *http.Transport) {
		t.MaxIdleConns = n
		t.MaxIdleConnsPerHost = n
		t.DisableKeepAlives = false
	})

	client := apigatewaymanagementapi.NewFromConfig(cfg, func(o *apigatewaymanagementapi.Options) {
		o.BaseEndpoint = aws.String(endpoint)
		o.HTTPClient = httpClient
		o.Retryer = newRetryer(opts)
		// cfg.RetryMaxAttempts (AWS_MAX_ATTEMPTS, max_attempts in the shared
		// config) would otherwise wrap our retryer and override MaxAttempts.
		o.RetryMaxAttempts = 0
	})
	return &Sender{client: client}
}

// noRetryCodes are answers that retrying cannot change: the connection is
// gone, the frame is too big, the caller may not post. Listed explicitly so
// that they are never retried whatever the SDK's defaults become.
var noRetryCodes = map[string]struct{}{
	"GoneException":            {},
	"PayloadTooLargeException": {},
	"ForbiddenException":       {},
}

var throttleCodes = map[string]struct{}{
	// 429: account throttling, or the client's outgoing buffer is full.
	"LimitExceededException": {},
}

func newRetryer(opts Options) aws.Retryer {
	return throttleCounter{newStandardRetryer(opts)}
}

// throttleCounter counts, in the metrics.Record of the call's context (if
// any: PublishFunction's invocations carry one), each 429 that is retried:
// the Throttled metric (docs/PROTOCOL.md §9).
//
// It hooks GetRetryToken rather than watching every attempt's answer: the
// retry middleware asks for a retry token only once it has decided to retry
// (the error is retryable and attempts are left), so a 429 on the last
// attempt, which is not retried, is not counted; and a post that succeeds
// first time runs no code of this type at all.
type throttleCounter struct {
	aws.RetryerV2
}

func (r throttleCounter) GetRetryToken(ctx context.Context, opErr error) (func(error) error, error) {
	release, err := r.RetryerV2.GetRetryToken(ctx, opErr)
	if err == nil && isThrottle(opErr) {
		metrics.FromContext(ctx).Add(metrics.Throttled, 1)
	}
	return release, err
}

// isThrottle reports whether err is a 429 answer.
func isThrottle(err error) bool {
	if httpStatus(err) == http.StatusTooManyRequests {
		return true
	}
	_, ok := throttleCodes[errorCode(err)]
	return ok
}

func newStandardRetryer(opts Options) *retry.Standard {
	return retry.NewStandard(func(o *retry.StandardOptions) {
		o.MaxAttempts = opts.MaxAttempts
		o.MaxBackoff = opts.MaxBackoff
		// Default backoff: exponential with full jitter,
		// rand[0,1) * min(base * 2^i, MaxBackoff), base 1 s for throttling.
		o.Backoff = nil

		// Decisions are taken by the first check that knows the error:
		// cancellation first, then our explicit refusals, then 429s, then
		// the SDK defaults (5xx, connection errors...).
		o.Retryables = append([]retry.IsErrorRetryable{
			retry.NoRetryCanceledError{},
			retry.IsErrorRetryableFunc(func(err error) aws.Ternary {
				if _, ok := noRetryCodes[errorCode(err)]; ok {
					return aws.FalseTernary
				}
				switch httpStatus(err) {
				case http.StatusGone, http.StatusRequestEntityTooLarge, http.StatusForbidden:
					return aws.FalseTernary
				}
				return aws.UnknownTernary
			}),
			retry.RetryableErrorCode{Codes: throttleCodes},
		}, o.Retryables...)
		o.Throttles = append([]retry.IsErrorThrottle{
			retry.ThrottleErrorCode{Codes: throttleCodes},
		}, o.Throttles...)

		// The retry quota. By default a retryer draws from a 500-token
		// bucket shared by every goroutine using the client: a throttling
		// retry costs 5 tokens, a failed retry's tokens are never given
		// back and a first-try success adds only 1. A burst of 429s across
		// a fan-out of a few hundred posts (exactly what the account-wide
		// 10,000 req/s limit produces) empties it within milliseconds, and
		// from then on every post fails on its first 429 with "retry quota
		// exceeded", for as long as the warm Lambda lives.
		//
		// That bucket protects a service from a retry storm: N callers
		// multiplying their load by MaxAttempts. Here load is already
		// bounded: at most Concurrency posts are in flight (the caller's
		// pool; a retry keeps its slot and sleeps through a jittered
		// backoff instead of adding a request), each post makes at most
		// MaxAttempts attempts, and the invocation's context ends the rest.
		// So we disable the quota rather than size a bucket whose refill we
		// cannot reason about.
		o.RateLimiter = ratelimit.None
	})
}

// Send posts data to the connection (PostToConnection). A connection the
// gateway does not know (410 GoneException) gives an error whose code is
// notify.EGONE and which wraps notify.ErrGone; a frame over the gateway's
// limit (413) gives notify.EINVALID; anything else, after retries, gives
// notify.EINTERNAL with the cause in its chain.
func (s *Sender) Send(ctx context.Context, connectionID string, data []byte) error {
	// Checked here rather than by a round trip: the SDK refuses a nil Data
	// itself (a validation error), and the gateway refuses more than
	// notify.MaxFrameBytes with a 413.
	if len(data) == 0 || len(data) > notify.MaxFrameBytes {
		return notify.Errorf(notify.EINVALID, "apigw: post to connection %s: frame of %d bytes, want 1 to %d", connectionID, len(data), notify.MaxFrameBytes)
	}
	_, err := s.client.PostToConnection(ctx, &apigatewaymanagementapi.PostToConnectionInput{
		ConnectionId: aws.String(connectionID),
		Data:         data,
	})
	return mapError("post to", connectionID, err)
}

// Close closes the connection (DeleteConnection); the gateway then runs its
// $disconnect. A gone connection gives an EGONE error.
func (s *Sender) Close(ctx context.Context, connectionID string) error {
	_, err := s.client.DeleteConnection(ctx, &apigatewaymanagementapi.DeleteConnectionInput{
		ConnectionId: aws.String(connectionID),
	})
	return mapError("close", connectionID, err)
}

// mapError turns an SDK error into a notify error. The modeled exception is
// checked first; the HTTP status is the fallback for answers without an
// x-amzn-ErrorType header (real 410s may come with an empty body, and local
// stand-ins may send no header at all).
func mapError(op, connectionID string, err error) error {
	if err == nil {
		return nil
	}
	var gone *types.GoneException
	var tooLarge *types.PayloadTooLargeException
	switch {
	case errors.As(err, &gone) || httpStatus(err) == http.StatusGone:
		// Both wrapped: errors.Is(err, notify.ErrGone) holds, ErrorCode finds
		// ErrGone (the first *notify.Error) and the SDK error stays reachable.
		return fmt.Errorf("apigw: %s connection %s: %w: %w", op, connectionID, notify.ErrGone, err)
	case errors.As(err, &tooLarge) || httpStatus(err) == http.StatusRequestEntityTooLarge:
		return notify.Wrap(notify.EINVALID, err, "apigw: "+op+" connection "+connectionID+": frame refused by the gateway as too large (413)")
	default:
		return notify.Wrap(notify.EINTERNAL, err, "apigw: "+op+" connection "+connectionID+" failed")
	}
}

func errorCode(err error) string {
	var v interface{ ErrorCode() string }
	if errors.As(err, &v) {
		return v.ErrorCode()
	}
	return ""
}

func httpStatus(err error) int {
	var v interface{ HTTPStatusCode() int }
	if errors.As(err, &v) {
		return v.HTTPStatusCode()
	}
	return 0
}

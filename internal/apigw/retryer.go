package apigw

import (
	"context"
	"net/http"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/aws/ratelimit"
	"github.com/aws/aws-sdk-go-v2/aws/retry"

	"github.com/workorders/notify/internal/metrics"
)

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

// newRetryer returns the retryer of both post paths and of Close: the SDK's
// standard retryer with our policy, counting retried 429s.
func newRetryer(opts Options) aws.RetryerV2 {
	return throttleCounter{newStandardRetryer(opts)}
}

// throttleCounter counts, in the metrics.Record of the call's context (if
// any: PublishFunction's invocations carry one), each 429 that is retried:
// the Throttled metric (docs/PROTOCOL.md §9).
//
// It hooks GetRetryToken rather than watching every attempt's answer: the
// retry loop (the SDK's retry middleware, or the lean path's own loop) asks
// for a retry token only once it has decided to retry (the error is
// retryable and attempts are left), so a 429 on the last attempt, which is
// not retried, is not counted; and a post that succeeds first time runs no
// code of this type at all.
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

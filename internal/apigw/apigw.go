// Package apigw sends frames to WebSocket clients through the API Gateway
// Management API (the @connections endpoint of a WebSocket API stage).
//
// Sender implements notify.Sender. It owns its HTTP transport and its
// retryer, both sized for the fan-out concurrency, so that a publish that
// posts to thousands of connections neither re-dials for every request nor
// gives up retrying once a shared retry budget is spent.
//
// A post is the hot path of every publish: Send builds and signs its
// request itself with the SDK's own pieces (credentials cache, SigV4
// signer, standard retryer) rather than running the service client's
// per-call middleware stack, at less than half the CPU (bench_test.go:
// BenchmarkSend against BenchmarkSendSDKClient). Close, rare, goes through
// the service client.
package apigw

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	"github.com/aws/aws-sdk-go-v2/service/apigatewaymanagementapi"

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
	// client serves Close, and posts when lean is nil.
	client *apigatewaymanagementapi.Client
	// lean is the lean post path; nil for the SDK post path (pathSDK).
	lean *poster
}

var _ notify.Sender = (*Sender)(nil)

// EndpointFor returns the Management API endpoint of a WebSocket API stage.
// Build it from the API id and the stage rather than from the event's
// domainName: a custom domain may carry a base path mapping.
func EndpointFor(apiID, region, stage string) string {
	return "https://" + apiID + ".execute-api." + region + ".amazonaws.com/" + strings.Trim(stage, "/")
}

// New returns a Sender for opts.Endpoint that signs with cfg's credentials
// (cached with aws.NewCredentialsCache unless they already are) and region.
// cfg's HTTP client, retryer and logger are not used: the Sender builds its
// own client and retryer, sized by opts. cfg.APIOptions and
// cfg.Interceptors apply to Close only: posts do not run the SDK's
// middleware stack. Loading cfg is the caller's business.
func New(cfg aws.Config, opts Options) *Sender {
	return newSender(cfg, opts, nil, pathLean)
}

// postPath selects how a Sender posts.
type postPath int

const (
	// pathLean builds and signs requests itself (poster).
	pathLean postPath = iota
	// pathSDK calls the service client's PostToConnection: the comparison
	// for the lean path, in tests and benchmarks.
	pathSDK
)

// newSender is New with the HTTP client (nil: the pooled one) and the post
// path given.
func newSender(cfg aws.Config, opts Options, httpClient aws.HTTPClient, path postPath) *Sender {
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
	if httpClient == nil {
		httpClient = newHTTPClient(opts.Concurrency)
	}
	retryer := newRetryer(opts)
	// One credentials cache for both clients; nil: requests go unsigned.
	creds := signingCredentials(cfg.Credentials)
	clientCreds := creds
	if creds == nil {
		clientCreds = cfg.Credentials // the service client knows anonymous credentials
	}
	s := &Sender{client: newServiceClient(cfg, endpoint, httpClient, retryer, clientCreds)}
	if path == pathLean {
		p := &poster{http: httpClient, retryer: retryer, maxAttempts: retryer.MaxAttempts()}
		if p.req, p.err = newRequestBuilder(endpoint, creds, cfg.Region, p.maxAttempts); p.err != nil {
			p.err = fmt.Errorf("apigw: endpoint: %w", p.err)
		}
		s.lean = p
	}
	return s
}

// newHTTPClient returns the SDK's HTTP client with an idle pool of n
// connections per host.
func newHTTPClient(n int) aws.HTTPClient {
	// The SDK's transport keeps only 10 idle connections per host: with a
	// pool of 64 posting goroutines, 54 connections would be closed after
	// every response and re-dialled (TCP + TLS) for the next post. Keep one
	// idle connection per expected worker instead. Keep-alives stay on.
	return awshttp.NewBuildableClient().WithTransportOptions(func(t *http.Transport) {
		t.MaxIdleConns = n
		t.MaxIdleConnsPerHost = n
		t.DisableKeepAlives = false
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
	var err error
	if s.lean != nil {
		err = s.lean.post(ctx, connectionID, data)
	} else {
		err = s.sdkPost(ctx, connectionID, data)
	}
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

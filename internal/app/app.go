// Package app is the one wiring of the service: configuration from the
// environment → a ready Lambda handler. functions/*/main.go and the local
// stack both call it, so what runs locally is what deploys.
package app

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/aws/aws-lambda-go/events"
	"github.com/aws/aws-lambda-go/lambda"
	"github.com/aws/aws-sdk-go-v2/aws"
	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"

	"github.com/workorders/notify/internal/apigw"
	"github.com/workorders/notify/internal/auth"
	"github.com/workorders/notify/internal/dynamo"
	"github.com/workorders/notify/internal/lambdaevents"
	"github.com/workorders/notify/internal/metrics"
	"github.com/workorders/notify/internal/notify"
)

// Deps overrides what NewHandler would otherwise build from the
// environment. The zero value builds everything: DynamoDB from
// CONNECTIONS_TABLE and the Management API from MANAGEMENT_API_ENDPOINT.
type Deps struct {
	// Connections replaces the DynamoDB store (the local stack passes its
	// in-memory store here).
	Connections notify.ConnectionStore
	// Inbox replaces the DynamoDB inbox built from NOTIFICATIONS_TABLE.
	Inbox notify.InboxStore
	// AWSConfig replaces config.LoadDefaultConfig.
	AWSConfig *aws.Config
	// Logger replaces the JSON logger on standard output.
	Logger *slog.Logger
	// Metrics receives the function's EMF objects (docs/PROTOCOL.md §9),
	// one JSON object per invocation and line. Nil means standard output,
	// where Lambda's CloudWatch Logs reads them, unless MetricsToLog.
	Metrics io.Writer
	// NewFanout builds PublishFunction's client of FanoutFunction (the
	// sharded fan-out, FANOUT_FUNCTION): internal/fanout.NewClient, or the
	// local stack's, pointed at its own Lambda API. It is a dependency
	// rather than an import so that only the binaries that invoke
	// FanoutFunction link the Lambda client. Nil with FANOUT_FUNCTION set
	// is a configuration error.
	NewFanout FanoutClient
	// Invocations is how many invocations of the function one process runs
	// at once: 1 on Lambda (zero means 1), more under the local stack, which
	// runs a publish's FanoutFunction batches side by side in one process.
	// The Management API connection pool is sized for all of them, so that
	// they do not re-dial for every post.
	Invocations int
	// MetricsToLog logs each EMF object through the function's logger
	// instead, as an Info record "metrics" whose "emf" attribute is the
	// object (metrics.NewLogEmitter): the local stack's choice, so that its
	// log shows the lines production would graph.
	MetricsToLog bool
}

// NewHandler builds the handler of one function (a logical ID such as
// ConnectFunction) from env, which holds that function's environment
// variables. Missing required configuration is an error naming the
// variable.
func NewHandler(ctx context.Context, function string, env map[string]string, deps Deps) (lambda.Handler, error) {
	build, ok := Builders[function]
	if !ok {
		return nil, fmt.Errorf("unknown function %q (known: %s, %s, %s, %s, %s)", function,
			ConnectFunction, DisconnectFunction, DefaultFunction, PublishFunction, FanoutFunction)
	}
	return build(ctx, env, deps)
}

// Builder builds one function's handler from its environment, as
// NewHandler does for that function.
type Builder func(ctx context.Context, env map[string]string, deps Deps) (lambda.Handler, error)

// Builders maps each function's logical ID to its Builder. A
// functions/<name>/main.go passes only its own to Main, so that its binary
// links only its own dependencies (the JWT verifier in ConnectFunction's, the
// Lambda client in PublishFunction's).
var Builders = map[string]Builder{
	ConnectFunction: BuildConnect, DisconnectFunction: BuildDisconnect, DefaultFunction: BuildDefault,
	PublishFunction: BuildPublish, FanoutFunction: BuildFanout,
}

// handlers starts the Handlers of function: its logger and metrics.
func handlers(function string, cfg envConfig, deps *Deps) (*lambdaevents.Handlers, error) {
	log := deps.Logger
	if log == nil {
		log = slog.New(slog.NewJSONHandler(os.Stdout, nil))
	}
	h := &lambdaevents.Handlers{Logger: log.With("function", function)}
	var err error
	h.Metrics, err = newEmitter(cfg, function, deps)
	return h, err
}

// BuildConnect builds ConnectFunction: origin policy, token verifier, the
// connection store and the Management API to close a user's oldest sockets.
func BuildConnect(ctx context.Context, env map[string]string, deps Deps) (lambda.Handler, error) {
	cfg := envConfig(env)
	h, err := handlers(ConnectFunction, cfg, &deps)
	if err != nil {
		return nil, err
	}
	if h.Origins, err = auth.ParseOrigins(cfg.get(EnvAllowedOrigins)); err != nil {
		return nil, err
	}
	if h.Verifier, err = auth.NewVerifier(auth.Config{
		Secret: cfg.get(EnvJWTSecret), JWKSURL: cfg.get(EnvJWTJWKSURL),
		Issuer: cfg.get(EnvJWTIssuer), Audience: cfg.get(EnvJWTAudience),
		GroupsClaim: cfg.get(EnvJWTGroupsClaim),
	}); err != nil {
		return nil, err
	}
	if h.Service, err = newService(ctx, cfg, &deps, nil, false); err != nil {
		return nil, err
	}
	if h.Service.MaxConnectionsPerUser, err = cfg.positiveInt(EnvMaxConnectionsPerUser, notify.DefaultMaxConnectionsPerUser); err != nil {
		return nil, err
	}
	if h.SenderFor, err = eventSenders(ctx, cfg, &deps); err != nil {
		return nil, err
	}
	return lambda.NewHandler(h.Connect), nil
}

// BuildDisconnect builds DisconnectFunction: the connection store.
func BuildDisconnect(ctx context.Context, env map[string]string, deps Deps) (lambda.Handler, error) {
	cfg := envConfig(env)
	h, err := handlers(DisconnectFunction, cfg, &deps)
	if err != nil {
		return nil, err
	}
	if h.Service, err = newService(ctx, cfg, &deps, nil, false); err != nil {
		return nil, err
	}
	return lambda.NewHandler(h.Disconnect), nil
}

// BuildDefault builds DefaultFunction: both stores and the Management API.
func BuildDefault(ctx context.Context, env map[string]string, deps Deps) (lambda.Handler, error) {
	cfg := envConfig(env)
	h, err := handlers(DefaultFunction, cfg, &deps)
	if err != nil {
		return nil, err
	}
	if h.Service, err = newService(ctx, cfg, &deps, nil, true); err != nil {
		return nil, err
	}
	if h.SenderFor, err = eventSenders(ctx, cfg, &deps); err != nil {
		return nil, err
	}
	return lambda.NewHandler(h.Default), nil
}

// BuildPublish builds PublishFunction: both stores, the Management API
// and, with FANOUT_FUNCTION, the FanoutFunction client (Deps.NewFanout).
func BuildPublish(ctx context.Context, env map[string]string, deps Deps) (lambda.Handler, error) {
	cfg := envConfig(env)
	h, err := handlers(PublishFunction, cfg, &deps)
	if err != nil {
		return nil, err
	}
	sender, concurrency, err := publishSender(ctx, cfg, &deps)
	if err != nil {
		return nil, err
	}
	if h.Service, err = newService(ctx, cfg, &deps, sender, true); err != nil {
		return nil, err
	}
	h.Service.Concurrency = concurrency
	if err := configureFanout(ctx, cfg, &deps, h.Service); err != nil {
		return nil, err
	}
	return lambda.NewHandler(h.Publish), nil
}

// BuildFanout builds FanoutFunction: the connection store and the
// Management API.
func BuildFanout(ctx context.Context, env map[string]string, deps Deps) (lambda.Handler, error) {
	cfg := envConfig(env)
	h, err := handlers(FanoutFunction, cfg, &deps)
	if err != nil {
		return nil, err
	}
	sender, concurrency, err := publishSender(ctx, cfg, &deps)
	if err != nil {
		return nil, err
	}
	if h.Service, err = newService(ctx, cfg, &deps, sender, false); err != nil {
		return nil, err
	}
	h.Service.Concurrency = concurrency
	return lambda.NewHandler(h.Fanout), nil
}

// publishSender builds the Management API sender of PublishFunction and
// FanoutFunction from MANAGEMENT_API_ENDPOINT, sized by PUBLISH_CONCURRENCY.
func publishSender(ctx context.Context, cfg envConfig, deps *Deps) (*apigw.Sender, int, error) {
	endpoint, err := cfg.required(EnvManagementEndpoint)
	if err != nil {
		return nil, 0, err
	}
	concurrency, err := cfg.positiveInt(EnvPublishConcurrency, notify.DefaultConcurrency)
	if err != nil {
		return nil, 0, err
	}
	awsCfg, err := deps.awsConfig(ctx)
	if err != nil {
		return nil, 0, err
	}
	pool := concurrency * max(1, deps.Invocations)
	return apigw.New(awsCfg, apigw.Options{Endpoint: endpoint, Concurrency: pool}), concurrency, nil
}

// configureFanout gives PublishFunction's service its sharded fan-out when
// FANOUT_FUNCTION is set, tuned by the other FANOUT_ variables.
func configureFanout(ctx context.Context, cfg envConfig, deps *Deps, svc *notify.Service) error {
	function := cfg.get(EnvFanoutFunction)
	if function == "" {
		return nil
	}
	var err error
	for _, v := range []struct {
		name string
		def  int
		dst  *int
	}{
		{EnvFanoutThreshold, notify.DefaultFanoutThreshold, &svc.FanoutThreshold},
		{EnvFanoutBatchSize, notify.DefaultFanoutBatchSize, &svc.FanoutBatchSize},
		{EnvFanoutShards, notify.DefaultFanoutShards, &svc.FanoutShards},
		{EnvFanoutPostsPerSecond, notify.DefaultFanoutPostsPerSecond, &svc.FanoutPostsPerSecond},
	} {
		if *v.dst, err = cfg.positiveInt(v.name, v.def); err != nil {
			return err
		}
	}
	if svc.FanoutBatchSize > notify.MaxFanoutBatch {
		return fmt.Errorf("invalid configuration: %s=%d is over %d", EnvFanoutBatchSize, svc.FanoutBatchSize, notify.MaxFanoutBatch)
	}
	// A batch posts at FANOUT_POSTS_PER_SECOND ÷ FANOUT_SHARDS: it must be
	// done well inside FanoutFunction's 30 s timeout, or every batch fails.
	if perBatch := float64(svc.FanoutBatchSize) * float64(svc.FanoutShards) / float64(svc.FanoutPostsPerSecond); perBatch > maxBatchSeconds {
		return fmt.Errorf("invalid configuration: a batch of %s=%d at %s=%d ÷ %s=%d posts/s takes %.0f s, over %d s: lower the batch or raise the rate",
			EnvFanoutBatchSize, svc.FanoutBatchSize, EnvFanoutPostsPerSecond, svc.FanoutPostsPerSecond, EnvFanoutShards, svc.FanoutShards, perBatch, maxBatchSeconds)
	}
	if deps.NewFanout == nil {
		return fmt.Errorf("invalid configuration: %s is set but this binary has no FanoutFunction client (Deps.NewFanout)", EnvFanoutFunction)
	}
	awsCfg, err := deps.awsConfig(ctx)
	if err != nil {
		return err
	}
	svc.Fanout = deps.NewFanout(awsCfg, function, svc.FanoutShards)
	return nil
}

// maxBatchSeconds is the longest a fan-out batch may take at its posts/s:
// two thirds of FanoutFunction's 30 s timeout (template.yaml).
const maxBatchSeconds = 20

// FanoutClient builds a notify.Fanout that invokes function (a name or
// ARN) with cfg, sized for shards invocations in flight.
type FanoutClient func(cfg aws.Config, function string, shards int) notify.Fanout

// newEmitter builds the function's EMF emitter on METRICS_NAMESPACE.
func newEmitter(cfg envConfig, function string, deps *Deps) (*metrics.Emitter, error) {
	namespace := cfg.get(EnvMetricsNamespace)
	if namespace == "" {
		namespace = metrics.DefaultNamespace
	}
	if err := metrics.ValidNamespace(namespace); err != nil {
		return nil, fmt.Errorf("invalid configuration: %s: %w", EnvMetricsNamespace, err)
	}
	switch {
	case deps.MetricsToLog:
		return metrics.NewLogEmitter(namespace, function), nil
	case deps.Metrics != nil:
		return metrics.NewEmitter(namespace, function, deps.Metrics), nil
	}
	return metrics.NewEmitter(namespace, function, os.Stdout), nil
}

// eventSenders returns the Management API sender for an event's API:
// MANAGEMENT_API_ENDPOINT when set, else the endpoint built from the event's
// API id, the region and its stage.
func eventSenders(ctx context.Context, cfg envConfig, deps *Deps) (func(events.APIGatewayWebsocketProxyRequestContext) notify.Sender, error) {
	awsCfg, err := deps.awsConfig(ctx)
	if err != nil {
		return nil, err
	}
	senders := &senderCache{}
	endpoint := cfg.get(EnvManagementEndpoint)
	return func(rc events.APIGatewayWebsocketProxyRequestContext) notify.Sender {
		e := endpoint
		if e == "" {
			e = apigw.EndpointFor(rc.APIID, awsCfg.Region, rc.Stage)
		}
		return senders.get(awsCfg, e)
	}, nil
}

// Main is the whole of functions/<name>/main.go: it builds the function's
// handler from the process environment and starts it, or, when the
// configuration is incomplete, logs why and exits 1 (a cold-start failure
// that names the variable). It logs JSON on standard output at the level of
// AWS_LAMBDA_LOG_LEVEL (LogLevel; INFO when unset); the EMF metric lines go
// to standard output too, whatever the level.
func Main(function string, build Builder, deps Deps) {
	env := map[string]string{}
	for _, name := range FunctionEnv[function] {
		if v, ok := os.LookupEnv(name); ok {
			env[name] = v
		}
	}
	logger := slog.New(slog.NewJSONHandler(os.Stdout, &slog.HandlerOptions{Level: LogLevel(os.Getenv(EnvLambdaLogLevel))}))
	deps.Logger = logger
	handler, err := build(context.Background(), env, deps)
	if err != nil {
		slog.New(slog.NewJSONHandler(os.Stderr, nil)).Error("configuration error", "function", function, "error", err.Error())
		os.Exit(1)
	}
	lambda.Start(handler)
}

// LogLevel is the slog level of an AWS_LAMBDA_LOG_LEVEL value: DEBUG, INFO,
// WARN or ERROR (any case), TRACE as debug and FATAL as error (slog has
// neither); anything else, or nothing, is INFO.
func LogLevel(v string) slog.Level {
	switch strings.ToUpper(strings.TrimSpace(v)) {
	case "TRACE", "DEBUG":
		return slog.LevelDebug
	case "WARN", "WARNING":
		return slog.LevelWarn
	case "ERROR", "FATAL":
		return slog.LevelError
	}
	return slog.LevelInfo
}

// newService builds the service with the stores a function uses: every
// function the connections, DefaultFunction and PublishFunction (withInbox)
// also the inbox.
func newService(ctx context.Context, cfg envConfig, deps *Deps, sender notify.Sender, withInbox bool) (*notify.Service, error) {
	svc := &notify.Service{Connections: deps.Connections, Inbox: deps.Inbox, Sender: sender}
	var client *dynamodb.Client
	dynamoClient := func() (*dynamodb.Client, error) {
		if client == nil {
			awsCfg, err := deps.awsConfig(ctx)
			if err != nil {
				return nil, err
			}
			client = dynamodb.NewFromConfig(awsCfg, func(o *dynamodb.Options) {
				// A group's 16 shard Queries run at once (internal/dynamo):
				// keep their connections, where the SDK keeps 10 per host.
				o.HTTPClient = awshttp.NewBuildableClient().WithTransportOptions(func(t *http.Transport) {
					t.MaxIdleConnsPerHost = 32
				})
			})
		}
		return client, nil
	}
	if svc.Connections == nil {
		table, err := cfg.required(EnvConnectionsTable)
		if err != nil {
			return nil, err
		}
		c, err := dynamoClient()
		if err != nil {
			return nil, err
		}
		svc.Connections = dynamo.New(c, table)
	}
	if !withInbox {
		svc.Inbox = nil
		return svc, nil
	}
	days, err := cfg.positiveInt(EnvRetentionDays, int(notify.DefaultRetention/(24*time.Hour)))
	if err != nil {
		return nil, err
	}
	svc.Retention = time.Duration(days) * 24 * time.Hour
	if svc.Inbox == nil {
		table, err := cfg.required(EnvNotificationsTable)
		if err != nil {
			return nil, err
		}
		c, err := dynamoClient()
		if err != nil {
			return nil, err
		}
		svc.Inbox = dynamo.NewInbox(c, table)
	}
	return svc, nil
}

// awsConfig returns deps.AWSConfig, loading it (once) with
// config.LoadDefaultConfig when it is not given.
func (deps *Deps) awsConfig(ctx context.Context) (aws.Config, error) {
	if deps.AWSConfig == nil {
		cfg, err := config.LoadDefaultConfig(ctx)
		if err != nil {
			return aws.Config{}, fmt.Errorf("load AWS configuration: %w", err)
		}
		deps.AWSConfig = &cfg
	}
	return *deps.AWSConfig, nil
}

// envConfig is one function's environment.
type envConfig map[string]string

func (c envConfig) get(name string) string { return strings.TrimSpace(c[name]) }

func (c envConfig) required(name string) (string, error) {
	if v := c.get(name); v != "" {
		return v, nil
	}
	return "", fmt.Errorf("missing configuration: environment variable %s is not set", name)
}

func (c envConfig) positiveInt(name string, def int) (int, error) {
	v := c.get(name)
	if v == "" {
		return def, nil
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < 1 {
		return 0, fmt.Errorf("invalid configuration: %s=%q must be a positive integer", name, v)
	}
	return n, nil
}

// senderCache keeps one Management API client per endpoint, so that a warm
// DefaultFunction reuses its connections.
type senderCache struct {
	mu      sync.Mutex
	senders map[string]*apigw.Sender
}

func (c *senderCache) get(cfg aws.Config, endpoint string) *apigw.Sender {
	c.mu.Lock()
	defer c.mu.Unlock()
	if s, ok := c.senders[endpoint]; ok {
		return s
	}
	if c.senders == nil {
		c.senders = map[string]*apigw.Sender{}
	}
	s := apigw.New(cfg, apigw.Options{Endpoint: endpoint, Concurrency: 4})
	c.senders[endpoint] = s
	return s
}

package devstack

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"net/http"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/aws/aws-lambda-go/lambda"
	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"

	"github.com/workorders/notify/internal/app"
	"github.com/workorders/notify/internal/dynamo"
	"github.com/workorders/notify/internal/fanout"
	"github.com/workorders/notify/internal/localgw"
	"github.com/workorders/notify/internal/memory"
	"github.com/workorders/notify/internal/notify"
	"github.com/workorders/notify/internal/samtemplate"
)

// Defaults of the local stack.
const (
	// DefaultAddr is where the stack listens when neither Options.Addr nor
	// ADDR says otherwise.
	DefaultAddr = "127.0.0.1:3001"
	// DefaultTemplate is the template path looked for when
	// Options.TemplatePath is empty.
	DefaultTemplate = "template.yaml"
	// DevSecret is JWT_SECRET locally when the environment gives none.
	DevSecret = "local-development-secret-do-not-deploy"
	// DevOrigins is ALLOWED_ORIGINS locally when the environment gives none.
	DevOrigins = "*"
	// DefaultRegion is the region of every SDK client when the environment
	// names none.
	DefaultRegion = "us-east-1"
)

// Environment variables the stack itself reads (besides those the
// template's functions declare).
const (
	EnvAddr             = "ADDR"
	EnvDynamoDBEndpoint = "AWS_ENDPOINT_URL_DYNAMODB"
)

// Options configure a Stack. The zero value runs ./template.yaml in memory on
// 127.0.0.1:3001 with API Gateway's limits.
type Options struct {
	// Addr is the host:port to listen on; port 0 picks a free one. Default:
	// the ADDR environment variable, else DefaultAddr.
	Addr string
	// TemplatePath is the SAM template. Default: template.yaml in the
	// working directory or, when missing there, in the nearest parent
	// folder up to the one holding go.mod (see FindTemplate).
	TemplatePath string
	// DynamoDBEndpoint, when set, stores in DynamoDB at this URL rather than
	// in memory. Default: AWS_ENDPOINT_URL_DYNAMODB.
	DynamoDBEndpoint string
	// IdleTimeout, MaxDuration and PostDelay are the gateway's
	// (localgw.Config); zero keeps API Gateway's values and no delay.
	IdleTimeout, MaxDuration, PostDelay time.Duration
	// Parameters give template parameters values (like sam deploy's
	// --parameter-overrides); they win over the environment.
	Parameters map[string]string
	// Env is the environment the stack resolves the template with, read
	// instead of the process's. Nil reads os.Environ.
	Env map[string]string
	// Static serves plain GET requests that are not the APIs (the demo page).
	Static http.Handler
	// Logger receives the gateway's and the functions' logs. Default
	// slog.Default().
	Logger *slog.Logger
	// WrapInbox is a test hook: when set, each function whose environment
	// names NOTIFICATIONS_TABLE (DefaultFunction, PublishFunction) gets
	// WrapInbox(inbox) instead of the inbox it would otherwise use — the
	// memory store, or on DynamoDB a dynamo.NewInbox on that table, built
	// here rather than by app. It lets tests delay or observe the inbox's
	// calls (a held-back store write, say). Nil changes nothing.
	WrapInbox func(notify.InboxStore) notify.InboxStore
	// WrapConnections is a test hook like WrapInbox, for the connection
	// store of every function (on DynamoDB the stack then builds it itself,
	// with dynamo.New on CONNECTIONS_TABLE): tests can, say, lose a
	// $disconnect's delete so that a closed socket stays stored and a
	// publish meets its 410. Nil changes nothing.
	WrapConnections func(notify.ConnectionStore) notify.ConnectionStore
	// Metrics, when set, receives the functions' EMF objects as the JSON
	// lines Lambda would write to standard output (docs/PROTOCOL.md §9);
	// otherwise each is logged through Logger as a "metrics" record.
	Metrics io.Writer
}

// Stack is a running local stack. Create it with Start; stop it with
// Shutdown.
type Stack struct {
	gw       *localgw.Gateway
	template *samtemplate.Template
	env      map[string]map[string]string // each function's resolved environment
	tables   map[string]string            // table logical ID → name
	dynamo   string                       // DynamoDB endpoint, "" in memory
}

// Start reads the template, prepares storage (creating missing DynamoDB
// tables), opens the listener, builds every function of the template with
// app.NewHandler and serves in the background. ctx bounds the start only.
func Start(ctx context.Context, opts Options) (*Stack, error) {
	env := opts.Env
	if env == nil {
		env = processEnv()
	}
	log := opts.Logger
	if log == nil {
		log = slog.Default()
	}
	// The functions' log lines also reach an invocation's X-Amz-Log-Result
	// (`aws lambda invoke --log-type Tail`).
	log = slog.New(localgw.TailHandler(log.Handler()))
	addr := opts.Addr
	if addr == "" {
		addr = env[EnvAddr]
	}
	if addr == "" {
		addr = DefaultAddr
	}
	path, err := FindTemplate(opts.TemplatePath)
	if err != nil {
		return nil, err
	}
	tmpl, err := samtemplate.Load(path)
	if err != nil {
		return nil, err
	}
	s := &Stack{template: tmpl, dynamo: opts.DynamoDBEndpoint}
	if s.dynamo == "" {
		s.dynamo = strings.TrimSpace(env[EnvDynamoDBEndpoint])
	}
	awsCfg := awsConfig(env)
	if s.dynamo != "" {
		awsCfg.BaseEndpoint = aws.String(s.dynamo)
	}
	r, err := newResolver(tmpl, env, opts.Parameters, awsCfg.Region)
	if err != nil {
		return nil, err
	}
	s.tables = r.tables
	if s.env, err = r.functionEnvs(); err != nil {
		return nil, err
	}

	// The functions' EMF metric lines (docs/PROTOCOL.md §9) go to
	// opts.Metrics as they are, or else to the stack's log, each as an Info
	// record "metrics" whose "emf" attribute is the JSON object Lambda would
	// write to standard output.
	deps := app.Deps{AWSConfig: &awsCfg, Logger: log, Metrics: opts.Metrics, MetricsToLog: opts.Metrics == nil}
	var client *dynamodb.Client
	if s.dynamo == "" {
		store := memory.New()
		deps.Connections, deps.Inbox = store, store
	} else {
		client = dynamodb.NewFromConfig(awsCfg)
		if err := createTables(ctx, client, tmpl, s.tables); err != nil {
			return nil, fmt.Errorf("DynamoDB at %s: %w", s.dynamo, err)
		}
	}

	// The functions need the listen address (MANAGEMENT_API_ENDPOINT), known
	// once the listener is open: the gateway gets stand-ins that wait for
	// them.
	functions := make(map[string]lambda.Handler, len(tmpl.Functions))
	pending := make(map[string]*deferredHandler, len(tmpl.Functions))
	timeouts := make(map[string]time.Duration, len(tmpl.Functions))
	for name, fn := range tmpl.Functions {
		d := &deferredHandler{ready: make(chan struct{})}
		pending[name], functions[name] = d, d
		if fn.Timeout > 0 {
			timeouts[name] = time.Duration(fn.Timeout) * time.Second
		}
	}
	gw, err := localgw.New(localgw.Config{
		Addr:                     addr,
		RouteSelectionExpression: tmpl.RouteSelectionExpression,
		Routes:                   tmpl.Routes,
		Functions:                functions,
		FunctionTimeouts:         timeouts,
		IdleTimeout:              opts.IdleTimeout,
		MaxDuration:              opts.MaxDuration,
		PostDelay:                opts.PostDelay,
		Static:                   opts.Static,
		Logger:                   log,
	})
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	if err := gw.Start(); err != nil {
		return nil, fmt.Errorf("listening on %s: %w", addr, err)
	}
	s.gw = gw

	endpoint := s.InvokeEndpoint()
	var buildErr error
	for _, name := range slices.Sorted(maps.Keys(pending)) {
		fnEnv := s.env[name]
		fnEnv[app.EnvManagementEndpoint] = endpoint
		fnDeps := wrapStores(deps, fnEnv, client, opts)
		if name == app.FanoutFunction {
			// A publish's batches run here side by side, each in what is
			// its own sandbox on AWS.
			fnDeps.Invocations = fanoutShards(s.env[app.PublishFunction])
		}
		fnDeps.NewFanout = func(cfg aws.Config, function string, shards int) notify.Fanout {
			return fanout.New(cfg, fanout.Options{Function: function, Endpoint: endpoint, Shards: shards})
		}
		h, err := app.NewHandler(ctx, name, maps.Clone(fnEnv), fnDeps)
		if err != nil && buildErr == nil {
			buildErr = fmt.Errorf("%s: %w", name, err)
		}
		pending[name].set(h)
	}
	if buildErr != nil {
		_ = gw.Shutdown(context.WithoutCancel(ctx))
		return nil, buildErr
	}
	return s, nil
}

// URL is the WebSocket API's URL, ws://HOST:PORT/.
func (s *Stack) URL() string { return s.gw.URL() }

// Addr is the address the stack listens on, HOST:PORT.
func (s *Stack) Addr() string { return s.gw.Addr() }

// InvokeEndpoint is the Lambda endpoint, http://HOST:PORT, for the SDK's
// BaseEndpoint or `aws lambda invoke --endpoint-url`. It is also the
// Management API endpoint (its @connections paths).
func (s *Stack) InvokeEndpoint() string { return "http://" + s.gw.Addr() }

// ManagementEndpoint is the Management API endpoint the functions post to,
// http://HOST:PORT (POST, GET and DELETE /@connections/{id}).
func (s *Stack) ManagementEndpoint() string { return s.InvokeEndpoint() }

// TemplatePath is the template the stack runs.
func (s *Stack) TemplatePath() string { return s.template.Path }

// Storage describes where the functions store: "memory", or
// "DynamoDB at URL (tables a, b)".
func (s *Stack) Storage() string {
	if s.dynamo == "" {
		return "memory"
	}
	names := slices.Sorted(maps.Values(s.tables))
	return fmt.Sprintf("DynamoDB at %s (tables %s)", s.dynamo, strings.Join(names, ", "))
}

// FunctionEnv returns a copy of the environment function name runs with, or
// nil for a function the template does not have.
func (s *Stack) FunctionEnv(name string) map[string]string {
	return maps.Clone(s.env[name])
}

// Shutdown closes every socket with 1001 "Going away", waits for their
// $disconnect invocations, stops serving, and waits for Event invocations.
// When ctx ends first, what is left is dropped and ctx's error returned.
func (s *Stack) Shutdown(ctx context.Context) error { return s.gw.Shutdown(ctx) }

// DevSecretInUse says whether ConnectFunction's JWT_SECRET is the
// development default, DevSecret: true unless the environment (or a
// JwtSecret parameter override) gave another one, or an empty one (a JWKS URL
// alone). GET /dev/token answers only while it is true (docs/PROTOCOL.md §7):
// a stack given a real secret does not hand out tokens signed with it.
func (s *Stack) DevSecretInUse() bool {
	env := s.env[app.ConnectFunction]
	return env != nil && env[app.EnvJWTSecret] == DevSecret
}

// DevToken returns an HS256 token the stack accepts, for user sub with
// groups, valid for ttl: signed with ConnectFunction's JWT_SECRET, with its
// groups claim, issuer and audience.
func (s *Stack) DevToken(sub string, groups []string, ttl time.Duration) (string, error) {
	env := s.env[app.ConnectFunction]
	if env == nil {
		return "", fmt.Errorf("%s has no %s: no token verification to sign for", s.template.Path, app.ConnectFunction)
	}
	return SignToken(TokenClaims{
		Secret: env[app.EnvJWTSecret], Subject: sub, Groups: groups, TTL: ttl,
		GroupsClaim: env[app.EnvJWTGroupsClaim], Issuer: env[app.EnvJWTIssuer], Audience: env[app.EnvJWTAudience],
	})
}

// wrapStores applies the test hooks Options.WrapInbox and
// Options.WrapConnections to the stores of a function whose environment
// names their table; client is the DynamoDB client (nil in memory). Without
// a hook, deps are unchanged.
func wrapStores(deps app.Deps, fnEnv map[string]string, client *dynamodb.Client, opts Options) app.Deps {
	deps.Inbox = wrapStore(deps.Inbox, fnEnv[app.EnvNotificationsTable], opts.WrapInbox,
		func(table string) notify.InboxStore { return dynamo.NewInbox(client, table) })
	deps.Connections = wrapStore(deps.Connections, fnEnv[app.EnvConnectionsTable], opts.WrapConnections,
		func(table string) notify.ConnectionStore { return dynamo.New(client, table) })
	return deps
}

// wrapStore returns wrap(store), building the store on table when there
// is none yet (on DynamoDB); store as it is without a hook or a table.
func wrapStore[S comparable](store S, table string, wrap func(S) S, build func(table string) S) S {
	table = strings.TrimSpace(table)
	if wrap == nil || table == "" {
		return store
	}
	var none S
	if store == none {
		store = build(table)
	}
	return wrap(store)
}

// deferredHandler stands in for a function until it is built: invocations
// wait for it (or for their deadline).
type deferredHandler struct {
	ready chan struct{}
	once  sync.Once
	h     lambda.Handler
}

func (d *deferredHandler) set(h lambda.Handler) {
	d.once.Do(func() { d.h = h; close(d.ready) })
}

var errNotBuilt = errors.New("the function could not be built (see the local stack's start error)")

// Invoke passes the context on unchanged: the gateway's handlertrace hooks
// must reach the lambda.NewHandler handler behind it.
func (d *deferredHandler) Invoke(ctx context.Context, payload []byte) ([]byte, error) {
	select {
	case <-d.ready:
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	if d.h == nil {
		return nil, errNotBuilt
	}
	return d.h.Invoke(ctx, payload)
}

// awsConfig is the configuration of every SDK client the stack makes:
// static credentials and a region, so that nothing looks for credentials on
// the network.
func awsConfig(env map[string]string) aws.Config {
	region := firstNonEmpty(env["AWS_REGION"], env["AWS_DEFAULT_REGION"], DefaultRegion)
	id, secret, token := env["AWS_ACCESS_KEY_ID"], env["AWS_SECRET_ACCESS_KEY"], env["AWS_SESSION_TOKEN"]
	if id == "" || secret == "" {
		id, secret, token = "AKIDLOCALSTACK", "local-stack-secret", ""
	}
	return aws.Config{
		Region:      region,
		Credentials: aws.NewCredentialsCache(credentials.NewStaticCredentialsProvider(id, secret, token)),
	}
}

func firstNonEmpty(vs ...string) string {
	for _, v := range vs {
		if v = strings.TrimSpace(v); v != "" {
			return v
		}
	}
	return ""
}

func processEnv() map[string]string {
	env := map[string]string{}
	for _, kv := range os.Environ() {
		if k, v, ok := strings.Cut(kv, "="); ok && k != "" {
			env[k] = v
		}
	}
	return env
}

// fanoutShards is PublishFunction's FANOUT_SHARDS, the FanoutFunction
// invocations one publish runs at once (notify.DefaultFanoutShards when
// unset or not a positive number: PublishFunction refuses that anyway).
func fanoutShards(publishEnv map[string]string) int {
	if n, err := strconv.Atoi(strings.TrimSpace(publishEnv[app.EnvFanoutShards])); err == nil && n > 0 {
		return n
	}
	return notify.DefaultFanoutShards
}

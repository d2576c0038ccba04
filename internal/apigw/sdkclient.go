package apigw

import (
	"context"
	"net/url"
	"slices"
	"sync"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/apigatewaymanagementapi"
	smithy "github.com/aws/smithy-go"
	smithyauth "github.com/aws/smithy-go/auth"
	smithyendpoints "github.com/aws/smithy-go/endpoints"
	"github.com/aws/smithy-go/logging"
	"github.com/aws/smithy-go/middleware"
	smithyhttp "github.com/aws/smithy-go/transport/http"
)

// newServiceClient returns the Management API client in the configuration
// that does the least work per call while sending what the SDK sends (see
// BenchmarkSendSDKClient): our transport, retryer and cached credentials, no
// logging, a fixed endpoint instead of the endpoint rules, and a middleware
// stack without the steps a post does not need (trimStack). It serves Close,
// and the posts of a Sender built with post path pathSDK.
//
// cfg.APIOptions and cfg.Interceptors still apply; cfg.HTTPClient,
// cfg.Retryer, cfg.RetryMaxAttempts and cfg.Logger do not.
func newServiceClient(cfg aws.Config, endpoint string, httpClient aws.HTTPClient, retryer aws.Retryer, creds aws.CredentialsProvider) *apigatewaymanagementapi.Client {
	return apigatewaymanagementapi.NewFromConfig(cfg, func(o *apigatewaymanagementapi.Options) {
		o.BaseEndpoint = aws.String(endpoint)
		if u, err := url.Parse(endpoint); err == nil && u.Host != "" {
			// The endpoint rules, given a BaseEndpoint, parse it on every
			// call and return it; parse it once instead. (An unparsable
			// endpoint keeps the rules and fails on each call, as before.)
			o.EndpointResolverV2 = staticEndpoint{uri: *u}
		}
		// A legacy (v1) resolver from cfg would override BaseEndpoint.
		o.EndpointResolver = nil
		o.HTTPClient = httpClient
		o.Retryer = retryer
		// cfg.RetryMaxAttempts (AWS_MAX_ATTEMPTS, max_attempts in the shared
		// config) would otherwise wrap our retryer and override MaxAttempts.
		o.RetryMaxAttempts = 0
		o.Credentials = creds
		o.AuthSchemeResolver = newStaticAuth(cfg.Region)
		o.Logger = logging.Nop{}
		o.ClientLogMode = 0
		// Without the RecordResponseTiming step there is no skew to apply.
		o.DisableClockSkewCorrection = true
		o.APIOptions = append(slices.Clip(o.APIOptions), trimStack(o.Interceptors))
	})
}

// staticEndpoint is an EndpointResolverV2 that always answers one URL.
type staticEndpoint struct{ uri url.URL }

func (e staticEndpoint) ResolveEndpoint(context.Context, apigatewaymanagementapi.EndpointParameters) (smithyendpoints.Endpoint, error) {
	return smithyendpoints.Endpoint{URI: e.uri}, nil
}

// staticAuth is an AuthSchemeResolver answering, for every call, the
// options the default resolver builds anew on each: SigV4 for execute-api
// in the region, then anonymous (chosen when there are no credentials).
// The options are shared between calls: the steps that could write into
// their signer properties are gone (setLegacyContextSigningOptions, see
// trimStack) or have nothing to write (the static endpoint carries no auth
// properties).
type staticAuth []*smithyauth.Option

func newStaticAuth(region string) staticAuth {
	var props smithy.Properties
	smithyhttp.SetSigV4SigningName(&props, signingName)
	smithyhttp.SetSigV4SigningRegion(&props, region)
	return staticAuth{
		{SchemeID: smithyauth.SchemeIDSigV4, SignerProperties: props},
		{SchemeID: smithyauth.SchemeIDAnonymous},
	}
}

func (a staticAuth) ResolveAuthSchemes(context.Context, *apigatewaymanagementapi.AuthResolverParameters) ([]*smithyauth.Option, error) {
	return a, nil
}

// trimStack removes, from each operation's stack, the steps that do nothing
// for us or that we do not want per call:
//
//   - OperationInputValidation, setOperationInput: Send checks its frame;
//     the serializer refuses an empty connection id; the auth and endpoint
//     resolvers of this service do not read the input.
//   - ResolveEndpoint (the legacy resolver: none is set), disableHTTPS,
//     setLegacyContextSigningOptions (nothing sets them), RetryMetricsHeader
//     (the Retry step sets the same Amz-Sdk-Request header itself).
//   - UserAgent, rebuilt on every call: replaced by a constant (userAgent).
//   - spanRetryLoop (no tracer), and the interceptor steps when no
//     interceptor is registered.
//   - AddRawResponseToMetadata, RecordResponseTiming (clock skew
//     correction, see newServiceClient), RequestResponseLogger (no logging).
//
// The steps that shape the request stay: ClientRequestID
// (Amz-Sdk-Invocation-Id), RecursionDetection (X-Amzn-Trace-Id in Lambda),
// Retry, auth, endpoint, payload hash, signing, and RequestIDRetriever (the
// request id in error messages). A step that a later SDK renames is simply
// not removed.
func trimStack(ic smithyhttp.InterceptorRegistry) func(*middleware.Stack) error {
	noInterceptors := len(ic.BeforeRetryLoop) == 0 && len(ic.BeforeAttempt) == 0 && len(ic.AfterAttempt) == 0
	return func(s *middleware.Stack) error {
		_, _ = s.Initialize.Remove("OperationInputValidation")
		_, _ = s.Serialize.Remove("setOperationInput")
		_, _ = s.Serialize.Remove("ResolveEndpoint")
		_, _ = s.Build.Remove("UserAgent")
		_, _ = s.Finalize.Remove("spanRetryLoop")
		if noInterceptors {
			_, _ = s.Finalize.Remove("InterceptBeforeRetryLoop")
			_, _ = s.Finalize.Remove("InterceptAttempt")
		}
		_, _ = s.Finalize.Remove("RetryMetricsHeader")
		_, _ = s.Finalize.Remove("disableHTTPS")
		_, _ = s.Finalize.Remove("setLegacyContextSigningOptions")
		_, _ = s.Deserialize.Remove("AddRawResponseToMetadata")
		_, _ = s.Deserialize.Remove("RecordResponseTiming")
		_, _ = s.Deserialize.Remove("RequestResponseLogger")
		return s.Build.Add(fixedUserAgent{}, middleware.After)
	}
}

// fixedUserAgent sets the User-Agent header to userAgent.
type fixedUserAgent struct{}

func (fixedUserAgent) ID() string { return "UserAgent" }

func (fixedUserAgent) HandleBuild(ctx context.Context, in middleware.BuildInput, next middleware.BuildHandler) (middleware.BuildOutput, middleware.Metadata, error) {
	if req, ok := in.Request.(*smithyhttp.Request); ok {
		req.Header["User-Agent"] = userAgentValue
	}
	return next.HandleBuild(ctx, in)
}

// sdkPost posts through the service client. Its inputs are pooled: the SDK
// keeps no reference to one after the call returns.
func (s *Sender) sdkPost(ctx context.Context, connectionID string, data []byte) error {
	in := inputPool.Get().(*postInput)
	in.id = connectionID
	in.in.ConnectionId = &in.id
	in.in.Data = data
	_, err := s.client.PostToConnection(ctx, &in.in)
	in.in.Data, in.id = nil, ""
	inputPool.Put(in)
	return err
}

// postInput is a reusable PostToConnectionInput with room for its id.
type postInput struct {
	in apigatewaymanagementapi.PostToConnectionInput
	id string
}

var inputPool = sync.Pool{New: func() any { return new(postInput) }}

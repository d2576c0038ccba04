package apigw

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	v4 "github.com/aws/aws-sdk-go-v2/aws/signer/v4"
	"github.com/aws/smithy-go/encoding/httpbinding"
	smithyhttp "github.com/aws/smithy-go/transport/http"
)

// signingName is the SigV4 service name of the Management API.
const signingName = "execute-api"

var octetStream = []string{"application/octet-stream"}

// requestBuilder builds and signs PostToConnection requests exactly as the
// SDK client does (TestLeanRequestMatchesSDK): same method, URL (the
// endpoint's path joined with /@connections/{id}, the id escaped as the
// SDK's REST binding escapes it), body, Content-Type, and the same signed
// headers: amz-sdk-invocation-id, amz-sdk-request, content-length,
// content-type, host, x-amz-date and, with a session token,
// x-amz-security-token, under the execute-api service and the config's
// region. Like the SDK, it also sends a User-Agent and, in Lambda, an
// X-Amzn-Trace-Id, neither of them signed.
type requestBuilder struct {
	scheme, host  string
	path, rawPath string                  // "/stage/@connections/", unescaped and escaped
	creds         aws.CredentialsProvider // nil: unsigned requests
	signer        *v4.Signer
	region        string
	now           func() time.Time // the signing clock
	attempts      [][]string       // Amz-Sdk-Request values; index attempt-1
}

func newRequestBuilder(endpoint string, creds aws.CredentialsProvider, region string, maxAttempts int) (*requestBuilder, error) {
	u, err := url.Parse(endpoint)
	if err != nil {
		return nil, err
	}
	if u.Scheme == "" || u.Host == "" {
		return nil, fmt.Errorf("endpoint %q is not an absolute URL", endpoint)
	}
	// As the SDK's endpoint step joins the operation's path to the
	// endpoint's: an endpoint without a RawPath contributes its Path to both.
	raw := u.RawPath
	if raw == "" {
		raw = u.Path
	}
	b := &requestBuilder{
		scheme:  u.Scheme,
		host:    u.Host,
		path:    smithyhttp.JoinPath(u.Path, "/@connections/"),
		rawPath: smithyhttp.JoinPath(raw, "/@connections/"),
		creds:   creds,
		signer:  v4.NewSigner(),
		region:  region,
		now:     time.Now,
	}
	for n := 1; n <= maxAttempts; n++ {
		// As the SDK's retry step sets it (no ttl: no clock skew correction).
		b.attempts = append(b.attempts, []string{"attempt=" + strconv.Itoa(n) + "; max=" + strconv.Itoa(maxAttempts)})
	}
	return b, nil
}

// signingCredentials returns p wrapped in a credentials cache unless it
// is one already, or nil for no credentials or anonymous ones: unsigned
// requests, as the SDK client sends them then.
func signingCredentials(p aws.CredentialsProvider) aws.CredentialsProvider {
	if p == nil || aws.IsCredentialsProvider(p, (*aws.AnonymousCredentials)(nil)) {
		return nil
	}
	if _, ok := p.(*aws.CredentialsCache); ok {
		return p
	}
	return aws.NewCredentialsCache(p)
}

// build returns the signed request for one attempt, signed at the clock's
// time. payloadHash is the hex SHA-256 of data (payloadHash).
func (b *requestBuilder) build(ctx context.Context, id string, data []byte, payloadHash, invocationID string, attempt int) (*http.Request, error) {
	return b.buildAt(ctx, id, data, payloadHash, invocationID, attempt, b.now())
}

func (b *requestBuilder) buildAt(ctx context.Context, id string, data []byte, payloadHash, invocationID string, attempt int, t time.Time) (*http.Request, error) {
	h := make(http.Header, 8)
	h["Content-Type"] = octetStream
	h["User-Agent"] = userAgentValue
	h["Amz-Sdk-Invocation-Id"] = []string{invocationID}
	if attempt >= 1 && attempt <= len(b.attempts) {
		h["Amz-Sdk-Request"] = b.attempts[attempt-1]
	}
	if trace, ok := lambdaTraceID(); ok {
		h["X-Amzn-Trace-Id"] = []string{trace}
	}
	req := &http.Request{
		Method: http.MethodPost,
		URL: &url.URL{
			Scheme:  b.scheme,
			Host:    b.host,
			Path:    b.path + id,
			RawPath: b.rawPath + httpbinding.EscapePath(id, true),
		},
		Proto:         "HTTP/1.1",
		ProtoMajor:    1,
		ProtoMinor:    1,
		Header:        h,
		Body:          frameBody(data),
		GetBody:       func() (io.ReadCloser, error) { return frameBody(data), nil },
		ContentLength: int64(len(data)),
	}
	req = req.WithContext(ctx)
	if b.creds == nil {
		return req, nil
	}
	creds, err := b.creds.Retrieve(ctx)
	if err != nil {
		return nil, fmt.Errorf("get identity: %w", err)
	}
	if err := b.signer.SignHTTP(ctx, creds, req, payloadHash, signingName, b.region, t); err != nil {
		return nil, fmt.Errorf("sign request: %w", err)
	}
	return req, nil
}

// frameBody returns a request body over data. net/http recognizes it as in
// memory, and so writes the headers and a small frame in one system call
// rather than flushing the headers first (the SDK's wrapped bodies cost a
// second write per post).
func frameBody(data []byte) io.ReadCloser { return io.NopCloser(bytes.NewReader(data)) }

// payloadHash returns the hex SHA-256 of data, the signature's payload hash.
func payloadHash(data []byte) string {
	sum := sha256.Sum256(data)
	return hex.EncodeToString(sum[:])
}

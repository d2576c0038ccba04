package apigw_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	v4 "github.com/aws/aws-sdk-go-v2/aws/signer/v4"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/apigatewaymanagementapi"

	"github.com/workorders/notify/internal/apigw"
)

// captured is a request as the server received it.
type captured struct {
	method, path, rawPath, host string
	header                      http.Header
	body                        []byte
}

func (c captured) date(t *testing.T) time.Time {
	t.Helper()
	d, err := time.Parse("20060102T150405Z", c.header.Get("X-Amz-Date"))
	if err != nil {
		t.Fatalf("X-Amz-Date %q: %v", c.header.Get("X-Amz-Date"), err)
	}
	return d
}

// captureServer records every request it receives.
func captureServer(t *testing.T) (*server, <-chan captured) {
	got := make(chan captured, 16)
	srv := newServer(t, func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		got <- captured{r.Method, r.URL.Path, r.URL.EscapedPath(), r.Host, r.Header.Clone(), b}
	})
	return srv, got
}

// The lean path sends what the SDK client sends: for the same connection
// id, body, signing time and invocation id, the same method, URL, Host,
// body, Content-Type, X-Amz-Date, X-Amz-Security-Token and the same
// Authorization header, byte for byte (same credential scope, same signed
// headers: amz-sdk-invocation-id;amz-sdk-request;content-length;
// content-type;host;x-amz-date[;x-amz-security-token], same signature).
// Checked against the client in the Sender's configuration and against a
// client in the SDK's defaults. Every signature is also checked by signing
// the request again with v4.
func TestLeanRequestMatchesSDK(t *testing.T) {
	ids := []string{"L0SM9cOFvHcCIhw=", "a+b/c=d~e_f-g.h", "x y%z"}
	for _, tc := range []struct {
		name, stage, token, prefix string
		lambda                     bool
	}{
		{"stage", "/prod", "", "/prod/@connections/", false},
		{"stage with trailing slash", "/prod/", "", "/prod/@connections/", false},
		{"no stage", "", "", "/@connections/", false},
		{"session token", "/prod", "TOKEN/with+chars=", "/prod/@connections/", false},
		{"in Lambda", "/prod", "TOKEN", "/prod/@connections/", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if tc.lambda {
				// Recursion detection: the trace id goes out (unsigned).
				t.Setenv("AWS_LAMBDA_FUNCTION_NAME", "PublishFunction")
				t.Setenv("_X_AMZN_TRACE_ID", "Root=1-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8;Sampled=1")
			}
			cfg := aws.Config{Region: "eu-west-1", Credentials: credentials.NewStaticCredentialsProvider("AKIDTEST", "SECRETTEST", tc.token)}
			srv, got := captureServer(t)
			opts := fast(srv.URL + tc.stage)
			lean := apigw.New(cfg, opts)
			clients := map[string]func(id string, data []byte) error{
				"Sender's client": func(id string, data []byte) error {
					return apigw.NewSDK(cfg, opts).Send(context.Background(), id, data)
				},
				"SDK defaults": func(id string, data []byte) error {
					c := apigatewaymanagementapi.NewFromConfig(cfg, func(o *apigatewaymanagementapi.Options) {
						o.BaseEndpoint = aws.String(srv.URL + tc.stage)
						o.RetryMaxAttempts = opts.MaxAttempts // the same Amz-Sdk-Request
					})
					_, err := c.PostToConnection(context.Background(), &apigatewaymanagementapi.PostToConnectionInput{ConnectionId: &id, Data: data})
					return err
				},
			}
			for name, post := range clients {
				for _, id := range ids {
					data := []byte(`{"type":"n","id":"` + id + `"}`)
					if err := post(id, data); err != nil {
						t.Fatalf("%s: %v", name, err)
					}
					sdk := <-got
					verifySignature(t, name, cfg, sdk)
					req, err := apigw.LeanRequest(lean, id, data, sdk.header.Get("Amz-Sdk-Invocation-Id"), 1, sdk.date(t))
					if err != nil {
						t.Fatal(err)
					}
					l := fromRequest(t, req)
					verifySignature(t, "lean", cfg, l)
					for _, c := range []struct{ what, sdk, lean string }{
						{"method", sdk.method, l.method},
						{"path", sdk.path, l.path},
						{"escaped path", sdk.rawPath, l.rawPath},
						{"host", sdk.host, l.host},
						{"body", string(sdk.body), string(l.body)},
						{"Content-Type", sdk.header.Get("Content-Type"), l.header.Get("Content-Type")},
						{"X-Amz-Date", sdk.header.Get("X-Amz-Date"), l.header.Get("X-Amz-Date")},
						{"X-Amz-Security-Token", sdk.header.Get("X-Amz-Security-Token"), l.header.Get("X-Amz-Security-Token")},
						{"X-Amzn-Trace-Id", sdk.header.Get("X-Amzn-Trace-Id"), l.header.Get("X-Amzn-Trace-Id")},
						{"credential scope", authPart(sdk.header, "Credential"), authPart(l.header, "Credential")},
						{"signed headers", authPart(sdk.header, "SignedHeaders"), authPart(l.header, "SignedHeaders")},
						{"Authorization", sdk.header.Get("Authorization"), l.header.Get("Authorization")},
					} {
						if c.sdk != c.lean {
							t.Errorf("%s, id %q: %s: SDK %q, lean %q", name, id, c.what, c.sdk, c.lean)
						}
					}
					if want := "/eu-west-1/execute-api/aws4_request"; !strings.HasSuffix(authPart(l.header, "Credential"), want) {
						t.Errorf("credential %q, want scope %s", authPart(l.header, "Credential"), want)
					}
					if tok := l.header.Get("X-Amz-Security-Token"); tok != tc.token {
						t.Errorf("X-Amz-Security-Token %q, want %q", tok, tc.token)
					}
					if trace := l.header.Get("X-Amzn-Trace-Id"); (trace != "") != tc.lambda {
						t.Errorf("X-Amzn-Trace-Id %q", trace)
					}
				}
			}

			// What the lean path puts on the wire is signed correctly too,
			// over the same headers.
			for _, id := range ids {
				if err := lean.Send(context.Background(), id, []byte("frame")); err != nil {
					t.Fatal(err)
				}
				wire := <-got
				verifySignature(t, "lean on the wire", cfg, wire)
				want := "amz-sdk-invocation-id;amz-sdk-request;content-length;content-type;host;x-amz-date"
				if tc.token != "" {
					want += ";x-amz-security-token"
				}
				if sh := authPart(wire.header, "SignedHeaders"); sh != want {
					t.Errorf("signed headers %q, want %q", sh, want)
				}
				if wire.path != tc.prefix+id {
					t.Errorf("path %q, want %q", wire.path, tc.prefix+id)
				}
			}
		})
	}
}

// fromRequest is what a server would receive for req.
func fromRequest(t *testing.T, req *http.Request) captured {
	t.Helper()
	var body []byte
	if req.Body != nil {
		body, _ = io.ReadAll(req.Body)
	}
	host := req.Host
	if host == "" {
		host = req.URL.Host
	}
	h := req.Header.Clone()
	h.Set("Content-Length", itoa(req.ContentLength))
	return captured{req.Method, req.URL.Path, req.URL.EscapedPath(), host, h, body}
}

func itoa(n int64) string { return fmtInt(int(n)) }

// authPart returns the Credential, SignedHeaders or Signature of an
// Authorization header.
func authPart(h http.Header, name string) string {
	auth := strings.TrimPrefix(h.Get("Authorization"), "AWS4-HMAC-SHA256 ")
	for part := range strings.SplitSeq(auth, ", ") {
		if v, ok := strings.CutPrefix(part, name+"="); ok {
			return v
		}
	}
	return ""
}

// verifySignature signs c again with v4, from its signed headers only, and
// checks that the signature is the one c carries.
func verifySignature(t *testing.T, who string, cfg aws.Config, c captured) {
	t.Helper()
	creds, err := cfg.Credentials.Retrieve(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	u := &url.URL{Scheme: "http", Host: c.host, Path: c.path, RawPath: c.rawPath}
	r := &http.Request{Method: c.method, URL: u, Host: c.host, Header: http.Header{}, ContentLength: int64(len(c.body))}
	for name := range strings.SplitSeq(authPart(c.header, "SignedHeaders"), ";") {
		switch name {
		case "host", "content-length", "x-amz-date", "x-amz-security-token":
			// Set by the signer from the request, the time and the
			// credentials.
		default:
			r.Header[http.CanonicalHeaderKey(name)] = c.header.Values(name)
		}
	}
	sum := sha256.Sum256(c.body)
	if err := v4.NewSigner().SignHTTP(context.Background(), creds, r, hex.EncodeToString(sum[:]), "execute-api", cfg.Region, c.date(t)); err != nil {
		t.Fatal(err)
	}
	if got, want := c.header.Get("Authorization"), r.Header.Get("Authorization"); got != want || got == "" {
		t.Errorf("%s: Authorization %q, signing again gives %q", who, got, want)
	}
	if !bytes.Equal([]byte(c.header.Get("X-Amz-Security-Token")), []byte(r.Header.Get("X-Amz-Security-Token"))) {
		t.Errorf("%s: X-Amz-Security-Token %q, want %q", who, c.header.Get("X-Amz-Security-Token"), r.Header.Get("X-Amz-Security-Token"))
	}
}

// A fan-out posts one frame to many connections, and the lean path reuses a
// large frame's payload hash (SHA-256 of up to 128 KiB per post otherwise):
// every post must still be signed over the bytes it sends, whether the frame
// is the same slice, an equal copy, or the same buffer rewritten.
func TestLargeFrameSignatures(t *testing.T) {
	cfg := aws.Config{Region: "eu-west-1", Credentials: credentials.NewStaticCredentialsProvider("AKIDTEST", "SECRETTEST", "")}
	srv, got := captureServer(t)
	s := apigw.New(cfg, fast(srv.URL+"/prod"))
	buf := bytes.Repeat([]byte("a"), 8<<10)
	posts := []struct {
		name string
		data func() []byte
	}{
		{"first", func() []byte { return buf }},
		{"same slice", func() []byte { return buf }},
		{"equal copy", func() []byte { return bytes.Clone(buf) }},
		{"same buffer rewritten", func() []byte { buf[len(buf)/2] = 'b'; return buf }},
		{"shorter", func() []byte { return buf[:len(buf)-1] }},
		{"small", func() []byte { return []byte("small frame") }},
		{"large again", func() []byte { return bytes.Repeat([]byte("c"), 128<<10) }},
	}
	for _, p := range posts {
		data := p.data()
		want := bytes.Clone(data)
		if err := s.Send(context.Background(), "L0SM9cOFvHcCIhw=", data); err != nil {
			t.Fatalf("%s: %v", p.name, err)
		}
		c := <-got
		if !bytes.Equal(c.body, want) {
			t.Fatalf("%s: body differs", p.name)
		}
		verifySignature(t, p.name, cfg, c)
	}
}

// Posts of two large frames from many goroutines at once, alternating, are
// each signed over their own bytes.
func TestLargeFrameSignaturesConcurrent(t *testing.T) {
	cfg := aws.Config{Region: "eu-west-1", Credentials: credentials.NewStaticCredentialsProvider("AKIDTEST", "SECRETTEST", "")}
	srv, got := captureServer(t)
	s := apigw.New(cfg, fast(srv.URL+"/prod"))
	frames := [][]byte{bytes.Repeat([]byte("a"), 16<<10), bytes.Repeat([]byte("b"), 16<<10)}
	const posts = 64
	checked := make(chan struct{})
	go func() {
		defer close(checked)
		for i := range posts {
			var c captured
			select {
			case c = <-got:
			case <-time.After(10 * time.Second): // only keeps a failed post from hanging the test
				t.Errorf("%d of %d posts reached the server", i, posts)
				return
			}
			if !bytes.Equal(c.body, frames[0]) && !bytes.Equal(c.body, frames[1]) {
				t.Errorf("post %d: body is neither frame", i)
			}
			verifySignature(t, fmt.Sprintf("post %d", i), cfg, c)
		}
	}()
	var wg sync.WaitGroup
	for i := range posts {
		wg.Go(func() {
			if err := s.Send(context.Background(), "L0SM9cOFvHcCIhw=", frames[i%2]); err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()
	<-checked
}

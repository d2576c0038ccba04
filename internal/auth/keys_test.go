package auth

import (
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/workorders/notify/internal/notify"
)

// JWT_SECRET must be at least 32 bytes (docs/PROTOCOL.md §2, v1.1): a shorter one
// is the cold-start failure, naming the variable and the length.
func TestSecretStrength(t *testing.T) {
	for _, s := range []string{"s", "local-dev-secret", strings.Repeat("x", MinSecretLength-1)} {
		_, err := NewVerifier(Config{Secret: s})
		wantCode(t, err, notify.EINVALID, "JWT_SECRET must be at least 32 bytes (HS256 needs a 256-bit key), got ")
		if !strings.HasSuffix(err.Error(), "got "+strconv.Itoa(len(s))) {
			t.Errorf("secret of %d bytes: %q does not say its length", len(s), err)
		}
		// Also alongside a JWKS URL: HS256 would still be accepted with it.
		_, err = NewVerifier(Config{Secret: s, JWKSURL: "https://idp.example.com/jwks.json"})
		wantCode(t, err, notify.EINVALID, "JWT_SECRET")
	}
	// Bytes, not characters: 11 three-byte characters are 33 bytes.
	for _, s := range []string{strings.Repeat("x", MinSecretLength), strings.Repeat("€", 11), "local-development-secret-do-not-deploy"} {
		if _, err := NewVerifier(Config{Secret: s}); err != nil {
			t.Errorf("secret of %d bytes refused: %v", len(s), err)
		}
	}
	// No secret with a JWKS URL: nothing to check.
	mustVerifier(t, Config{JWKSURL: "https://idp.example.com/jwks.json"})
}

// JWT_JWKS_URL must be https, or http on a loopback host, decided from the URL
// alone (none of these hosts exists: a lookup would fail or hang).
func TestJWKSURLScheme(t *testing.T) {
	for _, u := range []string{
		"https://cognito-idp.eu-west-1.amazonaws.com/eu-west-1_abc/.well-known/jwks.json",
		"https://jwks.invalid/keys",
		"https://10.0.0.1:8443/jwks",
		"http://localhost/jwks.json",
		"http://LOCALHOST:8080/jwks.json",
		"http://127.0.0.1:9999/jwks",
		"http://127.45.6.7/jwks",
		"http://[::1]:8080/jwks",
		"http://[::ffff:127.0.0.1]/jwks",
	} {
		if _, err := NewVerifier(Config{JWKSURL: u}); err != nil {
			t.Errorf("%s refused: %v", u, err)
		}
	}
	for u, msg := range map[string]string{
		"http://idp.example.com/jwks.json":   "must be https",
		"http://10.0.0.1/jwks":               "must be https",
		"http://128.0.0.1/jwks":              "must be https",
		"http://0.0.0.0:8080/jwks":           "must be https",
		"http://[::2]/jwks":                  "must be https",
		"http://localhost.example.com/jwks":  "must be https",
		"http://localhost.invalid/jwks":      "must be https",
		"http://127.1/jwks":                  "must be https", // not an IP address to netip: a name
		"http://user:pw@idp.example.com/jwk": "must be https",
		"ftp://idp.example.com/jwks.json":    "is not an https URL",
		"not a url":                          "is not an https URL",
		"/jwks.json":                         "is not an https URL",
		"https://":                           "has no host",
		"https://:443/jwks":                  "has no host",
		"http://%zz/":                        "is not a URL",
		"http://user:pw@%zz/":                "is not a URL",
	} {
		_, err := NewVerifier(Config{Secret: secret, JWKSURL: u})
		wantCode(t, err, notify.EINVALID, "JWT_JWKS_URL")
		wantCode(t, err, notify.EINVALID, msg)
		if strings.Contains(err.Error(), "pw@") {
			t.Errorf("%s: the message shows the password: %q", u, err)
		}
	}
}

// The default client refuses a redirect to a URL JWT_JWKS_URL could not be
// (here: plain http off loopback), without following it.
func TestJWKSRedirectDowngradeRefused(t *testing.T) {
	rk, _ := testKeys(t)
	srv := httptest.NewServer(http.RedirectHandler("http://jwks.example.com/keys", http.StatusFound))
	t.Cleanup(srv.Close)
	v := mustVerifier(t, Config{JWKSURL: srv.URL + "/jwks"})
	_, err := v.Verify(ctx, sign(t, jwt.SigningMethodRS256, rk[0], "rsa1", jwt.MapClaims{"sub": "42",
		"exp": time.Now().Add(time.Hour).Unix()}))
	wantCode(t, err, notify.EUNAUTHORIZED, "token signing keys unavailable")
	if !strings.Contains(err.Error(), "redirect refused") {
		t.Fatalf("error %q does not say the redirect was refused", err)
	}
}

// Identity carries the token's iat and exp.
func TestIdentityTimes(t *testing.T) {
	clk := newClock()
	v := mustVerifier(t, Config{Secret: secret, Now: clk.Now})
	hs := func(c jwt.MapClaims) string { return sign(t, jwt.SigningMethodHS256, []byte(secret), "", c) }

	id, err := v.Verify(ctx, hs(claims(jwt.MapClaims{"iat": t0.Add(-time.Minute).Unix(), "exp": t0.Add(2 * time.Hour).Unix()})))
	if err != nil {
		t.Fatal(err)
	}
	if !id.IssuedAt.Equal(t0.Add(-time.Minute)) || !id.ExpiresAt.Equal(t0.Add(2*time.Hour)) {
		t.Fatalf("IssuedAt %v, ExpiresAt %v; want %v, %v", id.IssuedAt, id.ExpiresAt, t0.Add(-time.Minute), t0.Add(2*time.Hour))
	}

	// No iat (or null, or 0): the zero time; exp is still there.
	for name, c := range map[string]jwt.MapClaims{
		"absent": claims(jwt.MapClaims{"iat": nil}),
		"zero":   claims(jwt.MapClaims{"iat": 0}),
	} {
		id, err := v.Verify(ctx, hs(c))
		if err != nil {
			t.Fatalf("iat %s: %v", name, err)
		}
		if !id.IssuedAt.IsZero() || !id.ExpiresAt.Equal(t0.Add(time.Hour)) {
			t.Errorf("iat %s: IssuedAt %v, ExpiresAt %v", name, id.IssuedAt, id.ExpiresAt)
		}
	}
	nullIat := hsRaw(t, `{"sub":"42","exp":`+strconv.Itoa(int(t0.Add(time.Hour).Unix()))+`,"iat":null}`)
	if id, err := v.Verify(ctx, nullIat); err != nil || !id.IssuedAt.IsZero() {
		t.Errorf("iat null: %+v, %v", id, err)
	}

	// Fractions of a second are dropped (jwt's precision is a second).
	id, err = v.Verify(ctx, hs(claims(jwt.MapClaims{"iat": float64(t0.Unix()) + 0.75})))
	if err != nil || !id.IssuedAt.Equal(t0) {
		t.Errorf("fractional iat: IssuedAt %v, err %v; want %v", id.IssuedAt, err, t0)
	}

	// An iat that is not a number is refused: it could not be compared with
	// a revocation.
	_, err = v.Verify(ctx, hs(claims(jwt.MapClaims{"iat": "yesterday"})))
	wantCode(t, err, notify.EUNAUTHORIZED, "iat claim is not a number")

	// From a JWKS key too.
	rk, _ := testKeys(t)
	srv := newJWKSServer(t, rsaJWK("rsa1", &rk[0].PublicKey))
	jv := mustVerifier(t, Config{JWKSURL: srv.URL, Now: clk.Now})
	id, err = jv.Verify(ctx, sign(t, jwt.SigningMethodRS256, rk[0], "rsa1", claims(nil)))
	if err != nil || !id.IssuedAt.Equal(t0) || !id.ExpiresAt.Equal(t0.Add(time.Hour)) {
		t.Errorf("RS256: %+v, %v", id, err)
	}
}

// Keys from the JWKS are trusted for an hour (docs/PROTOCOL.md §2, v1.1): within
// it a key removed from the set still verifies (cached); after it the set is
// fetched again, the removed key is refused and the new one verifies.
func TestJWKSMaxAge(t *testing.T) {
	rk, _ := testKeys(t)
	srv := newJWKSServer(t, rsaJWK("a", &rk[0].PublicKey))
	if !strings.HasPrefix(srv.URL, "http://127.0.0.1:") {
		t.Fatalf("JWKS server at %s, want loopback", srv.URL)
	}
	clk := newClock()
	v := mustVerifier(t, Config{JWKSURL: srv.URL, Now: clk.Now})
	long := jwt.MapClaims{"exp": t0.Add(24 * time.Hour).Unix()}
	tokA := sign(t, jwt.SigningMethodRS256, rk[0], "a", claims(long))
	tokB := sign(t, jwt.SigningMethodRS256, rk[1], "b", claims(long))

	if _, err := v.Verify(ctx, tokA); err != nil {
		t.Fatal(err)
	}
	// The identity provider drops key A for key B.
	srv.setKeys(rsaJWK("b", &rk[1].PublicKey))

	// Before the hour: A is still trusted, nothing is fetched.
	clk.Advance(JWKSMaxAge - time.Second)
	if _, err := v.Verify(ctx, tokA); err != nil {
		t.Fatalf("key A before the hour: %v", err)
	}
	if n := srv.hits.Load(); n != 1 {
		t.Fatalf("hits before the hour = %d, want 1", n)
	}

	// After the hour: the set is fetched again; A is refused, B verifies.
	clk.Advance(time.Second)
	_, err := v.Verify(ctx, tokA)
	wantCode(t, err, notify.EUNAUTHORIZED, `token key id "a" not found in JWKS`)
	if n := srv.hits.Load(); n != 2 {
		t.Fatalf("hits after the hour = %d, want 2", n)
	}
	if _, err := v.Verify(ctx, tokB); err != nil {
		t.Fatalf("key B after the hour: %v", err)
	}
	// And A again: refused, without another fetch (the unknown-kid rate
	// limit still holds).
	_, err = v.Verify(ctx, tokA)
	wantCode(t, err, notify.EUNAUTHORIZED, `token key id "a" not found in JWKS`)
	if n := srv.hits.Load(); n != 2 {
		t.Fatalf("hits = %d, want 2", n)
	}

	// A key replaced under the same kid stops verifying after the hour too.
	srv.setKeys(rsaJWK("b", &rk[0].PublicKey))
	clk.Advance(JWKSMaxAge - time.Minute)
	if _, err := v.Verify(ctx, tokB); err != nil {
		t.Fatalf("key B before its hour: %v", err)
	}
	clk.Advance(time.Minute)
	_, err = v.Verify(ctx, tokB)
	wantCode(t, err, notify.EUNAUTHORIZED, "token signature invalid")
	if n := srv.hits.Load(); n != 3 {
		t.Fatalf("hits = %d, want 3", n)
	}
}

// When the JWKS cannot be fetched again after the hour, tokens are refused
// rather than verified with the stale keys; once it answers again they are
// accepted.
func TestJWKSMaxAgeRefetchFails(t *testing.T) {
	rk, _ := testKeys(t)
	srv := newJWKSServer(t, rsaJWK("a", &rk[0].PublicKey))
	clk := newClock()
	v := mustVerifier(t, Config{JWKSURL: srv.URL, Now: clk.Now})
	tok := sign(t, jwt.SigningMethodRS256, rk[0], "a", claims(jwt.MapClaims{"exp": t0.Add(24 * time.Hour).Unix()}))
	if _, err := v.Verify(ctx, tok); err != nil {
		t.Fatal(err)
	}

	srv.setStatus(http.StatusServiceUnavailable)
	clk.Advance(JWKSMaxAge)
	for range 3 {
		_, err := v.Verify(ctx, tok)
		wantCode(t, err, notify.EUNAUTHORIZED, "token signing keys unavailable")
	}
	// One fetch for the three: a failure is retried after failureBackoff.
	if n := srv.hits.Load(); n != 2 {
		t.Fatalf("hits = %d, want 2", n)
	}
	clk.Advance(failureBackoff)
	_, err := v.Verify(ctx, tok)
	wantCode(t, err, notify.EUNAUTHORIZED, "token signing keys unavailable")
	if n := srv.hits.Load(); n != 3 {
		t.Fatalf("hits after the backoff = %d, want 3", n)
	}

	srv.setStatus(http.StatusOK)
	clk.Advance(failureBackoff)
	if _, err := v.Verify(ctx, tok); err != nil {
		t.Fatalf("after the JWKS recovered: %v", err)
	}
	if n := srv.hits.Load(); n != 4 {
		t.Fatalf("hits after recovery = %d, want 4", n)
	}
}

// hsRaw signs a raw JSON payload with HS256 and secret.
func hsRaw(t testing.TB, payload string) string {
	t.Helper()
	m := jwt.SigningMethodHS256
	signing := b64u([]byte(`{"alg":"HS256","typ":"JWT"}`)) + "." + b64u([]byte(payload))
	sig, err := m.Sign(signing, []byte(secret))
	if err != nil {
		t.Fatal(err)
	}
	return signing + "." + b64u(sig)
}

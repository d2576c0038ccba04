package auth

import (
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/workorders/notify/internal/notify"
)

const secret = "test-secret-of-reasonable-length"

func TestNewVerifierConfig(t *testing.T) {
	_, err := NewVerifier(Config{})
	wantCode(t, err, notify.EINVALID, "JWT_SECRET")
	wantCode(t, err, notify.EINVALID, "JWT_JWKS_URL")

	_, err = NewVerifier(Config{JWKSURL: "not a url"})
	wantCode(t, err, notify.EINVALID, "JWT_JWKS_URL")

	// Nothing is fetched at construction (cold start).
	srv := newJWKSServer(t)
	mustVerifier(t, Config{JWKSURL: srv.URL})
	if n := srv.hits.Load(); n != 0 {
		t.Fatalf("NewVerifier fetched the JWKS %d times, want 0", n)
	}
}

func TestVerifyHS256(t *testing.T) {
	clk := newClock()
	v := mustVerifier(t, Config{Secret: secret, Now: clk.Now})
	tok := sign(t, jwt.SigningMethodHS256, []byte(secret), "",
		claims(jwt.MapClaims{"groups": []string{"team:plant-3", "role:dispatcher", "team:plant-3"}}))
	id, err := v.Verify(ctx, tok)
	if err != nil {
		t.Fatal(err)
	}
	if id.UserID != "42" || !slices.Equal(id.Groups, []string{"team:plant-3", "role:dispatcher"}) {
		t.Fatalf("identity = %+v", id)
	}

	// No groups claim: empty, not nil.
	id, err = v.Verify(ctx, sign(t, jwt.SigningMethodHS256, []byte(secret), "", claims(nil)))
	if err != nil || id.Groups == nil || len(id.Groups) != 0 {
		t.Fatalf("identity = %#v, err = %v", id, err)
	}
}

func TestVerifyTokenMatrix(t *testing.T) {
	clk := newClock()
	v := mustVerifier(t, Config{Secret: secret, Issuer: "https://issuer.example", Audience: "app", Now: clk.Now})
	good := jwt.MapClaims{"iss": "https://issuer.example", "aud": "app"}
	with := func(extra jwt.MapClaims) jwt.MapClaims {
		c := claims(good)
		for k, val := range extra {
			if val == nil {
				delete(c, k)
			} else {
				c[k] = val
			}
		}
		return c
	}
	hs := func(c jwt.MapClaims) string { return sign(t, jwt.SigningMethodHS256, []byte(secret), "", c) }
	groups := func(n int) []string {
		g := make([]string, n)
		for i := range g {
			g[i] = fmt.Sprintf("g%d", i)
		}
		return g
	}
	none := sign(t, jwt.SigningMethodNone, jwt.UnsafeAllowNoneSignatureType, "", with(nil))
	valid := hs(with(nil))

	refused := []struct {
		name, token, msg string
	}{
		{"missing", "", "missing token"},
		{"malformed", "not-a-jwt", "token malformed"},
		{"malformed segments", "a.b.c", "token malformed"},
		{"bad signature bytes", valid[:strings.LastIndex(valid, ".")+1] + "AAAA", "token signature invalid"},
		{"alg none", none, `token algorithm "none" not accepted`},
		{"alg none unsigned", strings.TrimSuffix(none, "."), "token malformed"},
		{"wrong HS key", sign(t, jwt.SigningMethodHS256, []byte("another-secret"), "", with(nil)), "token signature invalid"},
		{"HS384", sign(t, jwt.SigningMethodHS384, []byte(secret), "", with(nil)), `token algorithm "HS384" not accepted`},
		{"expired beyond leeway", hs(with(jwt.MapClaims{"exp": t0.Add(-61 * time.Second).Unix()})), "token expired"},
		{"no exp", hs(with(jwt.MapClaims{"exp": nil})), "token has no exp claim"},
		{"exp not a number", hs(with(jwt.MapClaims{"exp": "tomorrow"})), "token claims invalid"},
		{"nbf in the future", hs(with(jwt.MapClaims{"nbf": t0.Add(2 * time.Minute).Unix()})), "not valid yet"},
		{"wrong issuer", hs(with(jwt.MapClaims{"iss": "https://evil.example"})), `issuer "https://evil.example" not accepted`},
		{"no issuer", hs(with(jwt.MapClaims{"iss": nil})), "token has no iss claim"},
		{"wrong audience", hs(with(jwt.MapClaims{"aud": "other"})), `audience "other" not accepted`},
		{"wrong audience array", hs(with(jwt.MapClaims{"aud": []string{"a", "b"}})), "not accepted"},
		{"aud wins over client_id", hs(with(jwt.MapClaims{"aud": "other", "client_id": "app"})), `audience "other" not accepted`},
		{"wrong client_id", hs(with(jwt.MapClaims{"aud": nil, "client_id": "other"})), `client_id "other" not accepted`},
		{"no aud nor client_id", hs(with(jwt.MapClaims{"aud": nil})), "no aud or client_id"},
		{"no sub", hs(with(jwt.MapClaims{"sub": nil})), "token has no sub claim"},
		{"empty sub", hs(with(jwt.MapClaims{"sub": ""})), "token has no sub claim"},
		{"sub not a string", hs(with(jwt.MapClaims{"sub": 42})), "sub claim is not a string"},
		{"sub with a space", hs(with(jwt.MapClaims{"sub": "user 42"})), "not a valid user id"},
		{"sub too long", hs(with(jwt.MapClaims{"sub": strings.Repeat("a", 129)})), "not a valid user id"},
		{"51 groups", hs(with(jwt.MapClaims{"groups": groups(51)})), "more than 50"},
		{"groups not an array", hs(with(jwt.MapClaims{"groups": "team:a"})), `"groups" claim is not an array`},
		{"group not a string", hs(with(jwt.MapClaims{"groups": []any{"a", 1}})), "item 1 is not a string"},
		{"bad group name", hs(with(jwt.MapClaims{"groups": []string{"ok", "bad/name"}})), "not a valid group name"},
		{"too large", strings.Repeat("a", MaxTokenLength+1), "token too large"},
	}
	for _, tc := range refused {
		t.Run(tc.name, func(t *testing.T) {
			id, err := v.Verify(ctx, tc.token)
			wantCode(t, err, notify.EUNAUTHORIZED, tc.msg)
			if id.UserID != "" {
				t.Fatalf("identity %+v returned with an error", id)
			}
		})
	}

	accepted := []struct {
		name  string
		token string
	}{
		{"valid", valid},
		{"expired within leeway", hs(with(jwt.MapClaims{"exp": t0.Add(-50 * time.Second).Unix()}))},
		{"nbf within leeway", hs(with(jwt.MapClaims{"nbf": t0.Add(50 * time.Second).Unix()}))},
		{"aud array match", hs(with(jwt.MapClaims{"aud": []string{"other", "app"}}))},
		{"client_id match", hs(with(jwt.MapClaims{"aud": nil, "client_id": "app"}))},
		{"50 groups", hs(with(jwt.MapClaims{"groups": groups(50)}))},
		{"groups empty", hs(with(jwt.MapClaims{"groups": []any{}}))},
		{"groups null", hs(with(jwt.MapClaims{"groups": nil}))},
	}
	for _, tc := range accepted {
		t.Run(tc.name, func(t *testing.T) {
			id, err := v.Verify(ctx, tc.token)
			if err != nil {
				t.Fatal(err)
			}
			if id.UserID != "42" {
				t.Fatalf("identity = %+v", id)
			}
		})
	}
}

// An HS256 token whose HMAC key is the RSA public key's PEM (the classic
// algorithm confusion attack) must fail whether or not a secret is set.
func TestVerifyHSRSConfusion(t *testing.T) {
	rk, _ := testKeys(t)
	srv := newJWKSServer(t, rsaJWK("rsa1", &rk[0].PublicKey))
	der, err := x509.MarshalPKIXPublicKey(&rk[0].PublicKey)
	if err != nil {
		t.Fatal(err)
	}
	pemBytes := pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der})
	forged := sign(t, jwt.SigningMethodHS256, pemBytes, "rsa1", claims(nil))
	clk := newClock()

	both := mustVerifier(t, Config{Secret: secret, JWKSURL: srv.URL, Now: clk.Now})
	_, err = both.Verify(ctx, forged)
	wantCode(t, err, notify.EUNAUTHORIZED, "token signature invalid")

	jwksOnly := mustVerifier(t, Config{JWKSURL: srv.URL, Now: clk.Now})
	_, err = jwksOnly.Verify(ctx, forged)
	wantCode(t, err, notify.EUNAUTHORIZED, `token algorithm "HS256" not accepted`)

	// And the other way: an RS256 token is refused by a secret-only verifier.
	secretOnly := mustVerifier(t, Config{Secret: secret, Now: clk.Now})
	_, err = secretOnly.Verify(ctx, sign(t, jwt.SigningMethodRS256, rk[0], "rsa1", claims(nil)))
	wantCode(t, err, notify.EUNAUTHORIZED, `token algorithm "RS256" not accepted`)
}

func TestVerifyJWKS(t *testing.T) {
	rk, ek := testKeys(t)
	srv := newJWKSServer(t, rsaJWK("rsa1", &rk[0].PublicKey), ecJWK(t, "ec1", &ek.PublicKey))
	clk := newClock()
	v := mustVerifier(t, Config{Secret: secret, JWKSURL: srv.URL, Issuer: "https://cognito.example/pool",
		Audience: "client-123", GroupsClaim: "cognito:groups", Now: clk.Now})
	c := claims(jwt.MapClaims{"iss": "https://cognito.example/pool", "client_id": "client-123",
		"cognito:groups": []string{"team:plant-3"}, "groups": []string{"ignored"}})

	for _, tc := range []struct {
		name  string
		token string
	}{
		{"RS256", sign(t, jwt.SigningMethodRS256, rk[0], "rsa1", c)},
		{"ES256", sign(t, jwt.SigningMethodES256, ek, "ec1", c)},
		{"HS256 alongside", sign(t, jwt.SigningMethodHS256, []byte(secret), "", c)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			id, err := v.Verify(ctx, tc.token)
			if err != nil {
				t.Fatal(err)
			}
			if id.UserID != "42" || !slices.Equal(id.Groups, []string{"team:plant-3"}) {
				t.Fatalf("identity = %+v", id)
			}
		})
	}
	if n := srv.hits.Load(); n != 1 {
		t.Fatalf("JWKS fetched %d times, want 1", n)
	}

	refused := []struct {
		name, token, msg string
	}{
		{"RS256 by another key", sign(t, jwt.SigningMethodRS256, rk[1], "rsa1", c), "token signature invalid"},
		{"ES256 naming an RSA kid", sign(t, jwt.SigningMethodES256, ek, "rsa1", c), `is not a ES256 key`},
		{"RS256 naming an EC kid", sign(t, jwt.SigningMethodRS256, rk[0], "ec1", c), `is not a RS256 key`},
		{"RS256 without kid", sign(t, jwt.SigningMethodRS256, rk[0], "", c), `token key id "" not found`},
		{"RS384", sign(t, jwt.SigningMethodRS384, rk[0], "rsa1", c), `token algorithm "RS384" not accepted`},
		{"ES256 expired", sign(t, jwt.SigningMethodES256, ek, "ec1",
			claims(jwt.MapClaims{"exp": t0.Add(-time.Hour).Unix()})), "token expired"},
	}
	for _, tc := range refused {
		t.Run(tc.name, func(t *testing.T) {
			_, err := v.Verify(ctx, tc.token)
			wantCode(t, err, notify.EUNAUTHORIZED, tc.msg)
		})
	}
}

func TestJWKSRotationAndRateLimit(t *testing.T) {
	rk, _ := testKeys(t)
	srv := newJWKSServer(t, rsaJWK("old", &rk[0].PublicKey))
	clk := newClock()
	v := mustVerifier(t, Config{JWKSURL: srv.URL, Now: clk.Now}) // default interval: 1 minute

	if _, err := v.Verify(ctx, sign(t, jwt.SigningMethodRS256, rk[0], "old", claims(nil))); err != nil {
		t.Fatal(err)
	}
	if n := srv.hits.Load(); n != 1 {
		t.Fatalf("hits = %d, want 1", n)
	}

	// A new key is rotated in; its first token, a while later, triggers
	// exactly one refetch and is accepted.
	clk.Advance(2 * time.Minute)
	srv.setKeys(rsaJWK("old", &rk[0].PublicKey), rsaJWK("new", &rk[1].PublicKey))
	rotated := sign(t, jwt.SigningMethodRS256, rk[1], "new", claims(jwt.MapClaims{"exp": t0.Add(time.Hour).Unix()}))
	for range 3 {
		if _, err := v.Verify(ctx, rotated); err != nil {
			t.Fatal(err)
		}
	}
	if n := srv.hits.Load(); n != 2 {
		t.Fatalf("hits after rotation = %d, want 2", n)
	}

	// Forged kids within the interval cause no fetch.
	for i := range 20 {
		forged := sign(t, jwt.SigningMethodRS256, rk[1], fmt.Sprintf("forged-%d", i), claims(nil))
		_, err := v.Verify(ctx, forged)
		wantCode(t, err, notify.EUNAUTHORIZED, "not found in JWKS")
		clk.Advance(time.Second)
	}
	if n := srv.hits.Load(); n != 2 {
		t.Fatalf("hits after forged kids = %d, want 2", n)
	}

	// Once the interval has passed, one more refetch, and only one.
	clk.Advance(time.Minute)
	for range 5 {
		_, err := v.Verify(ctx, sign(t, jwt.SigningMethodRS256, rk[1], "forged-late", claims(nil)))
		wantCode(t, err, notify.EUNAUTHORIZED, "not found in JWKS")
	}
	if n := srv.hits.Load(); n != 3 {
		t.Fatalf("hits after interval = %d, want 3", n)
	}

	// A key removed from the set is no longer accepted after a refetch.
	srv.setKeys(rsaJWK("new", &rk[1].PublicKey))
	clk.Advance(2 * time.Minute)
	_, _ = v.Verify(ctx, sign(t, jwt.SigningMethodRS256, rk[1], "forged-again", claims(nil)))
	_, err := v.Verify(ctx, sign(t, jwt.SigningMethodRS256, rk[0], "old", claims(nil)))
	wantCode(t, err, notify.EUNAUTHORIZED, `token key id "old" not found`)
}

func TestJWKSConcurrentColdCache(t *testing.T) {
	rk, ek := testKeys(t)
	srv := newJWKSServer(t, rsaJWK("rsa1", &rk[0].PublicKey), ecJWK(t, "ec1", &ek.PublicKey))
	srv.mu.Lock()
	srv.delay = 50 * time.Millisecond
	srv.mu.Unlock()
	clk := newClock()
	v := mustVerifier(t, Config{JWKSURL: srv.URL, Now: clk.Now})
	tokens := []string{
		sign(t, jwt.SigningMethodRS256, rk[0], "rsa1", claims(nil)),
		sign(t, jwt.SigningMethodES256, ek, "ec1", claims(nil)),
	}
	var wg sync.WaitGroup
	errs := make(chan error, 64)
	for i := range 64 {
		wg.Go(func() {
			if _, err := v.Verify(ctx, tokens[i%2]); err != nil {
				errs <- err
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if n := srv.hits.Load(); n != 1 {
		t.Fatalf("concurrent cold verifications fetched %d times, want 1", n)
	}
}

func TestJWKSFetchFailure(t *testing.T) {
	rk, _ := testKeys(t)
	srv := newJWKSServer(t, rsaJWK("rsa1", &rk[0].PublicKey))
	srv.setStatus(http.StatusInternalServerError)
	clk := newClock()
	v := mustVerifier(t, Config{JWKSURL: srv.URL, Now: clk.Now})
	tok := sign(t, jwt.SigningMethodRS256, rk[0], "rsa1", claims(nil))

	_, err := v.Verify(ctx, tok)
	wantCode(t, err, notify.EUNAUTHORIZED, "token signing keys unavailable")
	if !strings.Contains(err.Error(), "HTTP status code: 500") { // jwkset's wording
		t.Fatalf("error text %q does not say why the fetch failed", err.Error())
	}
	// Right away: no new fetch, same refusal.
	_, err = v.Verify(ctx, tok)
	wantCode(t, err, notify.EUNAUTHORIZED, "token signing keys unavailable")
	if n := srv.hits.Load(); n != 1 {
		t.Fatalf("hits = %d, want 1", n)
	}
	// The endpoint recovers; a failure is retried sooner than the interval.
	srv.setStatus(http.StatusOK)
	clk.Advance(failureBackoff)
	if _, err := v.Verify(ctx, tok); err != nil {
		t.Fatal(err)
	}

	// A key set that is not JSON, or has no usable key, is a failure too.
	for _, body := range []string{"nope", `{"keys":[{"kty":"oct","k":"AAAA"}]}`} {
		bad := newJWKSServer(t)
		bad.Config.Handler = http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { _, _ = w.Write([]byte(body)) })
		v := mustVerifier(t, Config{JWKSURL: bad.URL, Now: clk.Now})
		_, err := v.Verify(ctx, tok)
		wantCode(t, err, notify.EUNAUTHORIZED, "token signing keys unavailable")
	}
}

// Only keys that may verify are used: not an RSA key under 2048 bits (nor
// a modulus of zeros), not an encryption key, not a key whose JWK names
// another alg; the other keys of the set still verify. A key that is not
// even valid (a point off its curve) makes jwkset refuse the whole set
// (it parsed the set key by key, skipping such keys, before keyfunc/jwkset):
// tokens are then refused as with a failed fetch.
func TestJWKSKeyStrengthAndUse(t *testing.T) {
	rk, ek := testKeys(t)
	weak, err := rsa.GenerateKey(rand.Reader, 1024)
	if err != nil {
		t.Fatal(err)
	}
	small := rsaJWK("small", &rk[0].PublicKey)
	small["n"] = b64u(make([]byte, 64)) // 512-bit-ish modulus of zeros
	enc := rsaJWK("enc", &rk[0].PublicKey)
	enc["use"] = "enc"
	rs384 := rsaJWK("rs384", &rk[0].PublicKey)
	rs384["alg"] = "RS384"
	srv := newJWKSServer(t, small, rsaJWK("weak", &weak.PublicKey), enc, rs384, rsaJWK("ok", &rk[1].PublicKey))
	v := mustVerifier(t, Config{JWKSURL: srv.URL, Now: newClock().Now})
	for kid, key := range map[string]*rsa.PrivateKey{"small": rk[0], "weak": weak, "enc": rk[0], "rs384": rk[0]} {
		_, err := v.Verify(ctx, sign(t, jwt.SigningMethodRS256, key, kid, claims(nil)))
		wantCode(t, err, notify.EUNAUTHORIZED, `token key id "`+kid+`" is not a RS256 key`)
	}
	if _, err := v.Verify(ctx, sign(t, jwt.SigningMethodRS256, rk[1], "ok", claims(nil))); err != nil {
		t.Fatalf("key ok: %v", err)
	}

	offCurve := ecJWK(t, "offcurve", &ek.PublicKey)
	offCurve["y"] = offCurve["x"]
	bad := newJWKSServer(t, offCurve, rsaJWK("ok", &rk[1].PublicKey))
	v = mustVerifier(t, Config{JWKSURL: bad.URL, Now: newClock().Now})
	_, err = v.Verify(ctx, sign(t, jwt.SigningMethodRS256, rk[1], "ok", claims(nil)))
	wantCode(t, err, notify.EUNAUTHORIZED, "token signing keys unavailable")
	_, err = v.Verify(ctx, sign(t, jwt.SigningMethodES256, ek, "offcurve", claims(nil)))
	wantCode(t, err, notify.EUNAUTHORIZED, "token signing keys unavailable")
}

func js(t testing.TB, v any) string {
	t.Helper()
	b, err := jsonMarshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

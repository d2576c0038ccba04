package auth

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rsa"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/big"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/workorders/notify/internal/notify"
)

const (
	// jwksTimeout bounds one JWKS fetch.
	jwksTimeout = 5 * time.Second
	// jwksMaxBytes bounds a JWKS document.
	jwksMaxBytes = 1 << 20
	// failureBackoff caps the wait before retrying a failed fetch, so that a
	// transient outage at cold start does not lock users out for a whole
	// MinRefreshInterval.
	failureBackoff = 5 * time.Second
	// minRSABits is the smallest RSA modulus accepted.
	minRSABits = 2048
)

// publicKey is one usable key of the set.
type publicKey struct {
	alg string // the JWK's alg, "" when it names none
	key any    // *rsa.PublicKey or *ecdsa.PublicKey (P-256)
}

// keySet is the JWKS cache: keys by kid, fetched lazily, one fetch at a
// time. The set is trusted for maxAge after the fetch that got it; then the
// next verification that needs a key fetches it again first (keys removed
// from the set stop verifying). Within maxAge, a token naming an unknown kid
// causes a refetch at most once per interval (forged kids cannot force
// fetches). A failed fetch is retried after at most failureBackoff.
type keySet struct {
	url      string
	client   *http.Client
	interval time.Duration
	maxAge   time.Duration
	now      func() time.Time

	sem chan struct{} // holds one token while a fetch is being decided or run

	mu          sync.Mutex
	keys        map[string]publicKey // from the last successful fetch
	fetchedAt   time.Time            // when keys were fetched
	attempted   bool
	lastAttempt time.Time
	lastErr     error
}

func newKeySet(url string, client *http.Client, interval, maxAge time.Duration, now func() time.Time) *keySet {
	return &keySet{url: url, client: client, interval: interval, maxAge: maxAge, now: now, sem: make(chan struct{}, 1)}
}

// key returns the key for kid, usable with alg, fetching the set if it is
// older than maxAge, or if kid is not in it and the rate limit allows.
func (s *keySet) key(ctx context.Context, kid, alg string) (any, error) {
	if k, ok := s.cached(kid); ok {
		return k.usable(kid, alg)
	}
	select {
	case s.sem <- struct{}{}:
	case <-ctx.Done():
		return nil, notify.Wrap(notify.EUNAUTHORIZED, ctx.Err(), "token signing keys unavailable")
	}
	defer func() { <-s.sem }()

	// Someone else may have fetched while we waited.
	if k, ok := s.cached(kid); ok {
		return k.usable(kid, alg)
	}
	s.mu.Lock()
	now := s.now()
	wait := s.interval // kid unknown to a fresh set: rate-limited
	switch {
	case s.lastErr != nil:
		// The last fetch failed: retry it sooner than interval, but not on
		// every verification.
		wait = min(wait, failureBackoff)
	case !s.freshLocked(now):
		// No set yet, or one too old to trust: fetch now.
		wait = 0
	}
	recent := s.attempted && now.Sub(s.lastAttempt) < wait
	lastErr := s.lastErr
	s.mu.Unlock()
	if recent {
		if lastErr != nil {
			return nil, notify.Wrap(notify.EUNAUTHORIZED, lastErr, "token signing keys unavailable")
		}
		return nil, unauthorized("token key id " + quote(kid) + " not found in JWKS")
	}

	keys, err := s.fetch(ctx)
	s.mu.Lock()
	s.attempted, s.lastAttempt, s.lastErr = true, s.now(), err
	if err == nil {
		s.keys, s.fetchedAt = keys, s.lastAttempt
	}
	// On failure the previous keys are kept but, once older than maxAge,
	// no longer used (cached and freshLocked): when the JWKS cannot be
	// fetched again after maxAge, tokens are refused rather than verified
	// with stale keys, which may have been removed from the set (revoked)
	// in the meantime.
	s.mu.Unlock()
	if err != nil {
		return nil, notify.Wrap(notify.EUNAUTHORIZED, err, "token signing keys unavailable")
	}
	if k, ok := keys[kid]; ok {
		return k.usable(kid, alg)
	}
	return nil, unauthorized("token key id " + quote(kid) + " not found in JWKS")
}

// cached returns the key for kid from a set fetched less than maxAge ago.
func (s *keySet) cached(kid string) (publicKey, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.freshLocked(s.now()) {
		return publicKey{}, false
	}
	k, ok := s.keys[kid]
	return k, ok
}

// freshLocked says whether there is a set fetched less than maxAge before
// now. s.mu must be held.
func (s *keySet) freshLocked(now time.Time) bool {
	return s.keys != nil && now.Sub(s.fetchedAt) < s.maxAge
}

// usable returns k's key if it may verify alg: RS256 needs an RSA key,
// ES256 a P-256 key, and the JWK's own alg, when given, must be alg.
func (k publicKey) usable(kid, alg string) (any, error) {
	ok := k.alg == "" || k.alg == alg
	switch k.key.(type) {
	case *rsa.PublicKey:
		ok = ok && alg == jwt.SigningMethodRS256.Alg()
	case *ecdsa.PublicKey:
		ok = ok && alg == jwt.SigningMethodES256.Alg()
	default:
		ok = false
	}
	if !ok {
		return nil, unauthorized("token key id " + quote(kid) + " is not a " + alg + " key")
	}
	return k.key, nil
}

// fetch downloads and parses the key set. The fetch is not cancelled with
// ctx (its result serves every caller) but is bounded by jwksTimeout.
func (s *keySet) fetch(ctx context.Context) (map[string]publicKey, error) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), jwksTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, s.url, nil)
	if err != nil {
		return nil, fmt.Errorf("JWKS %s: %w", s.url, err)
	}
	req.Header.Set("Accept", "application/json")
	resp, err := s.client.Do(req)
	if err != nil {
		return nil, fmt.Errorf("fetching JWKS: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("fetching JWKS %s: HTTP %d", s.url, resp.StatusCode)
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, jwksMaxBytes+1))
	if err != nil {
		return nil, fmt.Errorf("reading JWKS %s: %w", s.url, err)
	}
	if len(body) > jwksMaxBytes {
		return nil, fmt.Errorf("JWKS %s is larger than %d bytes", s.url, jwksMaxBytes)
	}
	return parseJWKS(body)
}

// jwk holds the members of a JSON Web Key (RFC 7517, 7518) that are used.
type jwk struct {
	Kty string `json:"kty"`
	Kid string `json:"kid"`
	Use string `json:"use"`
	Alg string `json:"alg"`
	N   string `json:"n"`
	E   string `json:"e"`
	Crv string `json:"crv"`
	X   string `json:"x"`
	Y   string `json:"y"`
}

// parseJWKS parses a JWK set, keeping the RSA and P-256 signature keys and
// skipping the others (encryption keys, other curves or types). The first
// key of a kid wins. A set with no usable key is an error.
func parseJWKS(body []byte) (map[string]publicKey, error) {
	var set struct {
		Keys []jwk `json:"keys"`
	}
	if err := json.Unmarshal(body, &set); err != nil {
		return nil, fmt.Errorf("parsing JWKS: %w", err)
	}
	keys := map[string]publicKey{}
	var errs []error
	for _, k := range set.Keys {
		if k.Use != "" && k.Use != "sig" {
			continue
		}
		if _, dup := keys[k.Kid]; dup {
			continue
		}
		var key any
		var err error
		switch {
		case k.Kty == "RSA" && (k.Alg == "" || k.Alg == "RS256"):
			key, err = parseRSA(k)
		case k.Kty == "EC" && k.Crv == "P-256" && (k.Alg == "" || k.Alg == "ES256"):
			key, err = parseP256(k)
		default:
			continue
		}
		if err != nil {
			errs = append(errs, fmt.Errorf("JWKS key %q: %w", k.Kid, err))
			continue
		}
		keys[k.Kid] = publicKey{alg: k.Alg, key: key}
	}
	if len(keys) == 0 {
		return nil, errors.Join(append([]error{errors.New("JWKS has no usable RS256 or ES256 key")}, errs...)...)
	}
	return keys, nil
}

func parseRSA(k jwk) (*rsa.PublicKey, error) {
	n, err := b64(k.N)
	if err != nil {
		return nil, fmt.Errorf("n: %w", err)
	}
	e, err := b64(k.E)
	if err != nil {
		return nil, fmt.Errorf("e: %w", err)
	}
	if len(e) == 0 || len(e) > 4 {
		return nil, errors.New("unsupported exponent")
	}
	exp := new(big.Int).SetBytes(e)
	if exp.Cmp(big.NewInt(3)) < 0 || exp.Bit(0) == 0 || exp.BitLen() > 31 {
		return nil, errors.New("unsupported exponent")
	}
	mod := new(big.Int).SetBytes(n)
	if mod.BitLen() < minRSABits {
		return nil, fmt.Errorf("RSA modulus of %d bits, fewer than %d", mod.BitLen(), minRSABits)
	}
	return &rsa.PublicKey{N: mod, E: int(exp.Int64())}, nil
}

func parseP256(k jwk) (*ecdsa.PublicKey, error) {
	x, err := b64(k.X)
	if err != nil {
		return nil, fmt.Errorf("x: %w", err)
	}
	y, err := b64(k.Y)
	if err != nil {
		return nil, fmt.Errorf("y: %w", err)
	}
	if len(x) != 32 || len(y) != 32 {
		return nil, errors.New("P-256 coordinates must be 32 bytes")
	}
	return ecdsa.ParseUncompressedPublicKey(elliptic.P256(), append(append([]byte{4}, x...), y...))
}

// b64 decodes base64url, with or without padding.
func b64(s string) ([]byte, error) {
	return base64.RawURLEncoding.DecodeString(strings.TrimRight(s, "="))
}

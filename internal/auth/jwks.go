package auth

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rsa"
	"errors"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/MicahParks/jwkset"
	"github.com/MicahParks/keyfunc/v3"
	"github.com/golang-jwt/jwt/v5"

	"github.com/workorders/notify/internal/notify"
)

const (
	// jwksTimeout bounds one JWKS fetch.
	jwksTimeout = 5 * time.Second
	// failureBackoff caps the wait before retrying a failed fetch, so that a
	// transient outage at cold start does not lock users out for a whole
	// MinRefreshInterval.
	failureBackoff = 5 * time.Second
	// minRSABits is the smallest RSA modulus accepted.
	minRSABits = 2048
)

// keySet is the JWKS behind a Verifier. Fetching and parsing the set are
// jwkset's (NewStorageFromHTTP), choosing the key for a token keyfunc's (by
// kid, honouring the JWK's own alg and use). Only when to fetch stays ours,
// because the library's answers do not fit a Lambda: its periodic refresh
// (RefreshInterval) is a goroutine, which stalls while the sandbox is frozen
// and keeps serving old keys when a refresh fails, so keys could be trusted
// past JWKSMaxAge; its unknown-kid refresh (HTTPClientOptions.
// RefreshUnknownKID) waits on a wall-clock rate.Limiter instead of refusing,
// and can follow neither Config.Now nor the age of the set.
//
// So each fetch is a new storage from NewStorageFromHTTP without
// RefreshInterval (it fetches once, synchronously, and starts no goroutine),
// made by the first verification that needs the set: when there is none yet,
// when it is JWKSMaxAge old (by Config.Now; if that fetch fails, tokens are
// refused rather than checked against keys that may have been revoked), or,
// at most once per interval, when the token's kid is not in it (forged kids
// cannot force fetches). A failed fetch is retried after at most
// failureBackoff. One fetch at a time.
type keySet struct {
	url      string
	opts     jwkset.HTTPClientStorageOptions
	interval time.Duration
	now      func() time.Time
	sem      chan struct{} // held while a fetch is decided or run

	mu        sync.Mutex
	keys      keyfunc.Keyfunc // from the last good fetch; nil before
	fetchedAt time.Time       // of keys
	tried     time.Time       // the last fetch attempt; zero before
	err       error           // its failure
}

// get returns the key set to look kid up in, fetching it first when needed.
func (s *keySet) get(ctx context.Context, kid string) (keyfunc.Keyfunc, error) {
	if kf, ok := s.current(ctx, kid); ok {
		return kf, nil
	}
	select {
	case s.sem <- struct{}{}:
	case <-ctx.Done():
		return nil, unavailable(ctx.Err())
	}
	defer func() { <-s.sem }()
	kf, ok := s.current(ctx, kid) // someone else may have fetched meanwhile
	if ok {
		return kf, nil
	}
	s.mu.Lock()
	wait := s.interval // kid unknown to a fresh set
	if s.err != nil {
		wait = min(wait, failureBackoff)
	} else if kf == nil {
		wait = 0 // no set yet, or one too old to trust
	}
	retry := s.tried.IsZero() || s.now().Sub(s.tried) >= wait
	err := s.err
	s.mu.Unlock()
	if retry {
		kf, err = s.fetch(ctx)
	}
	if err != nil {
		return nil, unavailable(err)
	}
	return kf, nil // kid may still be unknown: keyfunc says so
}

// current returns the set if it is younger than JWKSMaxAge (else nil), and
// whether kid is in it.
func (s *keySet) current(ctx context.Context, kid string) (keyfunc.Keyfunc, bool) {
	s.mu.Lock()
	kf, fetchedAt := s.keys, s.fetchedAt
	now := s.now()
	s.mu.Unlock()
	if kf == nil || now.Sub(fetchedAt) >= JWKSMaxAge {
		return nil, false
	}
	_, err := kf.Storage().KeyRead(ctx, kid)
	return kf, err == nil
}

// fetch gets the set anew. The fetch is not cancelled with ctx (its result
// serves every caller) but is bounded by jwksTimeout.
func (s *keySet) fetch(ctx context.Context) (keyfunc.Keyfunc, error) {
	opts := s.opts
	opts.Ctx = context.WithoutCancel(ctx)
	store, err := jwkset.NewStorageFromHTTP(s.url, opts)
	var kf keyfunc.Keyfunc
	if err == nil {
		kf, err = keyfunc.New(keyfunc.Options{Storage: store, UseWhitelist: []jwkset.USE{jwkset.UseSig, ""}})
	}
	if err == nil {
		// A set in which nothing could verify a token is a failed fetch.
		var all jwt.VerificationKeySet
		if all, err = kf.VerificationKeySet(ctx); err == nil && !slices.ContainsFunc(all.Keys, func(k jwt.VerificationKey) bool {
			return verifies(k, jwt.SigningMethodRS256.Alg()) || verifies(k, jwt.SigningMethodES256.Alg())
		}) {
			err = errors.New("JWKS has no usable RS256 or ES256 key")
		}
	}
	if err != nil {
		err = fmt.Errorf("fetching JWKS: %w", err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.tried, s.err = s.now(), err
	if err != nil {
		return nil, err // the previous keys are kept, but unused once JWKSMaxAge old
	}
	s.keys, s.fetchedAt = kf, s.tried
	return kf, nil
}

// verifies says whether key may verify alg: RS256 needs an RSA key of at
// least minRSABits, ES256 a P-256 key.
func verifies(key any, alg string) bool {
	switch k := key.(type) {
	case *rsa.PublicKey:
		return alg == jwt.SigningMethodRS256.Alg() && k.N.BitLen() >= minRSABits
	case *ecdsa.PublicKey:
		return alg == jwt.SigningMethodES256.Alg() && k.Curve == elliptic.P256()
	}
	return false
}

func unavailable(err error) error {
	return notify.Wrap(notify.EUNAUTHORIZED, err, "token signing keys unavailable")
}

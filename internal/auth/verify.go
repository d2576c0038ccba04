package auth

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/netip"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/MicahParks/jwkset"
	"github.com/golang-jwt/jwt/v5"

	"github.com/workorders/notify/internal/notify"
)

const (
	// Leeway is the clock skew allowed on exp and nbf (docs/PROTOCOL.md §2).
	Leeway = 60 * time.Second
	// DefaultGroupsClaim is the claim read for groups when Config.GroupsClaim is empty.
	DefaultGroupsClaim = "groups"
	// DefaultMinRefreshInterval is Config.MinRefreshInterval's default.
	DefaultMinRefreshInterval = time.Minute
	// MaxTokenLength bounds the tokens Verify will parse, in bytes.
	MaxTokenLength = 16 << 10
	// MinSecretLength is the shortest JWT_SECRET accepted, in bytes: HS256
	// needs a key of at least 256 bits (RFC 7518 §3.2, docs/PROTOCOL.md §2).
	MinSecretLength = 32
	// JWKSMaxAge is how long keys fetched from JWT_JWKS_URL are trusted:
	// after that the set is fetched again before a key of it verifies
	// anything, so a key removed from the set stops verifying within this
	// time (docs/PROTOCOL.md §2).
	JWKSMaxAge = time.Hour
)

// Config configures a Verifier. Secret, JWKSURL or both must be set.
type Config struct {
	// Secret (JWT_SECRET) verifies HS256 tokens; HS256 is refused when empty.
	// When set, it must be at least MinSecretLength bytes.
	Secret string
	// JWKSURL (JWT_JWKS_URL) is where the RS256/ES256 keys are published, e.g.
	// https://cognito-idp.{region}.amazonaws.com/{poolId}/.well-known/jwks.json.
	// RS256 and ES256 are refused when empty. It must be https://, or
	// http:// for a loopback host only (localhost, 127.0.0.0/8, [::1]).
	JWKSURL string
	// Issuer (JWT_ISSUER), when set, must equal the token's iss.
	Issuer string
	// Audience (JWT_AUDIENCE), when set, must be in the token's aud (a string
	// or an array), or, when the token has no aud, equal its client_id.
	Audience string
	// GroupsClaim (JWT_GROUPS_CLAIM) names the claim that lists the user's
	// groups; default "groups" ("cognito:groups" for Cognito).
	GroupsClaim string
	// HTTPClient fetches the JWKS; default a client that follows redirects
	// only to URLs JWKSURL itself could be (https, or http on loopback).
	// Each fetch is also bounded by a 5 s timeout.
	HTTPClient *http.Client
	// MinRefreshInterval is the least time between two JWKS fetches caused by
	// tokens whose kid is unknown, so forged kids cannot force fetches;
	// default 1 minute.
	MinRefreshInterval time.Duration
	// Now returns the current time; default time.Now. For tests.
	Now func() time.Time
}

// Identity is who a verified token says the client is.
type Identity struct {
	// UserID is the token's sub; it satisfies notify.ValidName.
	UserID string
	// Groups are the names in the groups claim, duplicates removed, in token
	// order; each satisfies notify.ValidName. Empty, not nil, when none.
	Groups []string
	// IssuedAt is the token's iat, whole seconds; the zero time when the
	// token has none (or iat is 0).
	IssuedAt time.Time
	// ExpiresAt is the token's exp, whole seconds (always present: exp is
	// required). The token was accepted with Leeway past it.
	ExpiresAt time.Time
}

// Verifier verifies JWTs as docs/PROTOCOL.md §2 says. It is safe for concurrent
// use; create one per process (at cold start) so the key set is cached.
type Verifier struct {
	secret      []byte
	audience    string
	groupsClaim string
	methods     []string
	keys        *keySet
	parser      *jwt.Parser
}

// NewVerifier returns a Verifier for cfg. It fetches nothing (and looks
// nothing up: no DNS either): the JWKS is fetched on the first verification
// that needs it. It fails with an EINVALID *notify.Error naming the variable
// (the cold-start failure of docs/PROTOCOL.md §2) when neither JWT_SECRET nor
// JWT_JWKS_URL is set, when JWT_SECRET is shorter than MinSecretLength
// bytes, or when JWT_JWKS_URL is not an https URL (or an http one on a
// loopback host).
func NewVerifier(cfg Config) (*Verifier, error) {
	if cfg.Secret == "" && cfg.JWKSURL == "" {
		return nil, notify.Errorf(notify.EINVALID, "JWT_SECRET or JWT_JWKS_URL must be set")
	}
	if n := len(cfg.Secret); n > 0 && n < MinSecretLength {
		return nil, notify.Errorf(notify.EINVALID,
			"JWT_SECRET must be at least %d bytes (HS256 needs a 256-bit key), got %d", MinSecretLength, n)
	}
	now := cfg.Now
	if now == nil {
		now = time.Now
	}
	v := &Verifier{
		audience:    cfg.Audience,
		groupsClaim: cfg.GroupsClaim,
	}
	if v.groupsClaim == "" {
		v.groupsClaim = DefaultGroupsClaim
	}
	if cfg.Secret != "" {
		v.secret = []byte(cfg.Secret)
		v.methods = append(v.methods, jwt.SigningMethodHS256.Alg())
	}
	if cfg.JWKSURL != "" {
		if err := checkJWKSURL(cfg.JWKSURL); err != nil {
			return nil, notify.Errorf(notify.EINVALID, "JWT_JWKS_URL %v", err)
		}
		client := cfg.HTTPClient
		if client == nil {
			client = &http.Client{CheckRedirect: checkJWKSRedirect}
		}
		interval := cfg.MinRefreshInterval
		if interval <= 0 {
			interval = DefaultMinRefreshInterval
		}
		v.keys = &keySet{url: cfg.JWKSURL, interval: interval, now: now, sem: make(chan struct{}, 1),
			opts: jwkset.HTTPClientStorageOptions{Client: client, HTTPTimeout: jwksTimeout}}
		v.methods = append(v.methods, jwt.SigningMethodRS256.Alg(), jwt.SigningMethodES256.Alg())
	}
	opts := []jwt.ParserOption{
		jwt.WithValidMethods(v.methods),
		jwt.WithExpirationRequired(),
		jwt.WithLeeway(Leeway),
		jwt.WithTimeFunc(now),
	}
	if cfg.Issuer != "" {
		opts = append(opts, jwt.WithIssuer(cfg.Issuer))
	}
	v.parser = jwt.NewParser(opts...)
	return v, nil
}

// Verify checks token's signature and claims and returns the identity it
// carries. Every refusal is an EUNAUTHORIZED *notify.Error whose message says
// why ("token expired", "token signature invalid", `issuer "x" not
// accepted`...). ctx bounds waiting for a JWKS fetch in progress.
func (v *Verifier) Verify(ctx context.Context, token string) (Identity, error) {
	if token == "" {
		return Identity{}, unauthorized("missing token")
	}
	if len(token) > MaxTokenLength {
		return Identity{}, unauthorized("token too large")
	}
	claims := jwt.MapClaims{}
	parsed, err := v.parser.ParseWithClaims(token, claims, func(t *jwt.Token) (any, error) {
		return v.key(ctx, t)
	})
	if err != nil {
		return Identity{}, v.parseError(parsed, claims, err)
	}
	id, err := v.identity(claims)
	if err != nil {
		return Identity{}, err
	}
	// exp was parsed and checked by the parser (WithExpirationRequired).
	if exp, err := claims.GetExpirationTime(); err == nil && exp != nil {
		id.ExpiresAt = exp.Time
	}
	if claims["iat"] != nil {
		iat, err := claims.GetIssuedAt()
		if err != nil {
			// iat matters (revocation, docs/PROTOCOL.md §2): a token whose iat
			// cannot be read is refused rather than taken as having none.
			return Identity{}, notify.Wrap(notify.EUNAUTHORIZED, err, "iat claim is not a number")
		}
		if iat != nil {
			id.IssuedAt = iat.Time
		}
	}
	return id, nil
}

// checkJWKSURL accepts an absolute https URL, or an http one whose host is
// loopback: localhost by name, or an IP address in 127.0.0.0/8 or ::1. It is
// decided from the URL alone, with no DNS lookup (a name that resolves to a
// loopback address is still not loopback here).
func checkJWKSURL(raw string) error {
	u, err := url.Parse(raw)
	if err != nil {
		// Not shown: it might hold a password, and Redacted needs a URL.
		return errors.New("is not a URL")
	}
	shown := strconv.Quote(u.Redacted())
	switch {
	case u.Scheme != "https" && u.Scheme != "http":
		return fmt.Errorf("%s is not an https URL", shown)
	case u.Host == "" || u.Hostname() == "":
		return fmt.Errorf("%s has no host", shown)
	case u.Scheme == "http" && !loopbackHost(u.Hostname()):
		return fmt.Errorf("%s must be https (http only for a loopback host: localhost, 127.0.0.0/8, [::1])", shown)
	}
	return nil
}

// loopbackHost says whether host (a URL's Hostname, without brackets or
// port) is localhost or a loopback IP address, without resolving anything.
func loopbackHost(host string) bool {
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip, err := netip.ParseAddr(host)
	return err == nil && ip.Zone() == "" && ip.Unmap().IsLoopback()
}

// checkJWKSRedirect is the default JWKS client's redirect policy: a
// redirect must lead where JWT_JWKS_URL itself could point (no downgrade
// from https to http on a non-loopback host).
func checkJWKSRedirect(req *http.Request, via []*http.Request) error {
	if len(via) >= 10 {
		return errors.New("stopped after 10 redirects")
	}
	if err := checkJWKSURL(req.URL.String()); err != nil {
		return fmt.Errorf("JWKS redirect refused: %w", err)
	}
	return nil
}

// key returns the verification key for t, whose alg the parser has already
// checked against v.methods.
func (v *Verifier) key(ctx context.Context, t *jwt.Token) (any, error) {
	switch alg := t.Method.Alg(); alg {
	case jwt.SigningMethodHS256.Alg():
		if v.secret != nil {
			return v.secret, nil
		}
	case jwt.SigningMethodRS256.Alg(), jwt.SigningMethodES256.Alg():
		if v.keys != nil {
			kid, ok := t.Header["kid"].(string)
			switch {
			case !ok && t.Header["kid"] != nil:
				return nil, unauthorized("token kid header is not a string")
			case !ok: // keyfunc would try every key: a token must name its key
				return nil, unauthorized(`token key id "" not found in JWKS (the token has no kid)`)
			}
			kf, err := v.keys.get(ctx, kid)
			if err != nil {
				return nil, err
			}
			key, err := kf.KeyfuncCtx(ctx)(t)
			if errors.Is(err, jwkset.ErrKeyNotFound) {
				return nil, notify.Wrap(notify.EUNAUTHORIZED, err, "token key id "+quote(kid)+" not found in JWKS")
			}
			if err != nil || !verifies(key, alg) {
				// Another kind of key, a weak one, or a JWK whose alg or use forbids it.
				return nil, notify.Wrap(notify.EUNAUTHORIZED, err, "token key id "+quote(kid)+" is not a "+alg+" key")
			}
			return key, nil
		}
	}
	// Unreachable while WithValidMethods matches this switch; fail closed.
	return nil, notify.Errorf(notify.EUNAUTHORIZED, "token algorithm %q not accepted", t.Method.Alg())
}

// parseError turns an error from jwt into an EUNAUTHORIZED *notify.Error.
func (v *Verifier) parseError(t *jwt.Token, claims jwt.MapClaims, err error) error {
	var e *notify.Error
	if errors.As(err, &e) {
		return e // from key: already precise
	}
	var msg string
	switch {
	case errors.Is(err, jwt.ErrTokenMalformed):
		msg = "token malformed"
	case t != nil && t.Header != nil && t.Header["alg"] == nil:
		msg = "token has no alg header"
	case t != nil && (t.Method == nil || !slices.Contains(v.methods, t.Method.Alg())):
		alg, _ := t.Header["alg"].(string)
		return notify.Wrap(notify.EUNAUTHORIZED, err, "token algorithm "+quote(alg)+" not accepted")
	case errors.Is(err, jwt.ErrTokenSignatureInvalid):
		msg = "token signature invalid"
	case errors.Is(err, jwt.ErrTokenExpired):
		msg = "token expired"
	case errors.Is(err, jwt.ErrTokenNotValidYet):
		msg = "token not valid yet (nbf)"
	case errors.Is(err, jwt.ErrTokenRequiredClaimMissing) && claims["exp"] == nil:
		msg = "token has no exp claim"
	case errors.Is(err, jwt.ErrTokenInvalidIssuer):
		iss, _ := claims["iss"].(string)
		msg = "issuer " + quote(iss) + " not accepted"
	case errors.Is(err, jwt.ErrTokenRequiredClaimMissing):
		msg = "token has no iss claim" // the only other claim required
	case errors.Is(err, jwt.ErrTokenInvalidClaims):
		msg = "token claims invalid"
	default:
		msg = "token invalid"
	}
	return notify.Wrap(notify.EUNAUTHORIZED, err, msg)
}

// identity applies the claim rules that jwt lacks: aud with Cognito's
// client_id fallback, sub and groups.
func (v *Verifier) identity(claims jwt.MapClaims) (Identity, error) {
	if v.audience != "" {
		if err := v.checkAudience(claims); err != nil {
			return Identity{}, err
		}
	}

	sub, ok := claims["sub"].(string)
	switch {
	case claims["sub"] == nil || (ok && sub == ""):
		return Identity{}, unauthorized("token has no sub claim")
	case !ok:
		return Identity{}, unauthorized("sub claim is not a string")
	case !notify.ValidName(sub):
		return Identity{}, unauthorized("sub " + quote(sub) +
			" is not a valid user id (1-128 characters of A-Z a-z 0-9 . _ : @ -)")
	}

	id := Identity{UserID: sub, Groups: []string{}}
	raw, present := claims[v.groupsClaim]
	if !present || raw == nil {
		return id, nil
	}
	list, ok := raw.([]any)
	if !ok {
		return Identity{}, unauthorized(quote(v.groupsClaim) + " claim is not an array")
	}
	if len(list) > notify.MaxGroupsPerConnection {
		return Identity{}, notify.Errorf(notify.EUNAUTHORIZED, "%q claim lists %d groups, more than %d",
			v.groupsClaim, len(list), notify.MaxGroupsPerConnection)
	}
	for i, g := range list {
		name, ok := g.(string)
		if !ok {
			return Identity{}, notify.Errorf(notify.EUNAUTHORIZED, "%q claim item %d is not a string", v.groupsClaim, i)
		}
		if !notify.ValidName(name) {
			return Identity{}, notify.Errorf(notify.EUNAUTHORIZED,
				"%q claim item %d, %s, is not a valid group name (1-128 characters of A-Z a-z 0-9 . _ : @ -)",
				v.groupsClaim, i, quote(name))
		}
		if !slices.Contains(id.Groups, name) {
			id.Groups = append(id.Groups, name)
		}
	}
	return id, nil
}

// checkAudience matches v.audience against aud (a string or an array, any
// element), or, when the token has no aud, against client_id.
func (v *Verifier) checkAudience(claims jwt.MapClaims) error {
	if claims["aud"] == nil {
		clientID, ok := claims["client_id"].(string)
		switch {
		case claims["client_id"] == nil:
			return unauthorized("token has no aud or client_id claim")
		case !ok:
			return unauthorized("client_id claim is not a string")
		case clientID != v.audience:
			return unauthorized("client_id " + quote(clientID) + " not accepted")
		}
		return nil
	}
	aud, err := claims.GetAudience()
	if err != nil {
		return notify.Wrap(notify.EUNAUTHORIZED, err, "aud claim is not a string or an array of strings")
	}
	if slices.Contains(aud, v.audience) {
		return nil
	}
	if len(aud) == 1 {
		return unauthorized("audience " + quote(aud[0]) + " not accepted")
	}
	return notify.Errorf(notify.EUNAUTHORIZED, "audience %q not accepted", []string(aud))
}

func unauthorized(msg string) *notify.Error {
	return &notify.Error{Code: notify.EUNAUTHORIZED, Message: msg}
}

// quote quotes a claim value for a message, cut to a readable length.
func quote(s string) string {
	const limit = 140
	if len(s) > limit {
		s = s[:limit] + "..."
	}
	return strconv.Quote(s)
}

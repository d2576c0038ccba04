package devstack

import (
	"errors"
	"fmt"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/workorders/notify/internal/auth"
	"github.com/workorders/notify/internal/notify"
)

// DefaultTokenTTL is how long a development token is valid when TokenClaims
// says nothing.
const DefaultTokenTTL = 12 * time.Hour

// TokenClaims describe a development token.
type TokenClaims struct {
	// Secret signs the token (HS256): JWT_SECRET. Required.
	Secret string
	// Subject is the user id (sub). Required.
	Subject string
	// Groups go in the groups claim, omitted when empty.
	Groups []string
	// GroupsClaim names that claim (JWT_GROUPS_CLAIM); default "groups".
	GroupsClaim string
	// Issuer and Audience set iss and aud when not empty (JWT_ISSUER,
	// JWT_AUDIENCE), so that a stack that enforces them accepts the token.
	Issuer, Audience string
	// TTL is the time to expiry (exp); default DefaultTokenTTL.
	TTL time.Duration
	// Now is the issue time (iat); default time.Now().
	Now time.Time
}

// SignToken returns an HS256 JWT for c. It refuses what a stack would refuse
// anyway (PROTOCOL.md §2): a sub or group that is not 1–128 characters of
// A-Z a-z 0-9 . _ : @ -, or more than 50 groups.
func SignToken(c TokenClaims) (string, error) {
	if c.Secret == "" {
		return "", errors.New("no secret to sign with: JWT_SECRET is empty")
	}
	if !notify.ValidName(c.Subject) {
		return "", fmt.Errorf("sub %q: a user id is 1-128 characters of A-Z a-z 0-9 . _ : @ -", c.Subject)
	}
	if len(c.Groups) > notify.MaxGroupsPerConnection {
		return "", fmt.Errorf("groups: %d given, at most %d", len(c.Groups), notify.MaxGroupsPerConnection)
	}
	for _, g := range c.Groups {
		if !notify.ValidName(g) {
			return "", fmt.Errorf("group %q: a group name is 1-128 characters of A-Z a-z 0-9 . _ : @ -", g)
		}
	}
	if c.TTL <= 0 {
		c.TTL = DefaultTokenTTL
	}
	if c.Now.IsZero() {
		c.Now = time.Now()
	}
	if c.GroupsClaim == "" {
		c.GroupsClaim = auth.DefaultGroupsClaim
	}
	claims := jwt.MapClaims{
		"sub": c.Subject,
		"iat": c.Now.Unix(),
		"exp": c.Now.Add(c.TTL).Unix(),
	}
	if len(c.Groups) > 0 {
		claims[c.GroupsClaim] = c.Groups
	}
	if c.Issuer != "" {
		claims["iss"] = c.Issuer
	}
	if c.Audience != "" {
		claims["aud"] = c.Audience
	}
	return jwt.NewWithClaims(jwt.SigningMethodHS256, claims).SignedString([]byte(c.Secret))
}

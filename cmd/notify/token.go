package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"time"

	"github.com/workorders/notify/internal/app"
	"github.com/workorders/notify/internal/auth"
	"github.com/workorders/notify/internal/devstack"
)

func tokenFlags(fs *flag.FlagSet, env func(string) string) runFunc {
	var (
		c      devstack.TokenClaims
		groups = multiFlag{split: true}
		ttl    time.Duration
	)
	fs.StringVar(&c.Subject, "sub", "", "user `id` (the sub claim); required")
	fs.Var(&groups, "groups", "comma-separated group `names`, e.g. team:plant-3,role:dispatcher (repeatable)")
	fs.DurationVar(&ttl, "ttl", time.Hour, "time until the token expires")
	fs.StringVar(&c.Secret, "secret", orDefault(env, app.EnvJWTSecret, devstack.DevSecret),
		"HS256 `secret` to sign with (env JWT_SECRET)")
	fs.StringVar(&c.GroupsClaim, "groups-claim", orDefault(env, app.EnvJWTGroupsClaim, auth.DefaultGroupsClaim),
		"`claim` that holds the groups (env JWT_GROUPS_CLAIM)")
	fs.StringVar(&c.Issuer, "issuer", env(app.EnvJWTIssuer), "iss claim, when the stack enforces one (env JWT_ISSUER)")
	fs.StringVar(&c.Audience, "audience", env(app.EnvJWTAudience), "aud claim, when the stack enforces one (env JWT_AUDIENCE)")

	return func(ctx context.Context, stdout, stderr io.Writer) error {
		if c.Subject == "" {
			return usagef("--sub is required (the user id)")
		}
		if ttl <= 0 {
			return usagef("--ttl %s: must be positive", ttl)
		}
		c.Groups, c.TTL = groups.values, ttl
		token, err := devstack.SignToken(c)
		if err != nil {
			return err
		}
		fmt.Fprintln(stdout, token)
		return nil
	}
}

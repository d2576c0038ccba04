package main

import (
	"context"
	"encoding/json"
	"flag"
	"io"

	"github.com/workorders/notify/internal/app"
)

// disconnectRequest is PublishFunction's disconnect request (PROTOCOL.md §4).
type disconnectRequest struct {
	Users      []string          `json:"users,omitempty"`
	Groups     []string          `json:"groups,omitempty"`
	Broadcast  bool              `json:"broadcast,omitempty"`
	Disconnect disconnectOptions `json:"disconnect"`
}

type disconnectOptions struct {
	Reason string `json:"reason,omitempty"`
}

// disconnectFlags is `notify disconnect`: close the targets' sockets and, for
// users, refuse their older tokens (sign-out, deactivation).
func disconnectFlags(fs *flag.FlagSet, env func(string) string) runFunc {
	var (
		req          disconnectRequest
		users        multiFlag
		groups       multiFlag
		functionName string
		endpointURL  string
	)
	fs.Var(&users, "user", "user `id` to sign out: its sockets close and its older tokens are refused for 7 days (repeatable)")
	fs.Var(&groups, "group", "group `name` whose sockets to close, e.g. after a membership change (repeatable)")
	fs.BoolVar(&req.Broadcast, "broadcast", false, "close every connection")
	fs.StringVar(&req.Disconnect.Reason, "reason", "", "`text` passed on in the disconnected frames, e.g. \"signed out\" (optional)")
	fs.StringVar(&functionName, "function-name", app.PublishFunction, "function `name or ARN` to invoke")
	fs.StringVar(&endpointURL, "endpoint-url", defaultEndpointURL,
		"Lambda endpoint `URL` (the local stack); empty invokes on AWS with the default credential chain")

	return func(ctx context.Context, stdout, stderr io.Writer) error {
		req.Users, req.Groups = users.values, groups.values
		if len(req.Users) == 0 && len(req.Groups) == 0 && !req.Broadcast {
			return usagef("no target: give --user, --group or --broadcast")
		}
		if functionName == "" {
			return usagef("--function-name is empty")
		}
		payload, err := json.Marshal(req)
		if err != nil {
			return err
		}
		return invokeAndPrint(ctx, env, endpointURL, functionName, payload, false, stdout, stderr)
	}
}

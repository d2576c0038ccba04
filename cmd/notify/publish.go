package main

import (
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net"
	"net/url"
	"strings"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/lambda"
	"github.com/aws/aws-sdk-go-v2/service/lambda/types"

	"github.com/workorders/notify/internal/app"
	"github.com/workorders/notify/internal/devstack"
)

// defaultEndpointURL is where `notify local` listens by default.
const defaultEndpointURL = "http://" + devstack.DefaultAddr

// publishRequest is PublishFunction's input (PROTOCOL.md §4); only what was
// given is sent, so that the function's own defaults and checks apply.
type publishRequest struct {
	Users          []string            `json:"users,omitempty"`
	Groups         []string            `json:"groups,omitempty"`
	Broadcast      bool                `json:"broadcast,omitempty"`
	IdempotencyKey string              `json:"idempotencyKey,omitempty"`
	Notification   publishNotification `json:"notification"`
}

type publishNotification struct {
	Type  string          `json:"type"`
	Title string          `json:"title,omitempty"`
	Body  string          `json:"body,omitempty"`
	Data  json.RawMessage `json:"data,omitempty"`
}

// functionError is a function error as Lambda reports it in the payload.
type functionError struct {
	ErrorType    string `json:"errorType"`
	ErrorMessage string `json:"errorMessage"`
}

func (e functionError) Error() string {
	return fmt.Sprintf("function error %s: %s", e.ErrorType, e.ErrorMessage)
}

func publishFlags(fs *flag.FlagSet, env func(string) string) runFunc {
	var (
		req          publishRequest
		users        multiFlag
		groups       multiFlag
		data         string
		functionName string
		endpointURL  string
		async        bool
	)
	fs.Var(&users, "user", "target user `id` (repeatable)")
	fs.Var(&groups, "group", "target group `name` (repeatable)")
	fs.BoolVar(&req.Broadcast, "broadcast", false, "target every connection")
	fs.StringVar(&req.Notification.Type, "type", "", "notification `type`, e.g. workorder.assigned; required")
	fs.StringVar(&req.Notification.Title, "title", "", "notification `title` (optional)")
	fs.StringVar(&req.Notification.Body, "body", "", "notification `body` (optional)")
	fs.StringVar(&data, "data", "", "notification data, a `JSON` object, e.g. '{\"workOrderId\":\"WO-1042\"}' (optional)")
	fs.StringVar(&req.IdempotencyKey, "idempotency-key", "", "the same `key` within 24 h publishes once (optional)")
	fs.StringVar(&functionName, "function-name", app.PublishFunction, "function `name or ARN` to invoke")
	fs.StringVar(&endpointURL, "endpoint-url", defaultEndpointURL,
		"Lambda endpoint `URL` (the local stack); empty invokes on AWS with the default credential chain")
	fs.BoolVar(&async, "async", false, "invoke asynchronously (InvocationType Event): prints nothing, exits when Lambda accepted it")

	return func(ctx context.Context, stdout, stderr io.Writer) error {
		req.Users, req.Groups = users.values, groups.values
		if len(req.Users) == 0 && len(req.Groups) == 0 && !req.Broadcast {
			return usagef("no target: give --user, --group or --broadcast")
		}
		if req.Notification.Type == "" {
			return usagef("--type is required (e.g. workorder.assigned)")
		}
		if functionName == "" {
			return usagef("--function-name is empty")
		}
		if data != "" {
			if !json.Valid([]byte(data)) {
				var v any
				return usagef("--data is not valid JSON: %v", json.Unmarshal([]byte(data), &v))
			}
			req.Notification.Data = json.RawMessage(data)
		}
		payload, err := json.Marshal(req)
		if err != nil {
			return err
		}
		return invokeAndPrint(ctx, env, endpointURL, functionName, payload, async, stdout, stderr)
	}
}

// invokeAndPrint invokes the function with payload and prints its answer,
// or returns its function error.
func invokeAndPrint(ctx context.Context, env func(string) string, endpointURL, functionName string, payload []byte, async bool, stdout, stderr io.Writer) error {
	client, err := lambdaClient(ctx, endpointURL, env)
	if err != nil {
		return err
	}
	in := &lambda.InvokeInput{FunctionName: aws.String(functionName), Payload: payload}
	if async {
		in.InvocationType = types.InvocationTypeEvent
	}
	out, err := client.Invoke(ctx, in)
	if err != nil {
		return fmt.Errorf("invoking %s: %w", functionName, err)
	}
	if async {
		fmt.Fprintf(stderr, "accepted (%d)\n", out.StatusCode)
		return nil
	}
	if out.FunctionError != nil {
		var fe functionError
		if err := json.Unmarshal(out.Payload, &fe); err != nil || fe.ErrorType == "" && fe.ErrorMessage == "" {
			return fmt.Errorf("function error %s: %s", aws.ToString(out.FunctionError), bytes.TrimSpace(out.Payload))
		}
		return fe
	}
	fmt.Fprintln(stdout, string(bytes.TrimSpace(out.Payload)))
	return nil
}

// lambdaClient is the SDK's Lambda client for endpoint: on a loopback
// endpoint, with static dummy credentials (the local stack checks none);
// without one, AWS with the default configuration.
func lambdaClient(ctx context.Context, endpoint string, env func(string) string) (*lambda.Client, error) {
	if endpoint == "" {
		cfg, err := config.LoadDefaultConfig(ctx)
		if err != nil {
			return nil, fmt.Errorf("loading the AWS configuration: %w", err)
		}
		return lambda.NewFromConfig(cfg), nil
	}
	u, err := url.Parse(endpoint)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, usagef("--endpoint-url %q: want http://HOST:PORT", endpoint)
	}
	var cfg aws.Config
	if isLoopback(u.Hostname()) {
		noNetworkCredentials()
		cfg = aws.Config{
			Region:      orDefault(env, "AWS_REGION", orDefault(env, "AWS_DEFAULT_REGION", devstack.DefaultRegion)),
			Credentials: credentials.NewStaticCredentialsProvider("AKIDLOCAL", "local-secret", ""),
		}
	} else if cfg, err = config.LoadDefaultConfig(ctx); err != nil {
		return nil, fmt.Errorf("loading the AWS configuration: %w", err)
	}
	return lambda.NewFromConfig(cfg, func(o *lambda.Options) {
		o.BaseEndpoint = aws.String(strings.TrimSuffix(endpoint, "/"))
	}), nil
}

func isLoopback(host string) bool {
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

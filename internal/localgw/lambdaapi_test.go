package localgw_test

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"log/slog"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-lambda-go/lambda"
	"github.com/aws/aws-lambda-go/lambdacontext"
	"github.com/aws/aws-sdk-go-v2/aws"
	awslambda "github.com/aws/aws-sdk-go-v2/service/lambda"
	lambdatypes "github.com/aws/aws-sdk-go-v2/service/lambda/types"

	"github.com/workorders/notify/internal/localgw"
)

func TestListAndGetFunctions(t *testing.T) {
	s := newStack(t, func(cfg *localgw.Config) {
		cfg.FunctionTimeouts = map[string]time.Duration{"PublishFunction": 15 * time.Second}
		cfg.FunctionInfo = map[string]localgw.FunctionInfo{
			"PublishFunction": {MemorySize: 512, Architectures: []string{"arm64"}, Environment: map[string]string{"TABLE": "t"}},
		}
	})
	ctx := context.Background()
	list, err := s.lambda.ListFunctions(ctx, &awslambda.ListFunctionsInput{})
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, f := range list.Functions {
		names = append(names, aws.ToString(f.FunctionName))
		if aws.ToString(f.FunctionArn) != "arn:aws:lambda:us-east-1:000000000000:function:"+aws.ToString(f.FunctionName) ||
			f.Runtime != lambdatypes.RuntimeProvidedal2023 || aws.ToString(f.Handler) != "bootstrap" ||
			aws.ToString(f.Version) != "$LATEST" || f.State != lambdatypes.StateActive {
			t.Errorf("ListFunctions entry: %+v", f)
		}
	}
	want := "ConnectFunction DefaultFunction DisconnectFunction EchoFunction PingFunction PublishFunction"
	if strings.Join(names, " ") != want {
		t.Errorf("ListFunctions: %v, want %s", names, want)
	}

	for _, q := range []*string{nil, aws.String("$LATEST")} {
		got, err := s.lambda.GetFunction(ctx, &awslambda.GetFunctionInput{FunctionName: aws.String("PublishFunction"), Qualifier: q})
		if err != nil {
			t.Fatal(err)
		}
		c := got.Configuration
		if c == nil || aws.ToString(c.FunctionName) != "PublishFunction" || aws.ToInt32(c.Timeout) != 15 ||
			aws.ToInt32(c.MemorySize) != 512 || len(c.Architectures) != 1 || c.Architectures[0] != lambdatypes.ArchitectureArm64 ||
			c.Environment == nil || c.Environment.Variables["TABLE"] != "t" || got.Code == nil || c.LastModified == nil {
			t.Errorf("GetFunction: %+v", c)
		}
	}
	// By ARN too.
	if _, err := s.lambda.GetFunction(ctx, &awslambda.GetFunctionInput{
		FunctionName: aws.String("arn:aws:lambda:us-east-1:000000000000:function:EchoFunction"),
	}); err != nil {
		t.Errorf("GetFunction by ARN: %v", err)
	}

	var notFound *lambdatypes.ResourceNotFoundException
	if _, err := s.lambda.GetFunction(ctx, &awslambda.GetFunctionInput{FunctionName: aws.String("NoSuchFunction")}); !errors.As(err, &notFound) {
		t.Errorf("GetFunction of an unknown function: %v", err)
	}
	if _, err := s.lambda.GetFunction(ctx, &awslambda.GetFunctionInput{FunctionName: aws.String("EchoFunction"), Qualifier: aws.String("prod")}); !errors.As(err, &notFound) {
		t.Errorf("GetFunction with an unknown qualifier: %v", err)
	}
}

func TestInvokeQualifier(t *testing.T) {
	s := newStack(t, nil)
	ctx := context.Background()
	for _, fn := range []string{"EchoFunction", "EchoFunction:$LATEST"} {
		out, err := s.lambda.Invoke(ctx, &awslambda.InvokeInput{FunctionName: aws.String(fn), Payload: []byte(`"hi"`), Qualifier: aws.String("$LATEST")})
		if err != nil || string(out.Payload) != `"hi"` {
			t.Errorf("Invoke %s with $LATEST: %v", fn, err)
		}
	}
	var notFound *lambdatypes.ResourceNotFoundException
	for _, in := range []*awslambda.InvokeInput{
		{FunctionName: aws.String("EchoFunction"), Qualifier: aws.String("prod")},
		{FunctionName: aws.String("EchoFunction"), Qualifier: aws.String("1")},
		{FunctionName: aws.String("EchoFunction:live")},
	} {
		in.Payload = []byte(`"hi"`)
		if _, err := s.lambda.Invoke(ctx, in); !errors.As(err, &notFound) {
			t.Errorf("Invoke %s qualifier %s: %v, want ResourceNotFoundException", aws.ToString(in.FunctionName), aws.ToString(in.Qualifier), err)
		}
	}
}

func TestUnknownLambdaPaths(t *testing.T) {
	s := newStack(t, nil)
	base := "http://" + s.gw.Addr()
	for _, tc := range []struct{ method, path, errType string }{
		{"GET", "/2015-03-31/functions/EchoFunction/configuration", "UnknownOperationException"},
		{"GET", "/2015-03-31/nothing", "UnknownOperationException"},
		{"POST", "/2015-03-31/functions/", "UnknownOperationException"},
		{"DELETE", "/2015-03-31/functions/EchoFunction", "UnknownOperationException"},
		{"GET", "/2015-03-31/functions/NoSuchFunction", "ResourceNotFoundException"},
		{"POST", "/2015-03-31/functions/NoSuchFunction/invocations", "ResourceNotFoundException"},
	} {
		req, _ := http.NewRequest(tc.method, base+tc.path, strings.NewReader("{}"))
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		var body map[string]any
		err = json.NewDecoder(resp.Body).Decode(&body)
		resp.Body.Close()
		if resp.StatusCode != 404 || resp.Header.Get("x-amzn-ErrorType") != tc.errType || err != nil || body["message"] == nil ||
			!strings.HasPrefix(resp.Header.Get("Content-Type"), "application/json") {
			t.Errorf("%s %s: %d %q %v %v", tc.method, tc.path, resp.StatusCode, resp.Header.Get("x-amzn-ErrorType"), body, err)
		}
	}
}

// With LogType Tail, the answer carries the last 4 KB of the invocation's log lines: those
// logged with its context or with its request id, not another invocation's.
func TestInvokeLogTail(t *testing.T) {
	var logged bytes.Buffer
	var logger *slog.Logger
	s := newStack(t, func(cfg *localgw.Config) {
		cfg.Logger = slog.New(slog.NewJSONHandler(&logged, nil))
		logger = slog.New(localgw.TailHandler(cfg.Logger.Handler())).With("function", "LogFunction")
		cfg.Functions["LogFunction"] = lambda.NewHandler(func(ctx context.Context, in struct {
			Word  string `json:"word"`
			Lines int    `json:"lines"`
			Fail  bool   `json:"fail"`
		}) (string, error) {
			lc, _ := lambdacontext.FromContext(ctx)
			logger.InfoContext(ctx, "through the context", "word", in.Word)
			logger.With("requestId", lc.AwsRequestID).Info("through the request id", "word", in.Word)
			logger.Info("not this invocation's", "word", "stray")
			for i := range in.Lines {
				logger.InfoContext(ctx, "filler", "i", i, "pad", strings.Repeat("p", 50))
			}
			if in.Fail {
				return "", errors.New("it broke")
			}
			return in.Word, nil
		})
	})
	ctx := context.Background()
	tail := func(payload string) (string, *awslambda.InvokeOutput) {
		t.Helper()
		out, err := s.lambda.Invoke(ctx, &awslambda.InvokeInput{
			FunctionName: aws.String("LogFunction"), Payload: []byte(payload), LogType: lambdatypes.LogTypeTail,
		})
		if err != nil {
			t.Fatal(err)
		}
		b, err := base64.StdEncoding.DecodeString(aws.ToString(out.LogResult))
		if err != nil {
			t.Fatal(err)
		}
		if len(b) > 4096 {
			t.Errorf("log tail of %d bytes", len(b))
		}
		return string(b), out
	}

	got, out := tail(`{"word":"alpha"}`)
	lc := strings.Split(strings.TrimSpace(got), "\n")
	if len(lc) != 5 || !strings.HasPrefix(lc[0], "START RequestId: ") ||
		!strings.Contains(lc[1], `"msg":"through the context"`) || !strings.Contains(lc[1], `"word":"alpha"`) ||
		!strings.Contains(lc[1], `"function":"LogFunction"`) ||
		!strings.Contains(lc[2], `"msg":"through the request id"`) ||
		!strings.HasPrefix(lc[3], "END RequestId: ") || !strings.HasPrefix(lc[4], "REPORT RequestId: ") {
		t.Errorf("log tail:\n%s", got)
	}
	if strings.Contains(got, "stray") || string(out.Payload) != `"alpha"` {
		t.Errorf("log tail has a stray line, or payload %s:\n%s", out.Payload, got)
	}
	// The lines still reach the stack's log.
	if !strings.Contains(logged.String(), `"word":"alpha"`) {
		t.Errorf("stack log: %s", logged.String())
	}

	// A long log: its last 4 KB, ending with REPORT; a function error is in it.
	got, out = tail(`{"word":"beta","lines":200,"fail":true}`)
	if len(got) != 4096 || !strings.Contains(got, "REPORT RequestId: ") || strings.Contains(got, "START RequestId") ||
		!strings.Contains(got, "it broke") || aws.ToString(out.FunctionError) != "Unhandled" {
		t.Errorf("long log tail (%d bytes):\n%s", len(got), got)
	}

	// Without Tail, no log result.
	out, err := s.lambda.Invoke(ctx, &awslambda.InvokeInput{FunctionName: aws.String("LogFunction"), Payload: []byte(`{}`)})
	if err != nil || out.LogResult != nil {
		t.Errorf("without Tail: %v %v", err, out.LogResult)
	}
}

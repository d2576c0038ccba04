package devstack_test

import (
	"context"
	"encoding/base64"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/lambda"
	lambdatypes "github.com/aws/aws-sdk-go-v2/service/lambda/types"
)

// `aws lambda invoke --log-type Tail` against notify local shows the
// function's own log lines of that invocation (PROTOCOL.md §7).
func TestInvokeLogTailHasTheFunctionsLines(t *testing.T) {
	s := startStack(t, backends[0], nil, nil)
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	out, err := s.lambda.Invoke(ctx, &lambda.InvokeInput{
		FunctionName: aws.String("PublishFunction"),
		Payload:      []byte(`{"users":["u-tail"],"notification":{"type":"t"}}`),
		LogType:      lambdatypes.LogTypeTail,
	})
	if err != nil {
		t.Fatal(err)
	}
	tail, err := base64.StdEncoding.DecodeString(aws.ToString(out.LogResult))
	if err != nil || len(tail) == 0 || len(tail) > 4096 {
		t.Fatalf("LogResult %q: %v (want 1..4096 bytes of base64)", aws.ToString(out.LogResult), err)
	}
	for _, want := range []string{"START RequestId:", `"msg":"published"`, "REPORT RequestId:"} {
		if !strings.Contains(string(tail), want) {
			t.Errorf("log tail lacks %q:\n%s", want, tail)
		}
	}
}

package samtemplate

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/awslabs/goformation/v7/cloudformation"
)

func TestDecodeValue(t *testing.T) {
	cases := []struct {
		in   string
		want string
	}{
		{"bootstrap", `"bootstrap"`},
		{"prod", `"prod"`}, // valid base64, but not an encoded intrinsic
		{"", `""`},
		{cloudformation.Ref("ConnectionsTable"), "!Ref ConnectionsTable"},
		{cloudformation.GetAtt("PublishFunction", "Arn"), "!GetAtt PublishFunction.Arn"},
		{cloudformation.Sub("x-${AWS::Region}"), `!Sub "x-${AWS::Region}"`},
		{cloudformation.SubVars("${A}/${B}", map[string]any{"A": cloudformation.Ref("Api"), "B": "lit"}), `!Sub ["${A}/${B}", {A: !Ref Api, B: "lit"}]`},
	}
	for _, c := range cases {
		v, err := decodeValue(c.in)
		if err != nil {
			t.Errorf("decodeValue(%q): %v", c.in, err)
			continue
		}
		if v.String() != c.want {
			t.Errorf("decodeValue(%q) = %s, want %s", c.in, v, c.want)
		}
	}
	if _, err := decodeValue(cloudformation.Join("-", []string{"a", "b"})); err == nil || !strings.Contains(err.Error(), "Fn::Join") {
		t.Errorf("Fn::Join: err = %v, want one naming Fn::Join", err)
	}
}

func TestResolveValue(t *testing.T) {
	vals := map[string]string{"Api": "local", "AWS::Region": "eu-west-1", "Fn.Arn": "arn:fn", "Stage": "prod"}
	lookup := func(name string) (string, error) {
		if s, ok := vals[name]; ok {
			return s, nil
		}
		return "", fmt.Errorf("unknown %s", name)
	}
	cases := []struct {
		v    Value
		want string
	}{
		{Value{Kind: Literal, literal: "x"}, "x"},
		{Value{Kind: Ref, Name: "Api"}, "local"},
		{Value{Kind: GetAtt, Name: "Fn", attribute: "Arn"}, "arn:fn"},
		{Value{Kind: Sub, format: "https://${Api}.execute-api.${AWS::Region}.amazonaws.com/${Stage}"},
			"https://local.execute-api.eu-west-1.amazonaws.com/prod"},
		{Value{Kind: Sub, format: "${Fn.Arn}/invocations"}, "arn:fn/invocations"},
		{Value{Kind: Sub, format: "${!Literal}-${Api}"}, "${Literal}-local"},
		{Value{Kind: Sub, format: "${X}:${Api}", vars: map[string]Value{"X": {Kind: Ref, Name: "Stage"}}}, "prod:local"},
		{Value{Kind: Sub, format: "no placeholders"}, "no placeholders"},
	}
	for _, c := range cases {
		got, err := c.v.resolve(lookup)
		if err != nil || got != c.want {
			t.Errorf("%v.resolve = %q, %v; want %q", c.v, got, err, c.want)
		}
	}
	for _, bad := range []Value{
		{Kind: Sub, format: "${Api"},
		{Kind: Sub, format: "${}"},
		{Kind: Sub, format: "${Missing}"},
		{Kind: Ref, Name: "Missing"},
	} {
		if got, err := bad.resolve(lookup); err == nil {
			t.Errorf("%v.resolve = %q, want an error", bad, got)
		}
	}
}

// Load refuses what the local stack could not run as it deploys.
func TestLoadRefuses(t *testing.T) {
	const head = `Transform: AWS::Serverless-2016-10-31
Resources:
  Fn:
    Type: AWS::Serverless::Function
    Properties: {CodeUri: ., Handler: bootstrap, Runtime: provided.al2023}
`
	const api = `  Api:
    Type: AWS::ApiGatewayV2::Api
    Properties: {Name: x, ProtocolType: WEBSOCKET, RouteSelectionExpression: $request.body.action}
`
	route := func(target, integType, uri string) string {
		return api + `  Route:
    Type: AWS::ApiGatewayV2::Route
    Properties:
      ApiId: !Ref Api
      RouteKey: $default
      Target: ` + target + `
  Integ:
    Type: AWS::ApiGatewayV2::Integration
    Properties:
      ApiId: !Ref Api
      IntegrationType: ` + integType + `
      IntegrationUri: ` + uri + `
`
	}
	lambdaURI := "!Sub arn:aws:apigateway:${AWS::Region}:lambda:path/2015-03-31/functions/${Fn.Arn}/invocations"
	cases := []struct{ name, body, wantErr string }{
		{"no API", head, "WEBSOCKET"},
		{"HTTP integration", head + route("!Sub integrations/${Integ}", "HTTP_PROXY", "https://example.com"), "AWS_PROXY"},
		{"unknown integration", head + route("!Sub integrations/${Other}", "AWS_PROXY", lambdaURI), "Other"},
		{"function not in template", head + route("!Sub integrations/${Integ}", "AWS_PROXY",
			"!Sub arn:aws:apigateway:${AWS::Region}:lambda:path/2015-03-31/functions/${Elsewhere.Arn}/invocations"), "Elsewhere"},
		{"unknown property", head + api + "  Bad:\n    Type: AWS::ApiGatewayV2::Stage\n    Properties: {ApiId: !Ref Api, StageName: x, Throttle: 1}\n", "Throttle"},
		{"unresolvable env", head + api + `  Fn2:
    Type: AWS::Serverless::Function
    Properties:
      CodeUri: .
      Environment: {Variables: {X: !Join ["-", [a, b]]}}
`, "Fn::Join"},
	}
	for _, c := range cases {
		path := filepath.Join(t.TempDir(), "template.yaml")
		if err := os.WriteFile(path, []byte(c.body), 0o644); err != nil {
			t.Fatal(err)
		}
		_, err := Load(path)
		if err == nil || !strings.Contains(err.Error(), c.wantErr) {
			t.Errorf("%s: Load err = %v, want one mentioning %q", c.name, err, c.wantErr)
		}
	}
	// And the happy path of the same skeleton.
	path := filepath.Join(t.TempDir(), "template.yaml")
	if err := os.WriteFile(path, []byte(head+route("!Sub integrations/${Integ}", "AWS_PROXY", lambdaURI)), 0o644); err != nil {
		t.Fatal(err)
	}
	tm, err := Load(path)
	if err != nil {
		t.Fatal(err)
	}
	if tm.Routes["$default"] != "Fn" {
		t.Errorf("routes = %v", tm.Routes)
	}
	if f, b := tm.Functions["Fn"], tm.functionBuild(t, "Fn"); b.memorySize != 128 || f.Timeout != 3 || len(b.architectures) != 0 {
		t.Errorf("SAM defaults not applied: %+v %+v", f, b)
	}
}

package samtemplate

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// What the local stack does not run (log groups, alarms, custom resources)
// and the function properties goformation does not know (LoggingConfig)
// must not stop Load, even where goformation would refuse them (an
// intrinsic for a number); the untyped document still has them.
func TestLoadLeavesOutWhatTheLocalStackDoesNotRun(t *testing.T) {
	const body = `Transform: AWS::Serverless-2016-10-31
Parameters:
  Days: {Type: Number, Default: 7}
Resources:
  Fn:
    Type: AWS::Serverless::Function
    Properties:
      CodeUri: .
      Handler: bootstrap
      Runtime: provided.al2023
      LoggingConfig: {LogGroup: !Ref Logs, LogFormat: Text}
      Environment: {Variables: {LOGS: !Ref Logs}}
  Logs:
    Type: AWS::Logs::LogGroup
    DeletionPolicy: Delete
    UpdateReplacePolicy: Delete
    Properties: {LogGroupName: !Sub "/aws/lambda/${AWS::StackName}/Fn", RetentionInDays: !Ref Days}
  Alarm:
    Type: AWS::CloudWatch::Alarm
    Properties: {EvaluationPeriods: !Ref Days, Threshold: 1, ComparisonOperator: GreaterThanThreshold, MetricName: Errors, Namespace: AWS/Lambda, Period: 60, Statistic: Sum}
  Custom:
    Type: Custom::Thing
    Properties: {ServiceToken: !GetAtt Fn.Arn}
  Api:
    Type: AWS::ApiGatewayV2::Api
    Properties: {Name: x, ProtocolType: WEBSOCKET, RouteSelectionExpression: $request.body.action}
  Route:
    Type: AWS::ApiGatewayV2::Route
    Properties:
      ApiId: !Ref Api
      RouteKey: $default
      Target: !Sub integrations/${Integ}
  Integ:
    Type: AWS::ApiGatewayV2::Integration
    Properties:
      ApiId: !Ref Api
      IntegrationType: AWS_PROXY
      IntegrationUri: !Sub arn:aws:apigateway:${AWS::Region}:lambda:path/2015-03-31/functions/${Fn.Arn}/invocations
`
	path := filepath.Join(t.TempDir(), "template.yaml")
	if err := os.WriteFile(path, []byte(body), 0o644); err != nil {
		t.Fatal(err)
	}
	tm, err := Load(path)
	if err != nil {
		t.Fatal(err)
	}
	if tm.Routes["$default"] != "Fn" {
		t.Errorf("routes = %v", tm.Routes)
	}
	if got := tm.resourcesOfType("AWS::Logs::LogGroup"); len(got) != 1 || got[0] != "Logs" {
		t.Errorf("log groups in the document = %v", got)
	}
	props, _ := tm.resource(t, "Fn")["Properties"].(map[string]any)
	if _, ok := props["LoggingConfig"]; !ok {
		t.Error("the document lost Fn's LoggingConfig")
	}
	// A resource that only the document has is still a resource.
	if _, err := tm.ResolveEnv("Fn", nil, nil); err == nil || !strings.Contains(err.Error(), "no local value for Logs") {
		t.Errorf("ResolveEnv: %v, want no local value for Logs", err)
	}
	env, err := tm.ResolveEnv("Fn", nil, map[string]string{"Logs": "local-logs"})
	if err != nil || env["LOGS"] != "local-logs" {
		t.Errorf("ResolveEnv = %v, %v", env, err)
	}
}

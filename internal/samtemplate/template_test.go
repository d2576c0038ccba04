package samtemplate

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// The routes of PROTOCOL.md §1 and the function each invokes.
var wantRoutes = map[string]string{
	"$connect":    "ConnectFunction",
	"$disconnect": "DisconnectFunction",
	"$default":    "DefaultFunction",
}

var wantFunctions = []string{"ConnectFunction", "DefaultFunction", "DisconnectFunction", "FanoutFunction", "PublishFunction"}

func TestAPIAndRoutes(t *testing.T) {
	tm := realTemplate(t)
	if tm.API != "WebSocketApi" {
		t.Errorf("API = %q, want WebSocketApi", tm.API)
	}
	if tm.RouteSelectionExpression != "$request.body.action" {
		t.Errorf("RouteSelectionExpression = %q", tm.RouteSelectionExpression)
	}
	if got := sortedKeys(tm.Functions); !slices.Equal(got, wantFunctions) {
		t.Errorf("functions = %v, want %v", got, wantFunctions)
	}
	if len(tm.Routes) != len(wantRoutes) {
		t.Errorf("routes = %v, want %v", tm.Routes, wantRoutes)
	}
	for key, fn := range wantRoutes {
		if tm.Routes[key] != fn {
			t.Errorf("route %s → %q, want %s", key, tm.Routes[key], fn)
		}
	}
}

// Load resolved each route through its Target and AWS_PROXY integration;
// this checks the rest of what API Gateway needs to invoke the function: a
// permission for apigateway.amazonaws.com, scoped by SourceArn to this API
// and that one route (any stage), and no authorizer (ConnectFunction
// answers 401/403 itself, PROTOCOL.md §1).
func TestRoutesArePermittedToInvokeTheirFunction(t *testing.T) {
	tm := realTemplate(t)
	perms := tm.cfn.GetAllLambdaPermissionResources()
	for key, fn := range tm.Routes {
		t.Run(key, func(t *testing.T) {
			var found []string
			for id, p := range perms {
				target, err := decodeValue(p.FunctionName)
				if err != nil {
					t.Fatal(err)
				}
				if !(target.Kind == Ref && target.Name == fn) && !(target.Kind == GetAtt && target.Name == fn && target.attribute == "Arn") {
					continue
				}
				if p.Action != "lambda:InvokeFunction" || p.Principal != "apigateway.amazonaws.com" {
					t.Errorf("%s: Action %q Principal %q", id, p.Action, p.Principal)
				}
				if p.SourceArn == nil {
					t.Errorf("%s: no SourceArn: any API Gateway API of any account could invoke %s", id, fn)
					continue
				}
				src, err := decodeValue(*p.SourceArn)
				if err != nil {
					t.Fatal(err)
				}
				want := Value{Kind: Sub, format: "arn:aws:execute-api:${AWS::Region}:${AWS::AccountId}:${" + tm.API + "}/*/" + key}
				if src.String() != want.String() {
					t.Errorf("%s: SourceArn %v, want %v: only route %s may invoke %s", id, src, want, key, fn)
				}
				found = append(found, id)
			}
			if len(found) != 1 {
				t.Errorf("%d AWS::Lambda::Permission for %s (%v), want 1", len(found), fn, found)
			}
		})
	}
	if n, want := len(perms), len(tm.Routes); n != want {
		t.Errorf("%d AWS::Lambda::Permission, want %d: one per route", n, want)
	}
	for id, r := range tm.cfn.GetAllApiGatewayV2RouteResources() {
		if r.AuthorizationType == nil || *r.AuthorizationType != "NONE" || r.AuthorizerId != nil {
			t.Errorf("route %s: AuthorizationType %v, AuthorizerId %v; want NONE and none", id, r.AuthorizationType, r.AuthorizerId)
		}
	}
}

func TestDeploymentAndStage(t *testing.T) {
	tm := realTemplate(t)
	var routeIDs []string
	for id, r := range tm.cfn.GetAllApiGatewayV2RouteResources() {
		if tm.isAPIRef(r.ApiId) {
			routeIDs = append(routeIDs, id)
		}
	}
	deployments := tm.cfn.GetAllApiGatewayV2DeploymentResources()
	if len(deployments) != 1 {
		t.Fatalf("%d deployments, want 1", len(deployments))
	}
	var deploymentID string
	for id, d := range deployments {
		deploymentID = id
		if !tm.isAPIRef(d.ApiId) {
			t.Errorf("%s: ApiId is not !Ref %s", id, tm.API)
		}
		for _, r := range routeIDs {
			if !slices.Contains(d.AWSCloudFormationDependsOn, r) {
				t.Errorf("%s does not DependsOn route %s: it could be created before the route and deploy without it", id, r)
			}
		}
	}

	stages := tm.cfn.GetAllApiGatewayV2StageResources()
	if len(stages) != 1 {
		t.Fatalf("%d stages, want 1", len(stages))
	}
	for id, s := range stages {
		if !tm.isAPIRef(s.ApiId) {
			t.Errorf("%s: ApiId is not !Ref %s", id, tm.API)
		}
		if v, _ := decodeValue(s.StageName); v.Kind != Ref || v.Name != "StageName" {
			t.Errorf("%s: StageName = %v, want !Ref StageName", id, v)
		}
		if s.DeploymentId == nil {
			t.Errorf("%s: no DeploymentId", id)
		} else if v, _ := decodeValue(*s.DeploymentId); v.Kind != Ref || v.Name != deploymentID {
			t.Errorf("%s: DeploymentId = %v, want !Ref %s", id, v, deploymentID)
		}
		rs := s.DefaultRouteSettings
		if rs == nil || rs.ThrottlingBurstLimit == nil || rs.ThrottlingRateLimit == nil {
			t.Errorf("%s: DefaultRouteSettings must set ThrottlingBurstLimit and ThrottlingRateLimit", id)
		}
	}
}

func TestFunctionsRuntime(t *testing.T) {
	tm := realTemplate(t)
	for _, id := range sortedKeys(tm.Functions) {
		f, b := tm.Functions[id], tm.functionBuild(t, id)
		if b.runtime != "provided.al2023" {
			t.Errorf("%s: Runtime %q", id, b.runtime)
		}
		if b.handler != "bootstrap" {
			t.Errorf("%s: Handler %q", id, b.handler)
		}
		// SAM concatenates Globals' and the function's lists: arm64 twice
		// is a deploy error.
		if !slices.Equal(b.architectures, []string{"arm64"}) {
			t.Errorf("%s: Architectures after Globals = %v, want exactly [arm64]", id, b.architectures)
		}
		if f.Timeout < 1 || b.memorySize < 128 {
			t.Errorf("%s: Timeout %d MemorySize %d", id, f.Timeout, b.memorySize)
		}
		if _, routed := routeOf(tm, id); routed && f.Timeout > 29 {
			t.Errorf("%s: Timeout %d s is over API Gateway's 29 s integration timeout", id, f.Timeout)
		}
	}
}

func routeOf(tm *Template, fn string) (string, bool) {
	for k, v := range tm.Routes {
		if v == fn {
			return k, true
		}
	}
	return "", false
}

func TestFunctionsBuildWithMakefile(t *testing.T) {
	tm := realTemplate(t)
	root := repoRoot(t)
	makefile, err := os.ReadFile(filepath.Join(root, "Makefile"))
	if err != nil {
		t.Fatal(err)
	}
	for _, id := range sortedKeys(tm.Functions) {
		b := tm.functionBuild(t, id)
		if st, err := os.Stat(filepath.Join(filepath.Dir(tm.Path), b.codeURI)); err != nil || !st.IsDir() {
			t.Errorf("%s: CodeUri %q is not a folder: %v", id, b.codeURI, err)
		}
		if b.buildMethod != "makefile" {
			t.Errorf("%s: Metadata.BuildMethod %q, want makefile", id, b.buildMethod)
		}
		if b.contextPath == "" {
			t.Errorf("%s: no Metadata.ContextPath", id)
		}
		ctx := filepath.Join(filepath.Dir(tm.Path), b.contextPath)
		if _, err := os.Stat(filepath.Join(ctx, "Makefile")); err != nil {
			t.Errorf("%s: no Makefile in ContextPath %q: %v", id, b.contextPath, err)
		}
		if !makeDefinesTarget(string(makefile), "build-"+id) {
			t.Errorf("Makefile has no rule that makes build-%s", id)
		}
	}
}

func TestParameters(t *testing.T) {
	tm := realTemplate(t)
	defaults := map[string]string{
		"StageName": "prod", "JwtSecret": "", "JwtJwksUrl": "", "JwtIssuer": "", "JwtAudience": "",
		"JwtGroupsClaim": "groups", "RetentionDays": "30", "PublishConcurrency": "64",
		"MaxConnectionsPerUser": "20", "LogRetentionDays": "30",
		"MetricsNamespace": "WorkOrderNotify", "AlarmTopicArn": "", "LogLevel": "INFO", "Tracing": "PassThrough",
		"FanoutThreshold": "1000", "FanoutBatchSize": "500", "FanoutShards": "10", "FanoutPostsPerSecond": "10000",
	}
	for name, want := range defaults {
		p, ok := tm.Parameters[name]
		if !ok {
			t.Errorf("no parameter %s", name)
			continue
		}
		if p.Default == nil || *p.Default != want {
			t.Errorf("%s: Default %v, want %q", name, p.Default, want)
		}
	}
	if p := tm.cfn.Parameters["JwtSecret"]; p.NoEcho == nil || !*p.NoEcho {
		t.Error("JwtSecret is not NoEcho")
	}
	p, ok := tm.Parameters["AllowedOrigins"]
	if !ok {
		t.Fatal("no parameter AllowedOrigins")
	}
	if p.Default != nil {
		t.Errorf("AllowedOrigins has Default %q: a deploy must choose its origins", *p.Default)
	}
	if got := sortedKeys(tm.Parameters); len(got) != len(defaults)+1 {
		t.Errorf("parameters = %v", got)
	}

	// Numbers, with the bounds the code and CloudWatch accept.
	for name, min := range map[string]float64{"RetentionDays": 1, "PublishConcurrency": 1, "MaxConnectionsPerUser": 1,
		"FanoutThreshold": 1, "FanoutBatchSize": 1, "FanoutShards": 1, "FanoutPostsPerSecond": 1} {
		p := tm.cfn.Parameters[name]
		if p.Type != "Number" || p.MinValue == nil || *p.MinValue != min {
			t.Errorf("%s: Type %q MinValue %v, want Number and %v", name, p.Type, p.MinValue, min)
		}
	}
	logs := tm.cfn.Parameters["LogRetentionDays"]
	var allowed []string
	for _, v := range logs.AllowedValues {
		allowed = append(allowed, fmt.Sprint(v))
	}
	if logs.Type != "Number" || !slices.Equal(allowed, cloudWatchRetentionDays) {
		t.Errorf("LogRetentionDays: Type %q AllowedValues %v, want Number and exactly %v", logs.Type, allowed, cloudWatchRetentionDays)
	}
	// The cap reaches the one function that enforces it.
	for fn, f := range tm.Functions {
		v, ok := f.Environment["MAX_CONNECTIONS_PER_USER"]
		if want := fn == "ConnectFunction"; ok != want || (ok && v.String() != "!Ref MaxConnectionsPerUser") {
			t.Errorf("%s: MAX_CONNECTIONS_PER_USER = %v (set: %v), want !Ref MaxConnectionsPerUser on ConnectFunction only", fn, v, ok)
		}
	}
}

// cloudWatchRetentionDays are the values CloudWatch Logs accepts for a log
// group's RetentionInDays.
var cloudWatchRetentionDays = []string{
	"1", "3", "5", "7", "14", "30", "60", "90", "120", "150", "180", "365", "400", "545",
	"731", "1096", "1827", "2192", "2557", "2922", "3288", "3653",
}

// The Rules must refuse a deploy that gives neither JwtSecret nor JwtJwksUrl:
// evaluate every assertion as CloudFormation would for each combination.
func TestRulesRequireATokenKey(t *testing.T) {
	tm := realTemplate(t)
	rules, ok := tm.doc["Rules"].(map[string]any)
	if !ok || len(rules) == 0 {
		t.Fatal("template has no Rules")
	}
	cases := []struct {
		secret, jwks string
		pass         bool
	}{
		{"", "", false},
		{"a-deploy-secret-of-32-bytes-or-more", "", true},
		{"", "https://example.com/jwks.json", true},
		{"a-deploy-secret-of-32-bytes-or-more", "https://example.com/jwks.json", true},
	}
	for _, c := range cases {
		params := map[string]string{"AllowedOrigins": "https://app.example.com"}
		for name, p := range tm.Parameters {
			if p.Default != nil {
				params[name] = *p.Default
			}
		}
		params["JwtSecret"], params["JwtJwksUrl"] = c.secret, c.jwks
		pass := true
		for name, r := range rules {
			rule := r.(map[string]any)
			if cond, ok := rule["RuleCondition"]; ok {
				if !evalRule(t, cond, params) {
					continue
				}
			}
			for _, a := range list(rule["Assertions"]) {
				if !evalRule(t, a.(map[string]any)["Assert"], params) {
					pass = false
					if a.(map[string]any)["AssertDescription"] == nil {
						t.Errorf("rule %s: an assertion without AssertDescription", name)
					}
				}
			}
		}
		if pass != c.pass {
			t.Errorf("JwtSecret=%q JwtJwksUrl=%q: rules pass = %v, want %v", c.secret, c.jwks, pass, c.pass)
		}
	}
}

// evalRule evaluates the rule functions the template uses.
func evalRule(t *testing.T, x any, params map[string]string) bool {
	t.Helper()
	m, ok := x.(map[string]any)
	if !ok || len(m) != 1 {
		t.Fatalf("rule expression %v", x)
	}
	for fn, arg := range m {
		args := list(arg)
		switch fn {
		case "Fn::Or", "Fn::And":
			or := fn == "Fn::Or"
			for _, a := range args {
				if evalRule(t, a, params) == or {
					return or
				}
			}
			return !or
		case "Fn::Not":
			return !evalRule(t, args[0], params)
		case "Fn::Equals":
			return ruleValue(t, args[0], params) == ruleValue(t, args[1], params)
		}
		t.Fatalf("rule function %s not handled by this test", fn)
	}
	return false
}

func ruleValue(t *testing.T, x any, params map[string]string) string {
	t.Helper()
	switch x := x.(type) {
	case string:
		return x
	case map[string]any:
		if name, ok := x["Ref"].(string); ok {
			v, ok := params[name]
			if !ok {
				t.Fatalf("rule refers to unknown parameter %s", name)
			}
			return v
		}
	}
	t.Fatalf("rule value %v not handled by this test", x)
	return ""
}

const manageConnections = "execute-api:ManageConnections"

// Each function may call the Management API methods its code calls, on this
// API's stage only: POST sends a frame, DELETE closes a socket; none reads
// a connection (GET).
func TestManageConnectionsOnThisAPIOnly(t *testing.T) {
	tm := realTemplate(t)
	on := func(method string) string {
		return (Value{Kind: Sub, format: "arn:aws:execute-api:${AWS::Region}:${AWS::AccountId}:${" + tm.API + "}/${StageName}/" + method + "/@connections/*"}).String()
	}
	postAndDelete := []string{on("DELETE"), on("POST")}
	want := map[string][]string{
		// Closes the user's oldest sockets beyond MAX_CONNECTIONS_PER_USER,
		// after a `disconnected` frame.
		"ConnectFunction": postAndDelete,
		// Answers frames; closes a connection whose token expired.
		"DefaultFunction": postAndDelete,
		// Delivers; closes the sockets of a disconnect request.
		"PublishFunction": postAndDelete,
		// Delivers a batch; closes connections whose token expired.
		"FanoutFunction": postAndDelete,
	}
	for _, fn := range wantFunctions {
		var resources []string
		for _, st := range tm.statements(t, fn) {
			if st.Effect != "Allow" {
				continue
			}
			for _, a := range st.Actions {
				if a == manageConnections || a == "execute-api:*" || a == "*" {
					for _, r := range st.Resources {
						resources = append(resources, r.String())
					}
				}
			}
		}
		slices.Sort(resources)
		if !slices.Equal(resources, want[fn]) {
			t.Errorf("%s: %s on %v, want exactly %v", fn, manageConnections, resources, want[fn])
		}
	}
}

// Least privilege: each function gets exactly the DynamoDB actions that
// internal/dynamo makes for the service calls the function serves, on its
// tables (and the ByConnection index only where it scans it), and no
// action of another service but execute-api:ManageConnections, and
// PublishFunction's sqs:SendMessage on its dead-letter queue (for Lambda's
// OnFailure destination: TestAsyncPublishesHaveADeadLetterQueue). When the
// store's access pattern changes, change this table with the template.
func TestTablePermissionsAreLeastPrivilege(t *testing.T) {
	tm := realTemplate(t)
	conns := "!GetAtt ConnectionsTable.Arn"
	byConn := `!Sub "${ConnectionsTable.Arn}/index/ByConnection"`
	notifs := "!GetAtt NotificationsTable.Arn"
	want := map[string]map[string][]string{
		// Stores the connection or undoes a partial store; reads the
		// user's revocation record and a connection before deleting it;
		// queries the user's connections (MAX_CONNECTIONS_PER_USER).
		"ConnectFunction": {
			conns: {"BatchWriteItem", "DeleteItem", "GetItem", "PutItem", "Query"},
		},
		"DisconnectFunction": {
			conns: {"BatchWriteItem", "DeleteItem", "GetItem"},
		},
		// Reads only, on connections: the sender's, the user's others.
		"DefaultFunction": {
			conns:  {"GetItem", "Query"},
			notifs: {"BatchGetItem", "BatchWriteItem", "GetItem", "Query", "UpdateItem"},
		},
		// Targets, 410 cleanup and closing, a revoked user's record.
		"PublishFunction": {
			conns:  {"BatchWriteItem", "DeleteItem", "GetItem", "Query", "UpdateItem"},
			byConn: {"Scan"},
			notifs: {"BatchWriteItem", "DeleteItem", "GetItem", "PutItem", "UpdateItem"},
		},
		// 410 cleanup and closing expired connections; the batch carries
		// its targets, so no reads of them.
		"FanoutFunction": {
			conns: {"BatchWriteItem", "DeleteItem", "GetItem"},
		},
	}
	for _, fn := range wantFunctions {
		got := map[string][]string{}
		for _, st := range tm.statements(t, fn) {
			if st.Effect != "Allow" {
				t.Errorf("%s: statement with Effect %q", fn, st.Effect)
			}
			for _, a := range st.Actions {
				svc, action, _ := strings.Cut(a, ":")
				if strings.Contains(a, "*") && a != manageConnections {
					t.Errorf("%s: wildcard action %q", fn, a)
				}
				if a == "sqs:SendMessage" && fn == "PublishFunction" {
					continue
				}
				if a == "lambda:InvokeFunction" && fn == "PublishFunction" {
					// Its batches, on FanoutFunction only.
					if len(st.Resources) != 1 || st.Resources[0].String() != "!GetAtt FanoutFunction.Arn" {
						t.Errorf("%s: %s on %v, want only !GetAtt FanoutFunction.Arn", fn, a, st.Resources)
					}
					continue
				}
				if svc != "dynamodb" {
					if a != manageConnections {
						t.Errorf("%s: action %q: only DynamoDB and %s are expected", fn, a, manageConnections)
					}
					continue
				}
				for _, r := range st.Resources {
					if !slices.Contains(got[r.String()], action) {
						got[r.String()] = append(got[r.String()], action)
					}
				}
			}
		}
		for r := range got {
			slices.Sort(got[r])
		}
		if fmt.Sprint(got) != fmt.Sprint(want[fn]) {
			t.Errorf("%s: DynamoDB permissions\n got %v\nwant %v", fn, got, want[fn])
		}
	}
}

func TestTables(t *testing.T) {
	tm := realTemplate(t)
	if got := sortedKeys(tm.Tables); !slices.Equal(got, []string{"ConnectionsTable", "NotificationsTable"}) {
		t.Fatalf("tables = %v", got)
	}
	pkSK := []KeyElement{{"pk", "HASH"}, {"sk", "RANGE"}}
	for id, tb := range tm.Tables {
		if tb.BillingMode != "PAY_PER_REQUEST" {
			t.Errorf("%s: BillingMode %q", id, tb.BillingMode)
		}
		if tb.TTLAttribute != "expiresAt" {
			t.Errorf("%s: TTL attribute %q, want expiresAt (enabled)", id, tb.TTLAttribute)
		}
		if !slices.Equal(tb.KeySchema, pkSK) {
			t.Errorf("%s: KeySchema %v, want %v", id, tb.KeySchema, pkSK)
		}
		if tb.TableName != "" {
			t.Errorf("%s: fixed TableName %q: two stacks in one account would collide", id, tb.TableName)
		}
		// CloudFormation refuses AttributeDefinitions that no key uses,
		// and keys whose attribute is not defined.
		keys := map[string]bool{}
		for _, k := range tb.KeySchema {
			keys[k.AttributeName] = true
		}
		for _, g := range tb.GSIs {
			for _, k := range g.KeySchema {
				keys[k.AttributeName] = true
			}
		}
		defined := map[string]bool{}
		for _, a := range tb.AttributeDefinitions {
			defined[a.AttributeName] = true
			if a.AttributeType != "S" {
				t.Errorf("%s: %s has type %s, want S", id, a.AttributeName, a.AttributeType)
			}
			if !keys[a.AttributeName] {
				t.Errorf("%s: attribute %s is defined but no key uses it", id, a.AttributeName)
			}
		}
		for k := range keys {
			if !defined[k] {
				t.Errorf("%s: key attribute %s has no AttributeDefinition", id, k)
			}
		}
	}
	gsis := tm.Tables["ConnectionsTable"].GSIs
	wantGSI := GSI{IndexName: "ByConnection", KeySchema: []KeyElement{{"connectionId", "HASH"}}, ProjectionType: "ALL"}
	if len(gsis) != 1 || fmt.Sprint(gsis[0]) != fmt.Sprint(wantGSI) {
		t.Errorf("ConnectionsTable GSIs = %+v, want [%+v]", gsis, wantGSI)
	}
	if n := len(tm.Tables["NotificationsTable"].GSIs); n != 0 {
		t.Errorf("NotificationsTable has %d GSIs", n)
	}

	// Neither deleting the stack nor replacing a table destroys its data:
	// the inbox, and the revocation records kept with the connections (an
	// empty connections table would accept a revoked user's old tokens).
	for _, id := range sortedKeys(tm.Tables) {
		res := tm.resource(t, id)
		for _, policy := range []string{"DeletionPolicy", "UpdateReplacePolicy"} {
			if got := res[policy]; got != "Retain" {
				t.Errorf("%s: %s %v, want Retain", id, policy, got)
			}
		}
	}
}

// Every function logs to a log group of its own, declared in the template
// with RetentionInDays from LogRetentionDays (a group Lambda creates itself
// keeps logs forever). The function names it in LoggingConfig.LogGroup;
// the group's name does not refer to the function (that would be a
// circular dependency), is the stack's alone, and cannot be a default
// /aws/lambda/<function name> group, which a function deployed before
// would already have. Logs are JSON, filtered at LogLevel (see
// TestLoggingConfig).
func TestFunctionLogGroups(t *testing.T) {
	tm := realTemplate(t)
	groups := map[string]bool{}
	for _, id := range tm.resourcesOfType("AWS::Logs::LogGroup") {
		groups[id] = true
	}
	for _, fn := range wantFunctions {
		props, _ := tm.resource(t, fn)["Properties"].(map[string]any)
		logging, _ := props["LoggingConfig"].(map[string]any)
		ref, err := decodeAny(logging["LogGroup"])
		if err != nil || ref.Kind != Ref || !groups[ref.Name] {
			t.Errorf("%s: LoggingConfig %v, want LogGroup: !Ref to an AWS::Logs::LogGroup of the template", fn, logging)
			continue
		}
		delete(groups, ref.Name)

		group := tm.resource(t, ref.Name)
		gp, _ := group["Properties"].(map[string]any)
		if v, err := decodeAny(gp["RetentionInDays"]); err != nil || v.Kind != Ref || v.Name != "LogRetentionDays" {
			t.Errorf("%s: RetentionInDays %v, want !Ref LogRetentionDays", ref.Name, gp["RetentionInDays"])
		}
		want := Value{Kind: Sub, format: "/aws/lambda/${AWS::StackName}/" + fn}
		if v, err := decodeAny(gp["LogGroupName"]); err != nil || v.String() != want.String() {
			t.Errorf("%s: LogGroupName %v, want %v", ref.Name, gp["LogGroupName"], want)
		}
		if group["DeletionPolicy"] != "Delete" || group["UpdateReplacePolicy"] != "Delete" {
			t.Errorf("%s: DeletionPolicy %v UpdateReplacePolicy %v, want Delete: a retained, named group would block a new stack of the same name",
				ref.Name, group["DeletionPolicy"], group["UpdateReplacePolicy"])
		}
	}
	for id := range groups {
		t.Errorf("log group %s is no function's", id)
	}
}

func TestOutputs(t *testing.T) {
	tm := realTemplate(t)
	endpoint := "${" + tm.API + "}.execute-api.${AWS::Region}.amazonaws.com/${StageName}"
	want := map[string]string{
		"WebSocketUrl":          (Value{Kind: Sub, format: "wss://" + endpoint}).String(),
		"ManagementApiEndpoint": (Value{Kind: Sub, format: "https://" + endpoint}).String(),
		"PublishFunctionName":   "!Ref PublishFunction",
		"PublishFunctionArn":    "!GetAtt PublishFunction.Arn",
	}
	for name, w := range want {
		o, ok := tm.cfn.Outputs[name]
		if !ok {
			t.Errorf("no output %s", name)
			continue
		}
		v, err := decodeAny(o.Value)
		if err != nil {
			t.Errorf("output %s: %v", name, err)
			continue
		}
		if v.String() != w {
			t.Errorf("output %s = %v, want %s", name, v, w)
		}
	}
	// The endpoint the functions get is the one operators see.
	for _, fn := range []string{"ConnectFunction", "DefaultFunction", "PublishFunction"} {
		if got := tm.Functions[fn].Environment["MANAGEMENT_API_ENDPOINT"].String(); got != want["ManagementApiEndpoint"] {
			t.Errorf("%s MANAGEMENT_API_ENDPOINT = %s, want %s", fn, got, want["ManagementApiEndpoint"])
		}
	}
}

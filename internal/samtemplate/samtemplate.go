// Package samtemplate reads the SAM template that deploys the system
// (template.yaml) into what the local stack needs to run the same thing:
// the WebSocket API's route selection expression, which function serves each
// route, each function's timeout and environment, the DynamoDB tables'
// schemas, and the parameters' defaults. (What only `sam build` and the
// deploy use, the tests read from the parsed template directly.)
//
// The template is parsed with goformation (github.com/awslabs/goformation/v7)
// in its encoder-intrinsics mode, so !Ref, !GetAtt and !Sub are kept as
// Values rather than resolved against goformation's fixed fake account and
// region; [Template.ResolveEnv] resolves them with local values.
package samtemplate

import (
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"os"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"

	"github.com/awslabs/goformation/v7/cloudformation"
	"github.com/awslabs/goformation/v7/cloudformation/apigatewayv2"
	"github.com/awslabs/goformation/v7/intrinsics"
)

// Template is the part of template.yaml that the local stack runs.
type Template struct {
	// Path is the file Load read.
	Path string
	// API is the logical ID of the template's one WebSocket API
	// (AWS::ApiGatewayV2::Api with ProtocolType WEBSOCKET).
	API string
	// RouteSelectionExpression is the API's, e.g. "$request.body.action".
	RouteSelectionExpression string
	// Routes maps each route key of the API ("$connect", "$default"...) to
	// the logical ID of the function its AWS_PROXY integration invokes.
	Routes map[string]string
	// Functions are the AWS::Serverless::Function resources by logical ID,
	// with the Globals applied as SAM applies them.
	Functions map[string]Function
	// Tables are the AWS::DynamoDB::Table resources by logical ID.
	Tables map[string]Table
	// Parameters are the template's parameters by name.
	Parameters map[string]Parameter

	cfn *cloudformation.Template // goformation's typed view
	doc map[string]any           // the whole template, long-form intrinsics, unresolved
}

// Function is what the local stack runs of one AWS::Serverless::Function,
// after Globals. (Its build — CodeUri, Runtime, Architectures, Metadata — is
// `sam build`'s business; the local stack runs the handler in-process.)
type Function struct {
	// Timeout in seconds: the function's, else Globals', else SAM's default 3.
	Timeout int
	// Environment is Globals' variables overlaid by the function's.
	Environment map[string]Value
}

// Table is what it takes to create one AWS::DynamoDB::Table.
type Table struct {
	// TableName is the template's literal TableName, "" when CloudFormation
	// names the table.
	TableName            string
	BillingMode          string
	KeySchema            []KeyElement
	AttributeDefinitions []AttributeDefinition
	GSIs                 []GSI
	// TTLAttribute is the attribute of an enabled TTL, "" without one.
	TTLAttribute string
}

// KeyElement is one key attribute: KeyType is "HASH" or "RANGE".
type KeyElement struct {
	AttributeName string
	KeyType       string
}

// AttributeDefinition is a key attribute's type: "S", "N" or "B".
type AttributeDefinition struct {
	AttributeName string
	AttributeType string
}

// GSI is a global secondary index.
type GSI struct {
	IndexName string
	KeySchema []KeyElement
	// ProjectionType is "ALL", "KEYS_ONLY" or "INCLUDE" (with NonKeyAttributes).
	ProjectionType   string
	NonKeyAttributes []string
}

// Parameter is one template parameter.
type Parameter struct {
	// Default is nil when the parameter has none: a deploy must give it.
	Default *string
}

// pseudoParameters answer Refs to AWS pseudo parameters that the refs given
// to ResolveEnv do not: the values of the off-AWS region and account.
var pseudoParameters = map[string]string{
	"AWS::Region":    "us-east-1",
	"AWS::AccountId": "000000000000",
	"AWS::Partition": "aws",
	"AWS::URLSuffix": "amazonaws.com",
	"AWS::StackName": "local",
	"AWS::StackId":   "arn:aws:cloudformation:us-east-1:000000000000:stack/local/00000000-0000-0000-0000-000000000000",
}

// parseMu serializes goformation's YAML parsing: every parse re-registers its
// tag resolvers in a package-level map, which is not safe for concurrent use.
var parseMu sync.Mutex

// Load reads and checks the SAM template at path. It fails when the template
// has no WebSocket API, or when a route of it does not reach a function of
// the template through an AWS_PROXY integration, or when a value the local
// stack needs uses an intrinsic it cannot resolve.
func Load(path string) (*Template, error) {
	t, err := load(path)
	if err != nil {
		return nil, fmt.Errorf("samtemplate: %s: %w", path, err)
	}
	return t, nil
}

func load(path string) (*Template, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	cfn, doc, err := parse(path, data)
	if err != nil {
		return nil, err
	}
	t := &Template{
		Path:       path,
		Routes:     map[string]string{},
		Functions:  map[string]Function{},
		Tables:     map[string]Table{},
		Parameters: map[string]Parameter{},
		cfn:        cfn,
		doc:        doc,
	}
	t.loadParameters()
	if err := t.loadFunctions(); err != nil {
		return nil, err
	}
	if err := t.loadTables(); err != nil {
		return nil, err
	}
	if err := t.loadAPI(); err != nil {
		return nil, err
	}
	return t, nil
}

func parse(path string, data []byte) (*cloudformation.Template, map[string]any, error) {
	parseMu.Lock()
	defer parseMu.Unlock()

	opts := &intrinsics.ProcessorOptions{IntrinsicHandlerOverrides: cloudformation.EncoderIntrinsics}
	raw := &intrinsics.ProcessorOptions{NoProcess: true}
	var (
		typedJSON, rawJSON []byte
		err                error
	)
	if strings.HasSuffix(path, ".json") {
		if typedJSON, err = intrinsics.ProcessJSON(data, opts); err == nil {
			rawJSON, err = intrinsics.ProcessJSON(data, raw)
		}
	} else {
		if typedJSON, err = intrinsics.ProcessYAML(data, opts); err == nil {
			rawJSON, err = intrinsics.ProcessYAML(data, raw)
		}
	}
	if err != nil {
		return nil, nil, err
	}
	if typedJSON, err = typedView(typedJSON); err != nil {
		return nil, nil, err
	}
	// What goformation.ParseYAMLWithOptions does after processing the
	// intrinsics.
	cfn := &cloudformation.Template{}
	if err := json.Unmarshal(typedJSON, cfn); err != nil {
		return nil, nil, err
	}
	var doc map[string]any
	if err := json.Unmarshal(rawJSON, &doc); err != nil {
		return nil, nil, err
	}
	return cfn, doc, nil
}

// typedTypes are the resource types goformation decodes for this package,
// each with the properties CloudFormation and SAM accept but goformation's
// type does not know yet. goformation refuses an unknown property, and an
// intrinsic where it expects a number (a log group's RetentionInDays:
// !Ref LogRetentionDays), so what the local stack does not run (log
// groups, alarms...) and those properties are left out of the typed view;
// the untyped document keeps everything.
var typedTypes = map[string][]string{
	// LoggingConfig: the function's log group.
	"AWS::Serverless::Function":      {"LoggingConfig"},
	"AWS::DynamoDB::Table":           nil,
	"AWS::ApiGatewayV2::Api":         nil,
	"AWS::ApiGatewayV2::Route":       nil,
	"AWS::ApiGatewayV2::Integration": nil,
	"AWS::ApiGatewayV2::Deployment":  nil,
	"AWS::ApiGatewayV2::Stage":       nil,
	"AWS::Lambda::Permission":        nil,
}

// typedView keeps, of a template with its intrinsics processed, the
// resources of typedTypes, without their unknown properties.
func typedView(processed []byte) ([]byte, error) {
	var tmpl map[string]any
	if err := json.Unmarshal(processed, &tmpl); err != nil {
		return nil, err
	}
	resources, _ := tmpl["Resources"].(map[string]any)
	for id, r := range resources {
		res, _ := r.(map[string]any)
		typ, _ := res["Type"].(string)
		unknown, typed := typedTypes[typ]
		if !typed && typ != "" { // no Type: goformation says so
			delete(resources, id)
			continue
		}
		props, _ := res["Properties"].(map[string]any)
		for _, name := range unknown {
			delete(props, name)
		}
	}
	return json.Marshal(tmpl)
}

func (t *Template) loadParameters() {
	for name, p := range t.cfn.Parameters {
		var param Parameter
		if p.Default != nil {
			var s string
			switch d := p.Default.(type) {
			case string:
				s = d
			case float64:
				s = strconv.FormatFloat(d, 'f', -1, 64)
			default:
				s = fmt.Sprint(d)
			}
			param.Default = &s
		}
		t.Parameters[name] = param
	}
}

func (t *Template) loadFunctions() error {
	var globalTimeout *int
	var globalEnv map[string]string
	if gf, err := t.cfn.GetServerlessGlobalFunction(); err == nil {
		globalTimeout = gf.Timeout
		if gf.Environment != nil {
			globalEnv = gf.Environment.Variables
		}
	}
	for id, f := range t.cfn.GetAllServerlessFunctionResources() {
		fn := Function{Timeout: derefInt(f.Timeout, derefInt(globalTimeout, 3)), Environment: map[string]Value{}}
		vars := maps.Clone(globalEnv)
		if vars == nil {
			vars = map[string]string{}
		}
		if f.Environment != nil {
			maps.Copy(vars, f.Environment.Variables)
		}
		for k, s := range vars {
			v, err := decodeValue(s)
			if err != nil {
				return fmt.Errorf("function %s: environment variable %s: %w", id, k, err)
			}
			fn.Environment[k] = v
		}
		t.Functions[id] = fn
	}
	return nil
}

func (t *Template) loadTables() error {
	for id, tb := range t.cfn.GetAllDynamoDBTableResources() {
		table := Table{BillingMode: deref(tb.BillingMode, "PROVISIONED")}
		if tb.TableName != nil {
			v, err := decodeValue(*tb.TableName)
			if err != nil {
				return fmt.Errorf("table %s: TableName: %w", id, err)
			}
			if v.Kind == Literal {
				table.TableName = v.literal
			}
		}
		for _, k := range tb.KeySchema {
			table.KeySchema = append(table.KeySchema, KeyElement{k.AttributeName, k.KeyType})
		}
		for _, a := range tb.AttributeDefinitions {
			table.AttributeDefinitions = append(table.AttributeDefinitions, AttributeDefinition{a.AttributeName, a.AttributeType})
		}
		for _, gsi := range tb.GlobalSecondaryIndexes {
			x := GSI{IndexName: gsi.IndexName}
			for _, k := range gsi.KeySchema {
				x.KeySchema = append(x.KeySchema, KeyElement{k.AttributeName, k.KeyType})
			}
			if gsi.Projection != nil {
				x.ProjectionType = deref(gsi.Projection.ProjectionType, "")
				x.NonKeyAttributes = gsi.Projection.NonKeyAttributes
			}
			table.GSIs = append(table.GSIs, x)
		}
		if ttl := tb.TimeToLiveSpecification; ttl != nil && ttl.Enabled {
			table.TTLAttribute = deref(ttl.AttributeName, "")
		}
		t.Tables[id] = table
	}
	return nil
}

// integrationTarget matches a route Target of the form integrations/${Integration}.
var integrationTarget = regexp.MustCompile(`^integrations/\$\{([A-Za-z0-9]+)\}$`)

// lambdaInvocationURI matches an IntegrationUri that invokes a function's ARN.
var lambdaInvocationURI = regexp.MustCompile(`^arn:(?:aws[a-z-]*|\$\{AWS::Partition\}):apigateway:(?:[a-z0-9-]+|\$\{AWS::Region\}):lambda:path/2015-03-31/functions/\$\{([A-Za-z0-9]+)\.Arn\}/invocations$`)

func (t *Template) loadAPI() error {
	var apis []string
	for id, api := range t.cfn.GetAllApiGatewayV2ApiResources() {
		if strings.EqualFold(deref(api.ProtocolType, ""), "WEBSOCKET") {
			apis = append(apis, id)
		}
	}
	sort.Strings(apis)
	switch len(apis) {
	case 0:
		return errors.New("no AWS::ApiGatewayV2::Api with ProtocolType WEBSOCKET")
	case 1:
	default:
		return fmt.Errorf("several WebSocket APIs (%s): the local stack runs one", strings.Join(apis, ", "))
	}
	t.API = apis[0]
	api := t.cfn.GetAllApiGatewayV2ApiResources()[t.API]
	t.RouteSelectionExpression = deref(api.RouteSelectionExpression, "")

	integrations := t.cfn.GetAllApiGatewayV2IntegrationResources()
	for id, r := range t.cfn.GetAllApiGatewayV2RouteResources() {
		if !t.isAPIRef(r.ApiId) {
			continue
		}
		if other, dup := t.Routes[r.RouteKey]; dup {
			return fmt.Errorf("route %s: declared twice (%s)", r.RouteKey, other)
		}
		fn, err := t.routeFunction(id, r.Target, integrations)
		if err != nil {
			return fmt.Errorf("route %s (%s): %w", r.RouteKey, id, err)
		}
		t.Routes[r.RouteKey] = fn
	}
	return nil
}

func (t *Template) routeFunction(routeID string, target *string, integrations map[string]*apigatewayv2.Integration) (string, error) {
	if target == nil {
		return "", errors.New("no Target")
	}
	tv, err := decodeValue(*target)
	if err != nil {
		return "", fmt.Errorf("Target: %w", err)
	}
	m := integrationTarget.FindStringSubmatch(tv.format)
	if tv.Kind != Sub || len(tv.vars) != 0 || m == nil {
		return "", fmt.Errorf("Target is %v; want !Sub integrations/${Integration}", tv)
	}
	integ, ok := integrations[m[1]]
	if !ok {
		return "", fmt.Errorf("Target names %s, which is no AWS::ApiGatewayV2::Integration", m[1])
	}
	if !t.isAPIRef(integ.ApiId) {
		return "", fmt.Errorf("integration %s belongs to another API", m[1])
	}
	if integ.IntegrationType != "AWS_PROXY" {
		return "", fmt.Errorf("integration %s is %s; the local stack runs AWS_PROXY integrations only", m[1], integ.IntegrationType)
	}
	if integ.IntegrationUri == nil {
		return "", fmt.Errorf("integration %s has no IntegrationUri", m[1])
	}
	uv, err := decodeValue(*integ.IntegrationUri)
	if err != nil {
		return "", fmt.Errorf("integration %s: IntegrationUri: %w", m[1], err)
	}
	u := lambdaInvocationURI.FindStringSubmatch(uv.format)
	if uv.Kind != Sub || len(uv.vars) != 0 || u == nil {
		return "", fmt.Errorf("integration %s: IntegrationUri is %v; want !Sub arn:aws:apigateway:${AWS::Region}:lambda:path/2015-03-31/functions/${Function.Arn}/invocations", m[1], uv)
	}
	if _, ok := t.Functions[u[1]]; !ok {
		return "", fmt.Errorf("integration %s invokes %s, which is no AWS::Serverless::Function of the template", m[1], u[1])
	}
	return u[1], nil
}

// isAPIRef reports whether an ApiId field is !Ref of the WebSocket API.
func (t *Template) isAPIRef(apiID string) bool {
	v, err := decodeValue(apiID)
	return err == nil && v.Kind == Ref && v.Name == t.API
}

// ResolveEnv returns the environment of function fn with every value
// resolved:
//   - a Ref to a parameter takes params[name], else the parameter's default;
//     a parameter with neither is an error naming it;
//   - a Ref to a resource, or a GetAtt ("Name.Attribute"), takes refs[...],
//     e.g. refs["ConnectionsTable"] = "notify-connections",
//     refs["WebSocketApi"] = "local"; a missing one is an error naming it;
//   - a pseudo parameter (${AWS::Region} in a Sub, say) takes refs[name],
//     else an off-AWS default: us-east-1, account 000000000000, partition aws,
//     URL suffix amazonaws.com, stack name local.
//
// params may name only parameters of the template.
func (t *Template) ResolveEnv(fn string, params map[string]string, refs map[string]string) (map[string]string, error) {
	f, ok := t.Functions[fn]
	if !ok {
		return nil, fmt.Errorf("samtemplate: no function %q in %s", fn, t.Path)
	}
	for name := range params {
		if _, ok := t.Parameters[name]; !ok {
			return nil, fmt.Errorf("samtemplate: %s has no parameter %q", t.Path, name)
		}
	}
	lookup := t.lookup(params, refs)
	env := make(map[string]string, len(f.Environment))
	// In order: an error names the same variable every time.
	for _, k := range slices.Sorted(maps.Keys(f.Environment)) {
		v := f.Environment[k]
		s, err := v.resolve(lookup)
		if err != nil {
			return nil, fmt.Errorf("samtemplate: %s environment variable %s (%v): %w", fn, k, v, err)
		}
		env[k] = s
	}
	return env, nil
}

func (t *Template) lookup(params, refs map[string]string) func(string) (string, error) {
	return func(name string) (string, error) {
		if p, ok := t.Parameters[name]; ok {
			if s, ok := params[name]; ok {
				return s, nil
			}
			if p.Default != nil {
				return *p.Default, nil
			}
			return "", fmt.Errorf("parameter %s has no default: give it a value", name)
		}
		if s, ok := refs[name]; ok {
			return s, nil
		}
		if s, ok := pseudoParameters[name]; ok {
			return s, nil
		}
		if strings.HasPrefix(name, "AWS::") {
			return "", fmt.Errorf("unknown pseudo parameter %s", name)
		}
		resource, _, _ := strings.Cut(name, ".")
		if resources, _ := t.doc["Resources"].(map[string]any); resources[resource] == nil {
			return "", fmt.Errorf("%s is neither a parameter nor a resource of the template", name)
		}
		return "", fmt.Errorf("no local value for %s: give it in refs", name)
	}
}

func deref(p *string, def string) string {
	if p == nil {
		return def
	}
	return *p
}

func derefInt(p *int, def int) int {
	if p == nil {
		return def
	}
	return *p
}

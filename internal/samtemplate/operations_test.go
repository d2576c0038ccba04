package samtemplate

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strings"
	"testing"

	"github.com/workorders/notify/internal/metrics"
)

// What template.yaml builds to operate the system (PROTOCOL.md §9): the
// functions' metrics namespace, log format and level, and tracing; the
// alarms and the AlarmTopicArn they notify; the dashboard; the dead-letter
// queue of asynchronous publishes.

// emittedMetric is one metric the functions write as EMF (PROTOCOL.md §9).
type emittedMetric struct {
	// function writes it, and is its Function dimension (the logical ID).
	function string
	unit     metrics.Unit
	// extra, when set, is the second dimension of the set
	// ["Function", extra] the metric is also written with; values are the
	// values it takes (nil: not a closed list).
	extra  string
	values []string
}

// emittedMetrics are PROTOCOL.md §9's metrics, by internal/metrics' names
// (TestEmittedMetrics holds this list to the document). Every metric is
// written with the dimension set ["Function"]; ConnectsRefused also with
// ["Function","Reason"], Frames also with ["Function","Action"].
var emittedMetrics = map[string]emittedMetric{
	metrics.Publishes:         {function: "PublishFunction", unit: metrics.Count},
	metrics.Deliveries:        {function: "PublishFunction", unit: metrics.Count},
	metrics.Gone:              {function: "PublishFunction", unit: metrics.Count},
	metrics.Failed:            {function: "PublishFunction", unit: metrics.Count},
	metrics.Throttled:         {function: "PublishFunction", unit: metrics.Count},
	metrics.Duplicates:        {function: "PublishFunction", unit: metrics.Count},
	metrics.FanoutConnections: {function: "PublishFunction", unit: metrics.Count},
	metrics.PublishLatency:    {function: "PublishFunction", unit: metrics.Milliseconds},
	metrics.StoreLatency:      {function: "PublishFunction", unit: metrics.Milliseconds},
	metrics.Connects:          {function: "ConnectFunction", unit: metrics.Count},
	metrics.ConnectsRefused: {function: "ConnectFunction", unit: metrics.Count, extra: metrics.DimensionReason,
		values: []string{metrics.ReasonOrigin, metrics.ReasonToken, metrics.ReasonRevoked, metrics.ReasonStorage}},
	metrics.Frames:      {function: "DefaultFunction", unit: metrics.Count, extra: metrics.DimensionAction},
	metrics.FrameErrors: {function: "DefaultFunction", unit: metrics.Count},
	metrics.Disconnects: {function: "DisconnectFunction", unit: metrics.Count},
}

// batchMetrics are the metrics FanoutFunction also writes, for its batch
// (PublishFunction's are the totals).
var batchMetrics = []string{metrics.Deliveries, metrics.Gone, metrics.Failed, metrics.Throttled}

// awsMetrics are the AWS metrics an alarm or a graph may name, by
// namespace: each is checked to be about a resource of this template.
var awsMetrics = map[string][]string{
	"AWS/Lambda": {"Invocations", "Errors", "Throttles", "Duration", "ConcurrentExecutions",
		"DestinationDeliveryFailures", "AsyncEventsReceived", "AsyncEventAge", "AsyncEventsDropped"},
	"AWS/DynamoDB": {"ReadThrottleEvents", "WriteThrottleEvents", "ConsumedReadCapacityUnits", "ConsumedWriteCapacityUnits"},
	"AWS/SQS":      {"ApproximateNumberOfMessagesVisible", "ApproximateAgeOfOldestMessage", "NumberOfMessagesSent"},
}

// PROTOCOL.md §9's table names exactly the metrics of emittedMetrics, each
// for its function.
func TestEmittedMetrics(t *testing.T) {
	data, err := os.ReadFile(filepath.Join(repoRoot(t), "docs", "PROTOCOL.md"))
	if err != nil {
		t.Fatal(err)
	}
	doc := string(data)
	start := strings.Index(doc, "\n## 9.")
	if start < 0 {
		t.Fatal("PROTOCOL.md has no section 9")
	}
	section := doc[start+1:]
	if end := strings.Index(section, "\n## "); end >= 0 {
		section = section[:end]
	}
	tick := regexp.MustCompile("`([A-Z][A-Za-z]+)`")
	got := map[string][]string{}
	for _, line := range strings.Split(section, "\n") {
		cells := strings.Split(line, "|")
		if len(cells) < 3 || !slices.Contains(wantFunctions, strings.TrimSpace(cells[1])) {
			continue
		}
		for _, m := range tick.FindAllStringSubmatch(strings.Join(cells[2:], "|"), -1) {
			switch m[1] {
			case metrics.DimensionFunction, metrics.DimensionReason, metrics.DimensionAction:
				continue
			}
			got[m[1]] = append(got[m[1]], strings.TrimSpace(cells[1]))
		}
	}
	want := map[string][]string{}
	for name, m := range emittedMetrics {
		want[name] = []string{m.function}
	}
	for _, name := range batchMetrics {
		want[name] = append(want[name], "FanoutFunction")
	}
	for _, fns := range got {
		slices.Sort(fns)
	}
	for _, fns := range want {
		slices.Sort(fns)
	}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("PROTOCOL.md §9 metrics\n got %v\nwant %v", got, want)
	}
}

// metricRef is one metric an alarm or a graph names.
type metricRef struct {
	namespace Value
	name      string
	dims      map[string]Value
}

func (m metricRef) key() string {
	var dims []string
	for _, k := range sortedKeys(m.dims) {
		dims = append(dims, k+"="+m.dims[k].String())
	}
	return m.namespace.String() + " " + m.name + " {" + strings.Join(dims, ", ") + "}"
}

func literal(s string) Value { return Value{Kind: Literal, literal: s} }

// custom is the metric the functions write as name, with dims (the
// Function dimension included).
func custom(name string, dims ...string) metricRef {
	m := metricRef{namespace: Value{Kind: Ref, Name: "MetricsNamespace"}, name: name, dims: map[string]Value{}}
	for i := 0; i+1 < len(dims); i += 2 {
		m.dims[dims[i]] = literal(dims[i+1])
	}
	return m
}

// aws is an AWS metric with one dimension.
func aws(namespace, name, dim string, v Value) metricRef {
	return metricRef{namespace: literal(namespace), name: name, dims: map[string]Value{dim: v}}
}

// checkMetric says what is wrong with m: a metric of MetricsNamespace must
// be one the functions write, with one of the dimension sets it is written
// with (and the dimension values they take); an AWS metric must be about a
// resource of this template, with the dimensions AWS publishes it with.
func (t *Template) checkMetric(m metricRef) error {
	dimNames := sortedKeys(m.dims)
	if m.namespace.String() == "!Ref MetricsNamespace" {
		em, ok := emittedMetrics[m.name]
		if !ok {
			return fmt.Errorf("no function writes metric %s", m.name)
		}
		if fn := m.dims["Function"]; fn.Kind != Literal || fn.literal != em.function {
			return fmt.Errorf("%s: Function dimension %v, want %q (the function that writes it)", m.name, fn, em.function)
		}
		switch {
		case slices.Equal(dimNames, []string{"Function"}):
		case em.extra != "" && len(dimNames) == 2 && slices.Contains(dimNames, "Function") && slices.Contains(dimNames, em.extra):
			v := m.dims[em.extra]
			if v.Kind != Literal || (em.values != nil && !slices.Contains(em.values, v.literal)) {
				return fmt.Errorf("%s: %s %v, want one of %v", m.name, em.extra, v, em.values)
			}
		default:
			want := "[Function]"
			if em.extra != "" {
				want += " or [Function " + em.extra + "]"
			}
			return fmt.Errorf("%s: dimensions %v; it is written with %s", m.name, dimNames, want)
		}
		return nil
	}
	if m.namespace.Kind != Literal {
		return fmt.Errorf("namespace %v", m.namespace)
	}
	ns := m.namespace.literal
	if !slices.Contains(awsMetrics[ns], m.name) {
		return fmt.Errorf("%s %s is not a metric this test knows", ns, m.name)
	}
	switch ns {
	case "AWS/Lambda":
		fn := m.dims["FunctionName"]
		if _, ok := t.Functions[fn.Name]; !ok || fn.Kind != Ref || len(m.dims) != 1 {
			return fmt.Errorf("%s %s: dimensions %v, want exactly FunctionName: !Ref of a function of the template", ns, m.name, m.dims)
		}
	case "AWS/DynamoDB":
		table := m.dims["TableName"]
		tb, ok := t.Tables[table.Name]
		if !ok || table.Kind != Ref {
			return fmt.Errorf("%s %s: TableName %v, want !Ref of a table of the template", ns, m.name, table)
		}
		switch {
		case len(m.dims) == 1:
		case len(m.dims) == 2 && m.dims["GlobalSecondaryIndexName"].Kind == Literal:
			index := m.dims["GlobalSecondaryIndexName"].literal
			if !slices.ContainsFunc(tb.GSIs, func(g GSI) bool { return g.IndexName == index }) {
				return fmt.Errorf("%s %s: %s has no index %q", ns, m.name, table.Name, index)
			}
		default:
			return fmt.Errorf("%s %s: dimensions %v, want TableName (and GlobalSecondaryIndexName)", ns, m.name, dimNames)
		}
	case "AWS/SQS":
		q := m.dims["QueueName"]
		if len(m.dims) != 1 || q.Kind != GetAtt || q.attribute != "QueueName" || !slices.Contains(t.resourcesOfType("AWS::SQS::Queue"), q.Name) {
			return fmt.Errorf("%s %s: dimensions %v, want exactly QueueName: !GetAtt Queue.QueueName of a queue of the template", ns, m.name, m.dims)
		}
	}
	return nil
}

// alarmMetrics returns the metrics an alarm reads: its one metric, or
// those of its metric math (checking the math's shape on the way).
func (t *Template) alarmMetrics(tb testing.TB, id string, props map[string]any) []metricRef {
	tb.Helper()
	decode := func(x any) Value {
		v, err := decodeAny(x)
		if err != nil {
			tb.Fatalf("alarm %s: %v", id, err)
		}
		return v
	}
	metric := func(ns, name any, dims any) metricRef {
		m := metricRef{namespace: decode(ns), dims: map[string]Value{}}
		m.name, _ = name.(string)
		for _, d := range list(dims) {
			dm, _ := d.(map[string]any)
			k, _ := dm["Name"].(string)
			m.dims[k] = decode(dm["Value"])
		}
		return m
	}
	if props["MetricName"] != nil {
		if props["Metrics"] != nil {
			tb.Errorf("alarm %s: both MetricName and Metrics", id)
		}
		if props["Statistic"] == nil && props["ExtendedStatistic"] == nil {
			tb.Errorf("alarm %s: no Statistic", id)
		}
		checkPeriod(tb, id, props["Period"])
		return []metricRef{metric(props["Namespace"], props["MetricName"], props["Dimensions"])}
	}
	var (
		out        []metricRef
		ids        []string
		expression string
		returned   int
	)
	for _, q := range list(props["Metrics"]) {
		qm, _ := q.(map[string]any)
		qid, _ := qm["Id"].(string)
		if rd, ok := qm["ReturnData"].(bool); !ok {
			tb.Errorf("alarm %s: metric %s without ReturnData (it defaults to true)", id, qid)
		} else if rd {
			returned++
		}
		if e, ok := qm["Expression"].(string); ok {
			expression = e
			continue
		}
		ids = append(ids, qid)
		ms, _ := qm["MetricStat"].(map[string]any)
		mm, _ := ms["Metric"].(map[string]any)
		if ms["Stat"] == nil {
			tb.Errorf("alarm %s: metric %s has no Stat", id, qid)
		}
		checkPeriod(tb, id+" "+qid, ms["Period"])
		out = append(out, metric(mm["Namespace"], mm["MetricName"], mm["Dimensions"]))
	}
	if returned != 1 || expression == "" {
		tb.Errorf("alarm %s: %d metrics return data and expression %q; want one expression, the only one returning data", id, returned, expression)
	}
	for _, qid := range ids {
		if !regexp.MustCompile(`\b` + regexp.QuoteMeta(qid) + `\b`).MatchString(expression) {
			tb.Errorf("alarm %s: expression %q does not use metric %s", id, expression, qid)
		}
	}
	if len(out) == 0 {
		tb.Errorf("alarm %s: neither MetricName nor Metrics", id)
	}
	return out
}

func checkPeriod(tb testing.TB, where string, p any) {
	tb.Helper()
	if f, ok := p.(float64); !ok || f < 60 || int(f)%60 != 0 {
		tb.Errorf("%s: Period %v, want a multiple of 60 s", where, p)
	}
}

// Each alarm watches a metric some function writes, or an AWS metric of a
// resource of this stack, with the dimensions it is published with; says
// what it means and what to do; treats missing data as not breaching; and
// together they cover what PROTOCOL.md §9 promises.
func TestAlarms(t *testing.T) {
	tm := realTemplate(t)
	alarms := tm.resourcesOfType("AWS::CloudWatch::Alarm")
	if len(alarms) == 0 {
		t.Fatal("no AWS::CloudWatch::Alarm")
	}
	watched := map[string][]string{} // metric key → alarms
	names := map[string]string{}
	for _, id := range alarms {
		props, _ := tm.resource(t, id)["Properties"].(map[string]any)
		for _, m := range tm.alarmMetrics(t, id, props) {
			if err := tm.checkMetric(m); err != nil {
				t.Errorf("alarm %s: %v", id, err)
			}
			watched[m.key()] = append(watched[m.key()], id)
		}
		desc, _ := props["AlarmDescription"].(string)
		if len(desc) < 100 || len(desc) > 1024 {
			t.Errorf("alarm %s: AlarmDescription of %d characters, want 100 to 1024: what it means and what to do", id, len(desc))
		}
		if props["TreatMissingData"] != "notBreaching" {
			t.Errorf("alarm %s: TreatMissingData %v, want notBreaching: a period without invocations (or without throttling, errors, dead letters) is no failure", id, props["TreatMissingData"])
		}
		if props["ComparisonOperator"] == nil || props["Threshold"] == nil {
			t.Errorf("alarm %s: ComparisonOperator %v Threshold %v", id, props["ComparisonOperator"], props["Threshold"])
		}
		periods, _ := props["EvaluationPeriods"].(float64)
		if d, ok := props["DatapointsToAlarm"].(float64); periods < 1 || (ok && (d < 1 || d > periods)) {
			t.Errorf("alarm %s: EvaluationPeriods %v DatapointsToAlarm %v", id, props["EvaluationPeriods"], props["DatapointsToAlarm"])
		}
		// Named after the stack: two stacks in one account and region do
		// not collide.
		name, err := decodeAny(props["AlarmName"])
		if err != nil || name.Kind != Sub || !strings.HasPrefix(name.format, "${AWS::StackName}-") {
			t.Errorf("alarm %s: AlarmName %v, want !Sub ${AWS::StackName}-...", id, props["AlarmName"])
		} else if other, dup := names[name.format]; dup {
			t.Errorf("alarms %s and %s are both named %s", other, id, name.format)
		} else {
			names[name.format] = id
		}
	}

	queues := tm.resourcesOfType("AWS::SQS::Queue")
	if len(queues) != 1 {
		t.Fatalf("queues %v, want the one dead-letter queue", queues)
	}
	ref := func(name string) Value { return Value{Kind: Ref, Name: name} }
	required := map[string]metricRef{
		"failed deliveries":                    custom("Failed", "Function", "PublishFunction"),
		"throttled Management API posts":       custom("Throttled", "Function", "PublishFunction"),
		"publish errors":                       aws("AWS/Lambda", "Errors", "FunctionName", ref("PublishFunction")),
		"$connect storage failures":            custom("ConnectsRefused", "Function", "ConnectFunction", "Reason", "storage"),
		"$connect errors":                      aws("AWS/Lambda", "Errors", "FunctionName", ref("ConnectFunction")),
		"connections table read throttling":    aws("AWS/DynamoDB", "ReadThrottleEvents", "TableName", ref("ConnectionsTable")),
		"connections table write throttling":   aws("AWS/DynamoDB", "WriteThrottleEvents", "TableName", ref("ConnectionsTable")),
		"notifications table read throttling":  aws("AWS/DynamoDB", "ReadThrottleEvents", "TableName", ref("NotificationsTable")),
		"notifications table write throttling": aws("AWS/DynamoDB", "WriteThrottleEvents", "TableName", ref("NotificationsTable")),
		"dead-lettered asynchronous publishes": aws("AWS/SQS", "ApproximateNumberOfMessagesVisible", "QueueName",
			Value{Kind: GetAtt, Name: queues[0], attribute: "QueueName"}),
		"dead-letter records Lambda could not send": aws("AWS/Lambda", "DestinationDeliveryFailures", "FunctionName", ref("PublishFunction")),
	}
	for what, m := range required {
		if len(watched[m.key()]) == 0 {
			t.Errorf("no alarm on %s (%s)", what, m.key())
		}
	}
}

// condition evaluates the template's condition name for the parameters.
func (t *Template) condition(tt *testing.T, name string, params map[string]string) bool {
	tt.Helper()
	conds, _ := t.doc["Conditions"].(map[string]any)
	c, ok := conds[name]
	if !ok {
		tt.Fatalf("no condition %s", name)
	}
	return evalRule(tt, c, params)
}

// resolveIf resolves the Fn::If of x for the conditions' values; an
// AWS::NoValue branch resolves to nil (the property is left out).
func resolveIf(tb testing.TB, x any, conds map[string]bool) any {
	tb.Helper()
	m, ok := x.(map[string]any)
	if !ok || len(m) != 1 {
		return x
	}
	if m["Ref"] == "AWS::NoValue" {
		return nil
	}
	args, ok := m["Fn::If"].([]any)
	if !ok {
		return x
	}
	name, _ := args[0].(string)
	v, ok := conds[name]
	if len(args) != 3 || !ok {
		tb.Fatalf("Fn::If %v", args)
	}
	if v {
		return resolveIf(tb, args[1], conds)
	}
	return resolveIf(tb, args[2], conds)
}

// Without AlarmTopicArn the alarms have no actions at all; with one, each
// notifies it when it fires and when it recovers.
func TestAlarmTopicIsOptional(t *testing.T) {
	tm := realTemplate(t)
	params := map[string]string{}
	for name, p := range tm.Parameters {
		if p.Default != nil {
			params[name] = *p.Default
		}
	}
	const topic = "arn:aws:sns:us-east-1:123456789012:notify-alarms"
	for _, arn := range []string{"", topic} {
		params["AlarmTopicArn"] = arn
		has := tm.condition(t, "HasAlarmTopic", params)
		if has != (arn != "") {
			t.Errorf("AlarmTopicArn %q: HasAlarmTopic = %v", arn, has)
		}
		conds := map[string]bool{"HasAlarmTopic": has}
		for _, id := range tm.resourcesOfType("AWS::CloudWatch::Alarm") {
			props, _ := tm.resource(t, id)["Properties"].(map[string]any)
			for _, p := range []string{"AlarmActions", "OKActions"} {
				got := resolveIf(t, props[p], conds)
				var actions []string
				for _, a := range list(got) {
					v, err := decodeAny(a)
					if err != nil || v.Kind != Ref {
						t.Fatalf("alarm %s: %s holds %v", id, p, a)
					}
					actions = append(actions, params[v.Name])
				}
				want := []string{topic}
				if arn == "" {
					want = nil
				}
				if !slices.Equal(actions, want) || (arn == "" && got != nil) {
					t.Errorf("AlarmTopicArn %q: alarm %s %s = %v, want %v", arn, id, p, got, want)
				}
			}
			if props["InsufficientDataActions"] != nil {
				t.Errorf("alarm %s: InsufficientDataActions: most alarms are without data most of the time", id)
			}
		}
	}

	pattern := tm.parameterDoc(t, "AlarmTopicArn")["AllowedPattern"].(string)
	re := regexp.MustCompile(pattern)
	for arn, ok := range map[string]bool{
		"": true, topic: true, "arn:aws-us-gov:sns:us-gov-west-1:123456789012:alarms": true,
		"arn:aws:sns:us-east-1:123456789012:alarms.fifo": false, // alarms cannot notify a FIFO topic
		"arn:aws:sqs:us-east-1:123456789012:alarms":      false,
		"notify-alarms": false,
	} {
		if re.MatchString(arn) != ok {
			t.Errorf("AlarmTopicArn pattern %s: matches %q = %v, want %v", pattern, arn, !ok, ok)
		}
	}
}

func (t *Template) parameterDoc(tb testing.TB, name string) map[string]any {
	tb.Helper()
	params, _ := t.doc["Parameters"].(map[string]any)
	p, ok := params[name].(map[string]any)
	if !ok {
		tb.Fatalf("no parameter %s", name)
	}
	return p
}

// Every function writes its metrics under METRICS_NAMESPACE, from the
// MetricsNamespace parameter the alarms and the dashboard read too.
func TestMetricsNamespace(t *testing.T) {
	tm := realTemplate(t)
	for _, fn := range wantFunctions {
		if v := tm.Functions[fn].Environment["METRICS_NAMESPACE"]; v.String() != "!Ref MetricsNamespace" {
			t.Errorf("%s: METRICS_NAMESPACE = %v, want !Ref MetricsNamespace", fn, v)
		}
	}
	p := tm.parameterDoc(t, "MetricsNamespace")
	if p["Default"] != metrics.DefaultNamespace {
		t.Errorf("MetricsNamespace: Default %v, want metrics.DefaultNamespace %q", p["Default"], metrics.DefaultNamespace)
	}
	// The parameter refuses what would fail the functions' cold start
	// (metrics.ValidNamespace), except the reserved AWS/ prefix, which a
	// CloudFormation pattern cannot exclude (its Description says so).
	re := regexp.MustCompile(p["AllowedPattern"].(string))
	for _, ns := range []string{"WorkOrderNotify", "Staging/Notify", "Work Orders:notify-1.1#2", "", "Notify$", "Notify\n", "ns,1", strings.Repeat("n", 255), strings.Repeat("n", 256)} {
		if want := metrics.ValidNamespace(ns) == nil; re.MatchString(ns) != want {
			t.Errorf("MetricsNamespace pattern: matches %q = %v, metrics.ValidNamespace says %v", ns, !want, metrics.ValidNamespace(ns))
		}
	}
}

// The functions' logs are JSON (the EMF lines pass through as they are),
// filtered at LogLevel; Lambda's own records at INFO or WARN.
func TestLoggingConfig(t *testing.T) {
	tm := realTemplate(t)
	for _, fn := range wantFunctions {
		props, _ := tm.resource(t, fn)["Properties"].(map[string]any)
		logging, _ := props["LoggingConfig"].(map[string]any)
		if logging["LogFormat"] != "JSON" {
			t.Errorf("%s: LogFormat %v, want JSON", fn, logging["LogFormat"])
		}
		if v, err := decodeAny(logging["ApplicationLogLevel"]); err != nil || v.String() != "!Ref LogLevel" {
			t.Errorf("%s: ApplicationLogLevel %v, want !Ref LogLevel", fn, logging["ApplicationLogLevel"])
		}
		if l := logging["SystemLogLevel"]; l != "INFO" && l != "WARN" {
			t.Errorf("%s: SystemLogLevel %v, want INFO or WARN", fn, l)
		}
	}
	p := tm.parameterDoc(t, "LogLevel")
	if fmt.Sprint(p["AllowedValues"]) != "[TRACE DEBUG INFO]" || p["Default"] != "INFO" {
		t.Errorf("LogLevel: AllowedValues %v Default %v, want Lambda's application log levels and INFO", p["AllowedValues"], p["Default"])
	}
}

// X-Ray tracing is a parameter, off (PassThrough) by default.
func TestTracing(t *testing.T) {
	tm := realTemplate(t)
	globals, _ := tm.doc["Globals"].(map[string]any)
	fn, _ := globals["Function"].(map[string]any)
	if v, err := decodeAny(fn["Tracing"]); err != nil || v.String() != "!Ref Tracing" {
		t.Errorf("Globals.Function.Tracing = %v, want !Ref Tracing", fn["Tracing"])
	}
	for _, id := range wantFunctions {
		if props, _ := tm.resource(t, id)["Properties"].(map[string]any); props["Tracing"] != nil {
			t.Errorf("%s sets Tracing itself: %v", id, props["Tracing"])
		}
	}
	p := tm.parameterDoc(t, "Tracing")
	var allowed []string
	for _, v := range list(p["AllowedValues"]) {
		allowed = append(allowed, fmt.Sprint(v))
	}
	if sort.Strings(allowed); !slices.Equal(allowed, []string{"Active", "PassThrough"}) || p["Default"] != "PassThrough" {
		t.Errorf("Tracing: AllowedValues %v Default %v, want Active/PassThrough and PassThrough", allowed, p["Default"])
	}
}

// An asynchronous invocation of PublishFunction that fails every attempt
// ends up in a queue that keeps it 14 days, encrypted, which Lambda may
// send to, and which is an output.
func TestAsyncPublishesHaveADeadLetterQueue(t *testing.T) {
	tm := realTemplate(t)
	configs := tm.resourcesOfType("AWS::Lambda::EventInvokeConfig")
	queues := tm.resourcesOfType("AWS::SQS::Queue")
	if len(configs) != 1 || len(queues) != 1 {
		t.Fatalf("EventInvokeConfigs %v queues %v, want one each", configs, queues)
	}
	queue := queues[0]
	props, _ := tm.resource(t, configs[0])["Properties"].(map[string]any)
	if v, err := decodeAny(props["FunctionName"]); err != nil || v.String() != "!Ref PublishFunction" {
		t.Errorf("%s: FunctionName %v, want !Ref PublishFunction", configs[0], props["FunctionName"])
	}
	// Publishers invoke the function unqualified: $LATEST.
	if props["Qualifier"] != "$LATEST" {
		t.Errorf("%s: Qualifier %v, want $LATEST", configs[0], props["Qualifier"])
	}
	if r, ok := props["MaximumRetryAttempts"].(float64); !ok || r < 0 || r > 2 {
		t.Errorf("%s: MaximumRetryAttempts %v, want 0 to 2", configs[0], props["MaximumRetryAttempts"])
	}
	if a, ok := props["MaximumEventAgeInSeconds"].(float64); !ok || a < 60 || a > 21600 {
		t.Errorf("%s: MaximumEventAgeInSeconds %v, want 60 to 21600", configs[0], props["MaximumEventAgeInSeconds"])
	}
	dest, _ := props["DestinationConfig"].(map[string]any)
	onFailure, _ := dest["OnFailure"].(map[string]any)
	queueArn := Value{Kind: GetAtt, Name: queue, attribute: "Arn"}
	if v, err := decodeAny(onFailure["Destination"]); err != nil || v.String() != queueArn.String() {
		t.Errorf("%s: OnFailure destination %v, want %v", configs[0], onFailure["Destination"], queueArn)
	}

	q := tm.resource(t, queue)
	qp, _ := q["Properties"].(map[string]any)
	if qp["MessageRetentionPeriod"] != float64(1209600) || qp["SqsManagedSseEnabled"] != true {
		t.Errorf("%s: MessageRetentionPeriod %v SqsManagedSseEnabled %v, want 1209600 (14 days) and true", queue, qp["MessageRetentionPeriod"], qp["SqsManagedSseEnabled"])
	}
	// Lambda sends to standard queues only.
	if qp["FifoQueue"] != nil || qp["KmsMasterKeyId"] != nil {
		t.Errorf("%s: FifoQueue %v KmsMasterKeyId %v: Lambda destinations are standard queues; a KMS key would need kms permissions", queue, qp["FifoQueue"], qp["KmsMasterKeyId"])
	}

	// Lambda sends the record with the function's own role: it may send to
	// this queue, and no other function may touch SQS.
	for _, fn := range wantFunctions {
		var sends []string
		for _, st := range tm.statements(t, fn) {
			for _, a := range st.Actions {
				if strings.HasPrefix(a, "sqs:") {
					for _, r := range st.Resources {
						sends = append(sends, a+" on "+r.String())
					}
				}
			}
		}
		var want []string
		if fn == "PublishFunction" {
			want = []string{"sqs:SendMessage on " + queueArn.String()}
		}
		if !slices.Equal(sends, want) {
			t.Errorf("%s: SQS permissions %v, want %v", fn, sends, want)
		}
	}

	outputs := map[string]string{}
	for name, o := range tm.cfn.Outputs {
		if v, err := decodeAny(o.Value); err == nil {
			outputs[v.String()] = name
		}
	}
	for _, want := range []string{"!Ref " + queue, queueArn.String()} {
		if outputs[want] == "" {
			t.Errorf("no output of %s", want)
		}
	}
}

// placeholder stands for ${name} in the dashboard's body; it is JSON-safe.
func placeholder(name string) string { return "⟦" + name + "⟧" }

var placeholderRE = regexp.MustCompile(`⟦([^⟧]+)⟧`)

// dashboardValue turns a string of the parsed body back into a Value: a
// Ref or a GetAtt where it is exactly one ${...}, else a literal.
func dashboardValue(s string) Value {
	m := placeholderRE.FindStringSubmatch(s)
	if m == nil || m[0] != s {
		return literal(s)
	}
	if name, attr, ok := strings.Cut(m[1], "."); ok {
		return Value{Kind: GetAtt, Name: name, attribute: attr}
	}
	return Value{Kind: Ref, Name: m[1]}
}

// graphed is one metric of a dashboard graph with its statistic and period.
type graphed struct {
	metricRef
	stat   string
	period float64
}

var statRE = regexp.MustCompile(`^(Sum|Average|Maximum|Minimum|SampleCount|p\d{1,2}(\.\d+)?)$`)

// The dashboard's body is valid JSON once its ${...} are substituted; each
// ${...} is a parameter, a resource (with an attribute it has) or a pseudo
// parameter; the widgets fit the 24-column grid without overlapping; every
// graphed metric is one some function writes or an AWS metric of this
// stack; every alarm is on it; and it graphs what PROTOCOL.md §9 and the
// README promise.
func TestDashboard(t *testing.T) {
	tm := realTemplate(t)
	dashboards := tm.resourcesOfType("AWS::CloudWatch::Dashboard")
	if len(dashboards) != 1 {
		t.Fatalf("dashboards %v, want one", dashboards)
	}
	props, _ := tm.resource(t, dashboards[0])["Properties"].(map[string]any)
	body, err := decodeAny(props["DashboardBody"])
	if err != nil || body.Kind != Sub || len(body.vars) != 0 {
		t.Fatalf("DashboardBody %v (%v), want !Sub of a JSON string", body, err)
	}
	resources, _ := tm.doc["Resources"].(map[string]any)
	attrs := map[string][]string{"AWS::CloudWatch::Alarm": {"Arn"}, "AWS::SQS::Queue": {"Arn", "QueueName", "QueueUrl"}}
	substituted, err := substitute(body.format, func(name string) (string, error) {
		res, attr, hasAttr := strings.Cut(name, ".")
		switch r, _ := resources[res].(map[string]any); {
		case strings.HasPrefix(name, "AWS::"):
			if _, ok := pseudoParameters[name]; !ok {
				return "", fmt.Errorf("unknown pseudo parameter %s", name)
			}
		case hasParameter(tm, name):
		case r == nil:
			return "", fmt.Errorf("${%s}: no such parameter or resource", name)
		case hasAttr && !slices.Contains(attrs[fmt.Sprint(r["Type"])], attr):
			return "", fmt.Errorf("${%s}: %s has no attribute %s this test knows", name, r["Type"], attr)
		}
		return placeholder(name), nil
	})
	if err != nil {
		t.Fatal(err)
	}
	var dash struct {
		Widgets []struct {
			Type                string
			X, Y, Width, Height int
			Properties          map[string]any
		}
	}
	dec := json.NewDecoder(strings.NewReader(substituted))
	if err := dec.Decode(&dash); err != nil {
		t.Fatalf("DashboardBody is not JSON: %v\n%s", err, substituted)
	}
	if len(dash.Widgets) == 0 {
		t.Fatal("no widgets")
	}

	var grid [24][200]string
	var graphs []graphed
	onDashboard := map[string]bool{}
	for i, w := range dash.Widgets {
		title, _ := w.Properties["title"].(string)
		where := fmt.Sprintf("widget %d (%q)", i, title)
		if title == "" {
			t.Errorf("%s: no title", where)
		}
		if w.X < 0 || w.Y < 0 || w.Width < 1 || w.Height < 1 || w.X+w.Width > 24 || w.Y+w.Height > len(grid[0]) {
			t.Errorf("%s: at (%d,%d) size %dx%d, outside the 24-column grid", where, w.X, w.Y, w.Width, w.Height)
			continue
		}
		overlaps := map[string]bool{}
		for x := w.X; x < w.X+w.Width; x++ {
			for y := w.Y; y < w.Y+w.Height; y++ {
				if other := grid[x][y]; other != "" && !overlaps[other] {
					overlaps[other] = true
					t.Errorf("%s overlaps %s", where, other)
				}
				grid[x][y] = where
			}
		}
		switch w.Type {
		case "alarm":
			for _, a := range list(w.Properties["alarms"]) {
				s, _ := a.(string)
				v := dashboardValue(s)
				if v.Kind != GetAtt || v.attribute != "Arn" || !slices.Contains(tm.resourcesOfType("AWS::CloudWatch::Alarm"), v.Name) {
					t.Errorf("%s: %q is no alarm of the template", where, s)
				}
				onDashboard[v.Name] = true
			}
		case "metric":
			if r := dashboardValue(fmt.Sprint(w.Properties["region"])); r.String() != "!Ref AWS::Region" {
				t.Errorf("%s: region %v, want ${AWS::Region}", where, w.Properties["region"])
			}
			// An expression may use the ids of the widget's other entries.
			ids := map[string]bool{}
			for _, entry := range list(w.Properties["metrics"]) {
				if parts, _ := entry.([]any); len(parts) > 0 {
					if opts, _ := parts[len(parts)-1].(map[string]any); opts["id"] != nil {
						ids[fmt.Sprint(opts["id"])] = true
					}
				}
			}
			for _, entry := range list(w.Properties["metrics"]) {
				g, err := graphedMetric(entry, w.Properties, ids)
				switch {
				case err != nil:
					t.Errorf("%s: %v", where, err)
				case g == nil: // an expression
				default:
					if err := tm.checkMetric(g.metricRef); err != nil {
						t.Errorf("%s: %v", where, err)
					}
					if !statRE.MatchString(g.stat) || g.period < 60 || int(g.period)%60 != 0 {
						t.Errorf("%s: %s stat %q period %v", where, g.name, g.stat, g.period)
					}
					graphs = append(graphs, *g)
				}
			}
		default:
			t.Errorf("%s: type %q", where, w.Type)
		}
	}
	for _, id := range tm.resourcesOfType("AWS::CloudWatch::Alarm") {
		if !onDashboard[id] {
			t.Errorf("alarm %s is not on the dashboard", id)
		}
	}

	has := func(m metricRef, stat string, period float64) bool {
		return slices.ContainsFunc(graphs, func(g graphed) bool {
			return g.key() == m.key() && g.stat == stat && (period == 0 || g.period == period)
		})
	}
	type want struct {
		m      metricRef
		stat   string
		period float64
	}
	wants := []want{
		// Publishes and deliveries per minute.
		{custom("Publishes", "Function", "PublishFunction"), "Sum", 60},
		{custom("Deliveries", "Function", "PublishFunction"), "Sum", 60},
		{custom("Gone", "Function", "PublishFunction"), "Sum", 0},
		{custom("Failed", "Function", "PublishFunction"), "Sum", 0},
		{custom("Throttled", "Function", "PublishFunction"), "Sum", 0},
		{custom("PublishLatency", "Function", "PublishFunction"), "p50", 0},
		{custom("PublishLatency", "Function", "PublishFunction"), "p99", 0},
		{custom("Connects", "Function", "ConnectFunction"), "Sum", 0},
	}
	for _, reason := range emittedMetrics["ConnectsRefused"].values {
		wants = append(wants, want{custom("ConnectsRefused", "Function", "ConnectFunction", "Reason", reason), "Sum", 0})
	}
	for _, fn := range wantFunctions {
		ref := Value{Kind: Ref, Name: fn}
		wants = append(wants,
			want{aws("AWS/Lambda", "ConcurrentExecutions", "FunctionName", ref), "Maximum", 0},
			want{aws("AWS/Lambda", "Errors", "FunctionName", ref), "Sum", 0})
	}
	for _, w := range wants {
		if !has(w.m, w.stat, w.period) {
			t.Errorf("the dashboard does not graph %s (%s, period %v)", w.m.key(), w.stat, w.period)
		}
	}
}

func hasParameter(tm *Template, name string) bool {
	_, ok := tm.Parameters[name]
	return ok
}

// graphedMetric decodes one entry of a metric widget's "metrics":
// [namespace, name, dimension, value, ..., {options}], or [{expression}]
// (nil: an expression, checked here to be arithmetic on ids, the other
// entries of the widget, or a SEARCH of one metric the functions write).
func graphedMetric(entry any, props map[string]any, ids map[string]bool) (*graphed, error) {
	parts, ok := entry.([]any)
	if !ok || len(parts) == 0 {
		return nil, fmt.Errorf("metric entry %v", entry)
	}
	opts, _ := parts[len(parts)-1].(map[string]any)
	if opts != nil {
		parts = parts[:len(parts)-1]
	}
	if expr, ok := opts["expression"].(string); ok {
		if len(parts) != 0 {
			return nil, fmt.Errorf("expression %q with a metric", expr)
		}
		if regexp.MustCompile(`^[a-z][A-Za-z0-9_]*( *[-+*/] *[a-z][A-Za-z0-9_]*)*$`).MatchString(expr) {
			for _, id := range regexp.MustCompile(`[a-z][A-Za-z0-9_]*`).FindAllString(expr, -1) {
				if !ids[id] {
					return nil, fmt.Errorf("expression %q: no metric of the widget has id %s", expr, id)
				}
			}
			return nil, nil
		}
		// SEARCH('{"ns",Function,Action} MetricName="Frames"', 'Sum', 60)
		m := regexp.MustCompile(`^SEARCH\('\{"⟦MetricsNamespace⟧",([A-Za-z,]+)\} MetricName="([A-Za-z]+)"', '(\w+)', (\d+)\)$`).FindStringSubmatch(expr)
		if m == nil {
			return nil, fmt.Errorf("expression %q: only arithmetic on the widget's ids, or a SEARCH of one metric of MetricsNamespace, is expected", expr)
		}
		em, ok := emittedMetrics[m[2]]
		if !ok || em.extra == "" || m[1] != "Function,"+em.extra {
			return nil, fmt.Errorf("expression %q: no function writes %s with dimensions %s", expr, m[2], m[1])
		}
		return nil, nil
	}
	if len(parts) < 2 || len(parts)%2 != 0 {
		return nil, fmt.Errorf("metric entry %v: want namespace, name and dimension pairs", entry)
	}
	var strs []string
	for _, p := range parts {
		s, ok := p.(string)
		if !ok {
			return nil, fmt.Errorf("metric entry %v: %v is not a string", entry, p)
		}
		strs = append(strs, s)
	}
	g := &graphed{metricRef: metricRef{namespace: dashboardValue(strs[0]), name: strs[1], dims: map[string]Value{}}}
	for i := 2; i < len(strs); i += 2 {
		g.dims[strs[i]] = dashboardValue(strs[i+1])
	}
	g.stat, _ = props["stat"].(string)
	if s, ok := opts["stat"].(string); ok {
		g.stat = s
	}
	g.period, _ = props["period"].(float64)
	if p, ok := opts["period"].(float64); ok {
		g.period = p
	}
	return g, nil
}

// README.md's "Operating it" names every alarm (by its name after the
// stack's), every metric the functions write, and the dead-letter queue's
// output: what fires, or what an operator reads, is explained there.
func TestReadmeExplainsOperations(t *testing.T) {
	tm := realTemplate(t)
	data, err := os.ReadFile(filepath.Join(repoRoot(t), "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	readme := string(data)
	start := strings.Index(readme, "\n## Operating it\n")
	if start < 0 {
		t.Fatal(`README.md has no "## Operating it" section`)
	}
	section := readme[start+1:]
	if end := strings.Index(section[3:], "\n## "); end >= 0 {
		section = section[:end+3]
	}
	for _, id := range tm.resourcesOfType("AWS::CloudWatch::Alarm") {
		props, _ := tm.resource(t, id)["Properties"].(map[string]any)
		name, _ := decodeAny(props["AlarmName"])
		if suffix := strings.TrimPrefix(name.format, "${AWS::StackName}-"); !strings.Contains(section, "`"+suffix+"`") {
			t.Errorf("README.md's Operating it does not explain alarm %s (`%s`)", id, suffix)
		}
	}
	for name := range emittedMetrics {
		if !strings.Contains(section, "| `"+name+"` |") {
			t.Errorf("README.md's metrics table has no row for %s", name)
		}
	}
	for _, s := range []string{"PublishDeadLetterQueueUrl", "requestPayload", "responsePayload", "start-message-move-task", "DashboardUrl"} {
		if !strings.Contains(section, s) {
			t.Errorf("README.md's Operating it does not mention %s", s)
		}
	}
}

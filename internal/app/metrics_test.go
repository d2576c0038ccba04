package app_test

import (
	"context"
	"encoding/json"
	"log/slog"
	"net/http"
	"slices"
	"strings"
	"testing"

	"github.com/workorders/notify/internal/app"
	"github.com/workorders/notify/internal/metrics"
	"github.com/workorders/notify/internal/notify"
)

// metricsOf parses the EMF lines function wrote so far.
func (h *harness) metricsOf(t *testing.T, function string) []metrics.Parsed {
	t.Helper()
	var out []metrics.Parsed
	for _, line := range h.metrics.all() {
		if !strings.HasSuffix(line, "}\n") || strings.Count(line, "\n") != 1 {
			t.Fatalf("EMF write %q is not one JSON line", line)
		}
		p, err := metrics.Parse([]byte(line))
		if err != nil {
			t.Fatalf("EMF line %s: %v", line, err)
		}
		if p.Strings["Function"] == function {
			out = append(out, p)
		}
	}
	return out
}

// Every function reads METRICS_NAMESPACE (and template.yaml must set it for
// each: internal/samtemplate holds the template to FunctionEnv).
func TestEveryFunctionReadsTheMetricsNamespace(t *testing.T) {
	if app.EnvMetricsNamespace != "METRICS_NAMESPACE" {
		t.Errorf("EnvMetricsNamespace = %q", app.EnvMetricsNamespace)
	}
	for _, fn := range []string{app.ConnectFunction, app.DisconnectFunction, app.DefaultFunction, app.PublishFunction, app.FanoutFunction} {
		if !slices.Contains(app.FunctionEnv[fn], app.EnvMetricsNamespace) {
			t.Errorf("FunctionEnv[%s] lacks %s", fn, app.EnvMetricsNamespace)
		}
	}
}

// The samples of events/ through the five functions: one EMF line per
// invocation, in the namespace of the environment, with the function's
// metrics.
func TestSampleEventsWriteMetrics(t *testing.T) {
	h := newHarness(t)
	env := func(fn, ns string) map[string]string {
		e := sampleEnv(t, fn, h.mgmt.URL)
		if ns == "" {
			delete(e, app.EnvMetricsNamespace)
		} else {
			e[app.EnvMetricsNamespace] = ns
		}
		return e
	}
	if got := invokeStatus(t, h.handler(t, app.ConnectFunction, env(app.ConnectFunction, "Custom/NS")), readEvent(t, "connect.json")); got != http.StatusOK {
		t.Fatalf("connect: %d", got)
	}
	if got := invokeStatus(t, h.handler(t, app.DefaultFunction, env(app.DefaultFunction, "")), readEvent(t, "default.json")); got != http.StatusOK {
		t.Fatalf("default: %d", got)
	}
	if _, err := invoke(t, h.handler(t, app.PublishFunction, nil), readEvent(t, "publish.json")); err != nil {
		t.Fatal(err)
	}
	if got := invokeStatus(t, h.handler(t, app.DisconnectFunction, nil), readEvent(t, "disconnect.json")); got != http.StatusOK {
		t.Fatalf("disconnect: %d", got)
	}
	out, err := invoke(t, h.handler(t, app.FanoutFunction, nil), readEvent(t, "fanout.json"))
	if err != nil {
		t.Fatal(err)
	}
	var res notify.FanoutResult
	if err := json.Unmarshal(out, &res); err != nil || res.Delivered != 1 || !slices.Equal(res.ReachedUsers, []string{"42"}) {
		t.Errorf("fanout.json answered %s (%v), want 1 delivered, user 42 reached", out, err)
	}
	if n := len(h.metrics.all()); n != 5 {
		t.Fatalf("%d EMF lines for 5 invocations", n)
	}
	for _, tc := range []struct {
		function, namespace string
		values              map[string]float64
		dimension           string
	}{
		{app.ConnectFunction, "Custom/NS", map[string]float64{"Connects": 1, "ConnectsRefused": 0}, ""},
		{app.DefaultFunction, metrics.DefaultNamespace, map[string]float64{"Frames": 1, "FrameErrors": 0}, "Action"},
		{app.PublishFunction, "WorkOrderNotify", map[string]float64{"Publishes": 1, "Deliveries": 1, "Gone": 0, "Failed": 0,
			"Throttled": 0, "Duplicates": 0, "FanoutConnections": 1}, ""},
		{app.DisconnectFunction, "WorkOrderNotify", map[string]float64{"Disconnects": 1}, ""},
		{app.FanoutFunction, "WorkOrderNotify", map[string]float64{"Deliveries": 1, "Gone": 0, "Failed": 0, "Throttled": 0}, ""},
	} {
		m := h.metricsOf(t, tc.function)
		if len(m) != 1 {
			t.Fatalf("%s: %d objects", tc.function, len(m))
		}
		p := m[0]
		if p.Namespace != tc.namespace {
			t.Errorf("%s: namespace %q, want %q", tc.function, p.Namespace, tc.namespace)
		}
		wantDims := [][]string{{"Function"}}
		if tc.dimension != "" {
			wantDims = append(wantDims, []string{"Function", tc.dimension})
		}
		if !slices.EqualFunc(p.Dimensions, wantDims, slices.Equal) {
			t.Errorf("%s: dimensions %v, want %v", tc.function, p.Dimensions, wantDims)
		}
		for name, v := range tc.values {
			if p.Values[name] != v || p.Units[name] != metrics.Count {
				t.Errorf("%s: %s = %v %s, want %v Count", tc.function, name, p.Values[name], p.Units[name], v)
			}
		}
	}
	if p := h.metricsOf(t, app.DefaultFunction)[0]; p.Strings["Action"] != "ping" {
		t.Errorf("default.json's frame: Action %q, want ping", p.Strings["Action"])
	}
	p := h.metricsOf(t, app.PublishFunction)[0]
	for _, name := range []string{"PublishLatency", "StoreLatency"} {
		if p.Units[name] != metrics.Milliseconds || p.Values[name] < 0 {
			t.Errorf("publish: %s = %v %s, want a duration in Milliseconds", name, p.Values[name], p.Units[name])
		}
	}
}

func TestInvalidMetricsNamespaceIsAConfigurationError(t *testing.T) {
	for _, ns := range []string{"AWS/Lambda", "bad\"namespace", strings.Repeat("n", 256)} {
		env := sampleEnv(t, app.DisconnectFunction, "")
		env[app.EnvMetricsNamespace] = ns
		_, err := app.NewHandler(context.Background(), app.DisconnectFunction, env, app.Deps{AWSConfig: staticConfig()})
		if err == nil || !strings.Contains(err.Error(), app.EnvMetricsNamespace) {
			t.Errorf("namespace %q: err = %v, want one naming %s", ns, err, app.EnvMetricsNamespace)
		}
	}
}

func TestLogLevel(t *testing.T) {
	for v, want := range map[string]slog.Level{
		"": slog.LevelInfo, "INFO": slog.LevelInfo, "TRACE": slog.LevelDebug, "DEBUG": slog.LevelDebug,
		"debug": slog.LevelDebug, "WARN": slog.LevelWarn, "ERROR": slog.LevelError, "FATAL": slog.LevelError,
		" warn ": slog.LevelWarn, "verbose": slog.LevelInfo,
	} {
		if got := app.LogLevel(v); got != want {
			t.Errorf("LogLevel(%q) = %v, want %v", v, got, want)
		}
	}
	if app.EnvLambdaLogLevel != "AWS_LAMBDA_LOG_LEVEL" {
		t.Errorf("EnvLambdaLogLevel = %q", app.EnvLambdaLogLevel)
	}
}

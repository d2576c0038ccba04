package metrics_test

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/workorders/notify/internal/metrics"
)

var at = time.Date(2026, 11, 25, 10, 0, 0, 0, time.UTC)

// The exact bytes of a publish's object: metadata first, then Function, then
// the values in the order first set; counts as integers, milliseconds to the
// microsecond.
func TestMarshalPublishExactly(t *testing.T) {
	r := metrics.NewRecord("PublishFunction", at)
	for _, name := range []string{metrics.Publishes, metrics.Deliveries, metrics.Gone, metrics.Failed,
		metrics.Throttled, metrics.Duplicates, metrics.FanoutConnections} {
		r.Count(name, 0)
	}
	r.Count(metrics.Publishes, 1)
	r.Count(metrics.Deliveries, 2)
	r.Count(metrics.Gone, 1)
	r.Count(metrics.FanoutConnections, 3)
	r.Duration(metrics.PublishLatency, 12345678*time.Nanosecond)
	r.Duration(metrics.StoreLatency, 3*time.Millisecond)
	got, err := r.Marshal("WorkOrderNotify")
	if err != nil {
		t.Fatal(err)
	}
	want := `{"_aws":{"Timestamp":1795600800000,"CloudWatchMetrics":[{"Namespace":"WorkOrderNotify",` +
		`"Dimensions":[["Function"]],"Metrics":[` +
		`{"Name":"Publishes","Unit":"Count"},{"Name":"Deliveries","Unit":"Count"},{"Name":"Gone","Unit":"Count"},` +
		`{"Name":"Failed","Unit":"Count"},{"Name":"Throttled","Unit":"Count"},{"Name":"Duplicates","Unit":"Count"},` +
		`{"Name":"FanoutConnections","Unit":"Count"},{"Name":"PublishLatency","Unit":"Milliseconds"},` +
		`{"Name":"StoreLatency","Unit":"Milliseconds"}]}]},` +
		`"Function":"PublishFunction","Publishes":1,"Deliveries":2,"Gone":1,"Failed":0,"Throttled":0,` +
		`"Duplicates":0,"FanoutConnections":3,"PublishLatency":12.345,"StoreLatency":3}`
	if string(got) != want {
		t.Errorf("got\n%s\nwant\n%s", got, want)
	}
	if !json.Valid(got) || bytes.ContainsRune(got, '\n') {
		t.Errorf("not one line of valid JSON: %s", got)
	}
}

// A refused connect: the Reason dimension is a second dimension set and a
// top-level member; every metric of the object is in both sets.
func TestMarshalExtraDimension(t *testing.T) {
	r := metrics.NewRecord("ConnectFunction", at)
	r.Count(metrics.Connects, 0)
	r.Count(metrics.ConnectsRefused, 0)
	r.Count(metrics.ConnectsRefused, 1)
	r.Dimension(metrics.DimensionReason, "origin")
	r.Dimension(metrics.DimensionReason, metrics.ReasonToken) // set again: replaced
	got, err := r.Marshal("Custom/NS")
	if err != nil {
		t.Fatal(err)
	}
	want := `{"_aws":{"Timestamp":1795600800000,"CloudWatchMetrics":[{"Namespace":"Custom/NS",` +
		`"Dimensions":[["Function"],["Function","Reason"]],"Metrics":[` +
		`{"Name":"Connects","Unit":"Count"},{"Name":"ConnectsRefused","Unit":"Count"}]}]},` +
		`"Function":"ConnectFunction","Reason":"token","Connects":0,"ConnectsRefused":1}`
	if string(got) != want {
		t.Errorf("got\n%s\nwant\n%s", got, want)
	}
}

// Values with characters JSON must escape stay valid JSON: the object is
// encoded, never concatenated.
func TestMarshalEscapes(t *testing.T) {
	r := metrics.NewRecord(`Fn"\`+"\n", at)
	r.Dimension(metrics.DimensionAction, `a"b`)
	r.Count(metrics.Frames, 1)
	got, err := r.Marshal("NS")
	if err != nil {
		t.Fatal(err)
	}
	p, err := metrics.Parse(got)
	if err != nil {
		t.Fatalf("Parse(%s): %v", got, err)
	}
	if p.Strings["Function"] != "Fn\"\\\n" || p.Strings["Action"] != `a"b` || p.Values["Frames"] != 1 {
		t.Errorf("parsed %+v from %s", p, got)
	}
}

func TestAddAccumulatesConcurrently(t *testing.T) {
	r := metrics.NewRecord("PublishFunction", at)
	r.Count(metrics.Throttled, 0)
	ctx := metrics.NewContext(context.Background(), r)
	var wg sync.WaitGroup
	for range 50 {
		wg.Go(func() { metrics.FromContext(ctx).Add(metrics.Throttled, 2) })
	}
	wg.Wait()
	if v := r.Values(); len(v) != 1 || v[0] != (metrics.Value{Name: metrics.Throttled, Unit: metrics.Count, Value: 100}) {
		t.Errorf("values %+v, want Throttled 100", v)
	}
	// A context without a record: nothing happens, nothing panics.
	metrics.FromContext(context.Background()).Add(metrics.Throttled, 1)
	var nilEmitter *metrics.Emitter
	nilEmitter.Start(at).Count(metrics.Frames, 1)
	nilEmitter.Emit(context.Background(), nil, nil)
}

func TestEmitterWritesOneLinePerRecord(t *testing.T) {
	var out bytes.Buffer
	e := metrics.NewEmitter("", "DisconnectFunction", &out)
	if e.Namespace() != metrics.DefaultNamespace || metrics.DefaultNamespace != "WorkOrderNotify" {
		t.Errorf("namespace %q, want the default WorkOrderNotify", e.Namespace())
	}
	for range 2 {
		r := e.Start(at)
		r.Count(metrics.Disconnects, 1)
		e.Emit(context.Background(), nil, r)
	}
	lines := strings.Split(strings.TrimSuffix(out.String(), "\n"), "\n")
	if len(lines) != 2 {
		t.Fatalf("output %q, want 2 lines", out.String())
	}
	for _, l := range lines {
		p, err := metrics.Parse([]byte(l))
		if err != nil {
			t.Fatal(err)
		}
		if p.Namespace != "WorkOrderNotify" || p.Strings["Function"] != "DisconnectFunction" ||
			p.Values["Disconnects"] != 1 || p.Units["Disconnects"] != metrics.Count || !p.Timestamp.Equal(at) {
			t.Errorf("line %s parsed as %+v", l, p)
		}
	}
}

// The log emitter logs the same JSON object, through the logger it is given
// (the invocation's, with its attributes).
func TestLogEmitter(t *testing.T) {
	var out bytes.Buffer
	log := slog.New(slog.NewJSONHandler(&out, nil)).With("requestId", "r-1")
	e := metrics.NewLogEmitter("NS", "DefaultFunction")
	r := e.Start(at)
	r.Dimension(metrics.DimensionAction, metrics.ActionInvalid)
	r.Count(metrics.Frames, 1)
	r.Count(metrics.FrameErrors, 1)
	e.Emit(context.Background(), log, r)
	var rec struct {
		Level, Msg, RequestID, EMF string
	}
	if err := json.Unmarshal(out.Bytes(), &rec); err != nil {
		t.Fatalf("%s: %v", out.Bytes(), err)
	}
	want, _ := r.Marshal("NS")
	if rec.Level != "INFO" || rec.Msg != "metrics" || rec.RequestID != "r-1" || rec.EMF != string(want) {
		t.Errorf("logged %s, want an INFO record \"metrics\" with emf %s", out.Bytes(), want)
	}
}

func TestValidNamespace(t *testing.T) {
	for ns, ok := range map[string]bool{
		"WorkOrderNotify": true, "Work Orders/Notify-1.2_#:x": true, strings.Repeat("a", 255): true,
		"": false, strings.Repeat("a", 256): false, "AWS/Lambda": false, "bad\"quote": false, "é": false,
	} {
		if err := metrics.ValidNamespace(ns); (err == nil) != ok {
			t.Errorf("ValidNamespace(%q) = %v, want ok=%v", ns, err, ok)
		}
	}
}

func TestParseRefusesOtherShapes(t *testing.T) {
	for _, line := range []string{
		`not json`,
		`{"_aws":{"Timestamp":1,"CloudWatchMetrics":[]}}`,
		`{"_aws":{"Timestamp":1,"CloudWatchMetrics":[{"Namespace":"n","Dimensions":[],"Metrics":[]}]},"x":[1]}`,
	} {
		if _, err := metrics.Parse([]byte(line)); err == nil {
			t.Errorf("Parse(%s): no error", line)
		}
	}
}

// BenchmarkPublishRecord is what one publish invocation spends on its EMF
// object: the record, its nine values, the encoding and the write.
func BenchmarkPublishRecord(b *testing.B) {
	e := metrics.NewEmitter("", "PublishFunction", io.Discard)
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		r := e.Start(at)
		for _, name := range []string{metrics.Publishes, metrics.Deliveries, metrics.Gone, metrics.Failed,
			metrics.Throttled, metrics.Duplicates, metrics.FanoutConnections} {
			r.Count(name, 1)
		}
		r.Duration(metrics.PublishLatency, 40*time.Millisecond)
		r.Duration(metrics.StoreLatency, 6*time.Millisecond)
		e.Emit(ctx, nil, r)
	}
}

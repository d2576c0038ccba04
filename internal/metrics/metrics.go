// Package metrics writes the CloudWatch embedded metric format (EMF) objects
// of docs/PROTOCOL.md §9: one JSON object per invocation, with an `_aws`
// member (Timestamp, CloudWatchMetrics: [{Namespace, Dimensions, Metrics}])
// and the values as top-level members. CloudWatch Logs turns each such line
// that a Lambda function writes to standard output into metric data points;
// nothing here calls an AWS API.
//
// A function's handler starts a Record per invocation (Emitter.Start), sets
// its values (Count, Add, Duration) and its extra dimension (Dimension), and
// emits it once, when the invocation ends (Emitter.Emit). Code deeper down
// (internal/apigw's retryer) adds to the Record carried in the context
// (NewContext, FromContext). The package imports nothing of this repository.
//
// Why not a library: no EMF library for Go is maintained by AWS (there are
// official ones for Node, Python, Java and .NET only). The community ones
// found (prozz/aws-embedded-metrics-golang, unmaintained since 2021; its
// fork dangrier/aws-embedded-metrics-golang, whose current releases require
// a newer Go than this module's; udhos/aws-emf, v0.0.x) each bring a builder
// API larger than the one object this service writes, add Lambda dimensions
// of their own, and write to a fixed writer rather than to the local stack's
// log. The format needs a handful of typed structs; they are below, encoded
// with the JSON package the module already uses.
package metrics

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"sync"
	"time"

	"github.com/go-json-experiment/json"
	"github.com/go-json-experiment/json/jsontext"
)

// DefaultNamespace is the CloudWatch namespace when METRICS_NAMESPACE is not
// set.
const DefaultNamespace = "WorkOrderNotify"

// Unit is a CloudWatch metric unit.
type Unit string

// The units of docs/PROTOCOL.md §9.
const (
	Count        Unit = "Count"
	Milliseconds Unit = "Milliseconds"
)

// Dimensions. Every metric has Function (the function's logical ID); some
// objects add one more, as a second dimension set [Function, name].
const (
	DimensionFunction = "Function"
	// DimensionReason is on a refused connect: ReasonOrigin, ReasonToken,
	// ReasonRevoked or ReasonStorage.
	DimensionReason = "Reason"
	// DimensionAction is on every frame: its action, or ActionInvalid.
	DimensionAction = "Action"
)

// Metric names, by function (docs/PROTOCOL.md §9).
const (
	// PublishFunction.
	Publishes         = "Publishes"
	Deliveries        = "Deliveries"
	Gone              = "Gone"
	Failed            = "Failed"
	Throttled         = "Throttled"
	Duplicates        = "Duplicates"
	FanoutConnections = "FanoutConnections"
	PublishLatency    = "PublishLatency"
	StoreLatency      = "StoreLatency"
	// ConnectFunction.
	Connects        = "Connects"
	ConnectsRefused = "ConnectsRefused"
	// DefaultFunction.
	Frames      = "Frames"
	FrameErrors = "FrameErrors"
	// DisconnectFunction.
	Disconnects = "Disconnects"
)

// Values of the Reason dimension of a refused connect.
const (
	ReasonOrigin  = "origin"
	ReasonToken   = "token"
	ReasonRevoked = "revoked"
	ReasonStorage = "storage"
)

// ActionInvalid is the Action dimension of a frame without an action the
// server knows (not JSON, no action, an unknown one, a binary message): the
// client's own text never becomes a dimension value, so the number of
// CloudWatch metrics stays fixed.
const ActionInvalid = "invalid"

// ValidNamespace reports why ns cannot be a CloudWatch namespace, or nil: 1
// to 255 characters of letters, digits and . - _ / # : and space, not
// starting with "AWS/" (reserved).
func ValidNamespace(ns string) error {
	if ns == "" || len(ns) > 255 {
		return fmt.Errorf("namespace %q: must be 1 to 255 characters", ns)
	}
	for _, r := range ns {
		ok := r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || strings.ContainsRune(".-_/#: ", r)
		if !ok {
			return fmt.Errorf("namespace %q: %q is not allowed (letters, digits and . - _ / # : and space are)", ns, r)
		}
	}
	if strings.HasPrefix(ns, "AWS/") {
		return fmt.Errorf("namespace %q: AWS/ is reserved for AWS services", ns)
	}
	return nil
}

// Record is one invocation's metrics. Its methods are safe for concurrent
// use and do nothing on a nil *Record, so that code may record into
// FromContext(ctx) whether or not the invocation keeps metrics.
type Record struct {
	function string
	start    time.Time

	mu     sync.Mutex
	dims   []Dimension // beyond Function, in the order set
	values []Value     // in the order first set
}

// Dimension is a dimension's name and its value on one object.
type Dimension struct {
	Name, Value string
}

// Value is a metric's value on one object.
type Value struct {
	Name  string
	Unit  Unit
	Value float64
}

// NewRecord starts the record of one invocation of function (its logical
// ID, the Function dimension) at start (the object's Timestamp).
func NewRecord(function string, start time.Time) *Record {
	return &Record{function: function, start: start}
}

// Count sets the count name to n.
func (r *Record) Count(name string, n int) { r.set(name, Count, float64(n), false) }

// Add adds n to the count name (from zero when it was not set).
func (r *Record) Add(name string, n int) { r.set(name, Count, float64(n), true) }

// Duration sets name to d, in milliseconds (to the microsecond).
func (r *Record) Duration(name string, d time.Duration) {
	r.set(name, Milliseconds, float64(d.Microseconds())/1000, false)
}

func (r *Record) set(name string, unit Unit, v float64, add bool) {
	if r == nil {
		return
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	for i := range r.values {
		if r.values[i].Name == name {
			if add {
				v += r.values[i].Value
			}
			r.values[i] = Value{Name: name, Unit: unit, Value: v}
			return
		}
	}
	r.values = append(r.values, Value{Name: name, Unit: unit, Value: v})
}

// Dimension gives the object a dimension beyond Function: every metric is
// then also published with the dimensions [Function, name], name's value
// being value (a top-level member of the object). Setting name again
// replaces its value.
func (r *Record) Dimension(name, value string) {
	if r == nil {
		return
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	for i := range r.dims {
		if r.dims[i].Name == name {
			r.dims[i].Value = value
			return
		}
	}
	r.dims = append(r.dims, Dimension{Name: name, Value: value})
}

// Value returns the count name holds (0 when it was not set).
func (r *Record) Value(name string) int {
	for _, v := range r.Values() {
		if v.Name == name {
			return int(v.Value)
		}
	}
	return 0
}

// Values returns a copy of the values set so far, in the order first set.
func (r *Record) Values() []Value {
	if r == nil {
		return nil
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]Value(nil), r.values...)
}

// Marshal returns the record as one EMF object in namespace, e.g.
//
//	{"_aws":{"Timestamp":1795600800000,"CloudWatchMetrics":[{"Namespace":"WorkOrderNotify",
//	"Dimensions":[["Function"],["Function","Reason"]],"Metrics":[{"Name":"Connects","Unit":"Count"},
//	{"Name":"ConnectsRefused","Unit":"Count"}]}]},"Function":"ConnectFunction","Reason":"token",
//	"Connects":0,"ConnectsRefused":1}
//
// on one line: the metadata first, then the dimensions' values, then the
// metrics' values in the order they were first set.
func (r *Record) Marshal(namespace string) ([]byte, error) {
	if r == nil {
		return nil, fmt.Errorf("metrics: Marshal of a nil Record")
	}
	r.mu.Lock()
	obj := object{
		aws: metadata{
			Timestamp: r.start.UnixMilli(),
			CloudWatchMetrics: []directive{{
				Namespace:  namespace,
				Dimensions: [][]string{{DimensionFunction}},
				Metrics:    make([]metricDefinition, len(r.values)),
			}},
		},
		dims:   append([]Dimension{{DimensionFunction, r.function}}, r.dims...),
		values: append([]Value(nil), r.values...),
	}
	r.mu.Unlock()
	d := &obj.aws.CloudWatchMetrics[0]
	for _, dim := range obj.dims[1:] {
		d.Dimensions = append(d.Dimensions, []string{DimensionFunction, dim.Name})
	}
	for i, v := range obj.values {
		d.Metrics[i] = metricDefinition{Name: v.Name, Unit: v.Unit}
	}
	return json.Marshal(obj)
}

// The EMF object (CloudWatch_Embedded_Metric_Format_Specification): the
// `_aws` metadata is fixed in shape; the members that follow are named by
// the dimensions and metrics, so object writes them one by one with
// jsontext tokens, in a stable order (a map would sort them).
type object struct {
	aws    metadata
	dims   []Dimension
	values []Value
}

type metadata struct {
	Timestamp         int64       `json:"Timestamp"` // milliseconds since the epoch
	CloudWatchMetrics []directive `json:"CloudWatchMetrics"`
}

type directive struct {
	Namespace  string             `json:"Namespace"`
	Dimensions [][]string         `json:"Dimensions"`
	Metrics    []metricDefinition `json:"Metrics"`
}

type metricDefinition struct {
	Name string `json:"Name"`
	Unit Unit   `json:"Unit"`
}

// MarshalJSONTo writes o as one JSON object: `_aws`, then each dimension's
// value, then each metric's value.
func (o object) MarshalJSONTo(enc *jsontext.Encoder) error {
	if err := enc.WriteToken(jsontext.BeginObject); err != nil {
		return err
	}
	if err := enc.WriteToken(jsontext.String("_aws")); err != nil {
		return err
	}
	if err := json.MarshalEncode(enc, o.aws); err != nil {
		return err
	}
	for _, d := range o.dims {
		if err := writeMember(enc, d.Name, jsontext.String(d.Value)); err != nil {
			return err
		}
	}
	for _, v := range o.values {
		if err := writeMember(enc, v.Name, jsontext.Float(v.Value)); err != nil {
			return err
		}
	}
	return enc.WriteToken(jsontext.EndObject)
}

func writeMember(enc *jsontext.Encoder, name string, value jsontext.Token) error {
	if err := enc.WriteToken(jsontext.String(name)); err != nil {
		return err
	}
	return enc.WriteToken(value)
}

type recordKey struct{}

// NewContext returns a context carrying r, for the code an invocation calls
// to record into (FromContext).
func NewContext(ctx context.Context, r *Record) context.Context {
	return context.WithValue(ctx, recordKey{}, r)
}

// FromContext returns the record ctx carries, or nil (on which every Record
// method does nothing).
func FromContext(ctx context.Context) *Record {
	r, _ := ctx.Value(recordKey{}).(*Record)
	return r
}

// Emitter writes the records of one function.
type Emitter struct {
	namespace, function string
	w                   io.Writer // nil: through the invocation's logger
	mu                  sync.Mutex
}

// NewEmitter returns an emitter of function's records in namespace
// (DefaultNamespace when empty) that writes each object to w followed by a
// newline, in one Write (concurrent Emits are serialised). In Lambda, w is
// standard output, which CloudWatch Logs reads.
func NewEmitter(namespace, function string, w io.Writer) *Emitter {
	if namespace == "" {
		namespace = DefaultNamespace
	}
	return &Emitter{namespace: namespace, function: function, w: w}
}

// NewLogEmitter returns an emitter like NewEmitter's that logs each object
// instead, through the logger given to Emit: an Info record "metrics" whose
// attribute "emf" is the object, the same JSON text. The local stack uses it,
// so that its log shows what production would graph.
func NewLogEmitter(namespace, function string) *Emitter {
	return NewEmitter(namespace, function, nil)
}

// Namespace returns the emitter's namespace.
func (e *Emitter) Namespace() string { return e.namespace }

// Function returns the function whose records the emitter writes.
func (e *Emitter) Function() string { return e.function }

// Start starts the record of an invocation that started at (the object's
// Timestamp). A nil *Emitter returns a nil *Record: nothing is recorded.
func (e *Emitter) Start(at time.Time) *Record {
	if e == nil {
		return nil
	}
	return NewRecord(e.function, at)
}

// Emit writes r, once the invocation is over. A failure is logged through
// log, never returned: metrics never fail an invocation.
func (e *Emitter) Emit(ctx context.Context, log *slog.Logger, r *Record) {
	if e == nil || r == nil {
		return
	}
	if log == nil {
		log = slog.Default()
	}
	line, err := r.Marshal(e.namespace)
	if err != nil {
		log.Error("metrics not written", "error", err.Error())
		return
	}
	if e.w == nil {
		log.LogAttrs(ctx, slog.LevelInfo, "metrics", slog.String("emf", string(line)))
		return
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	if _, err := e.w.Write(append(line, '\n')); err != nil {
		log.Error("metrics not written", "error", err.Error())
	}
}

// Parse decodes one EMF object, for tests and tools that read the lines
// back: the namespace, the dimension sets, the metrics' units by name and
// every top-level member (dimension values as strings, metric values as
// float64).
func Parse(line []byte) (Parsed, error) {
	var raw struct {
		AWS     metadata                  `json:"_aws"`
		Members map[string]jsontext.Value `json:",inline"`
	}
	if err := json.Unmarshal(bytes.TrimSpace(line), &raw); err != nil {
		return Parsed{}, err
	}
	if len(raw.AWS.CloudWatchMetrics) != 1 {
		return Parsed{}, fmt.Errorf("_aws.CloudWatchMetrics: %d directives, want 1", len(raw.AWS.CloudWatchMetrics))
	}
	d := raw.AWS.CloudWatchMetrics[0]
	p := Parsed{
		Timestamp:  time.UnixMilli(raw.AWS.Timestamp),
		Namespace:  d.Namespace,
		Dimensions: d.Dimensions,
		Units:      map[string]Unit{},
		Strings:    map[string]string{},
		Values:     map[string]float64{},
	}
	for _, m := range d.Metrics {
		p.Units[m.Name] = m.Unit
	}
	for name, v := range raw.Members {
		switch v.Kind() {
		case '"':
			var s string
			if err := json.Unmarshal(v, &s); err != nil {
				return Parsed{}, err
			}
			p.Strings[name] = s
		case '0':
			var f float64
			if err := json.Unmarshal(v, &f); err != nil {
				return Parsed{}, err
			}
			p.Values[name] = f
		default:
			return Parsed{}, fmt.Errorf("member %q: %s is neither a string nor a number", name, v)
		}
	}
	return p, nil
}

// Parsed is a decoded EMF object (Parse).
type Parsed struct {
	Timestamp  time.Time
	Namespace  string
	Dimensions [][]string
	// Units are the declared metrics' units by name.
	Units map[string]Unit
	// Strings are the string members (the dimensions' values).
	Strings map[string]string
	// Values are the number members (the metrics' values).
	Values map[string]float64
}

package app_test

import (
	"go/ast"
	"go/parser"
	"go/token"
	"maps"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/workorders/notify/internal/app"
	"github.com/workorders/notify/internal/devstack"
	"github.com/workorders/notify/internal/lambdaevents"
	"github.com/workorders/notify/internal/metrics"
	"github.com/workorders/notify/internal/notify"
)

// TestProtocolDocumentsTheCode checks that docs/PROTOCOL.md names everything a client, a
// publisher or an operator meets on the wire or in the environment: each frame `type`, error and
// disconnect code, action, request and answer field, Lambda errorType and environment variable.
// The names are collected from the code (internal/notify's source, app.FunctionEnv, the exported
// constants), so that a new one cannot ship undocumented. Each must appear as a word in code
// (an inline code span or a fenced block) of the section that covers it.
func TestProtocolDocumentsTheCode(t *testing.T) {
	doc, err := os.ReadFile(filepath.Join("..", "..", "docs", "PROTOCOL.md"))
	if err != nil {
		t.Fatal(err)
	}
	sections := protocolSections(string(doc))
	src := parseNotify(t)

	// want[name] lists where name comes from and the sections that may document it.
	type source struct {
		what     string
		sections []string
	}
	want := map[string][]source{}
	add := func(what string, secs []string, names ...string) {
		if len(names) == 0 {
			t.Errorf("%s: nothing collected from the code; the collection is broken", what)
		}
		for _, n := range names {
			if !slices.ContainsFunc(want[n], func(s source) bool { return s.what == what }) {
				want[n] = append(want[n], source{what, secs})
			}
		}
	}
	// Sections: §3 frames, §4 publishing, §5 the inbox (whose frames §3 also introduces), §6
	// configuration, §7 the local stack.
	frames, publish, inbox, config, local := []string{"3"}, []string{"4"}, []string{"3", "5"}, []string{"6"}, []string{"7"}

	// Server → client `type` values: every XxxFrame{Type: "..."} in internal/notify.
	add("frame type", frames, src.frameTypes()...)
	// Codes and actions: internal/notify's Action*, Frame* and Disconnect* string constants. A few
	// are named here too, so that a rename breaks this test's build rather than its collection.
	consts := src.stringConsts(regexp.MustCompile(`^(Action|Frame|Disconnect)[A-Z]`))
	for _, v := range []string{notify.ActionPing, notify.ActionSync, notify.ActionRead, notify.FrameBadRequest,
		notify.FrameUnknownAction, notify.FrameInternal, notify.FrameTokenExpired, notify.DisconnectRevoked,
		notify.DisconnectTooManyConnections} {
		if !slices.Contains(consts, v) {
			t.Errorf("constant %q not collected from internal/notify's source", v)
		}
	}
	add("action or code", frames, consts...)

	// Every type encoded or decoded with JSON tags, by type, with the sections that document it.
	// A tagged exported type missing here fails the test.
	tagged := map[reflect.Type][]string{
		reflect.TypeFor[notify.ClientFrame]():       frames,
		reflect.TypeFor[notify.SyncRequest]():       frames,
		reflect.TypeFor[notify.ReadRequest]():       frames,
		reflect.TypeFor[notify.PublishRequest]():    publish,
		reflect.TypeFor[notify.NotificationInput](): publish,
		reflect.TypeFor[notify.DisconnectInput]():   publish,
		reflect.TypeFor[notify.PublishResult]():     publish,
		reflect.TypeFor[notify.DisconnectResult]():  publish,
		reflect.TypeFor[notify.Notification]():      frames,
		reflect.TypeFor[notify.NotificationFrame](): frames,
		reflect.TypeFor[notify.ErrorFrame]():        frames,
		reflect.TypeFor[notify.PongFrame]():         frames,
		reflect.TypeFor[notify.DisconnectedFrame](): frames,
		reflect.TypeFor[notify.SyncedFrame]():       inbox,
		reflect.TypeFor[notify.ReadFrame]():         inbox,
		reflect.TypeFor[notify.FanoutBatch]():       publish,
		reflect.TypeFor[notify.FanoutConnection]():  publish,
		reflect.TypeFor[notify.FanoutResult]():      publish,
	}
	byName := map[string]bool{}
	for typ, secs := range tagged {
		byName[typ.Name()] = true
		for f := range typ.Fields() {
			if f.IsExported() && f.Tag.Get("json") == "" {
				t.Errorf("%s.%s has no JSON tag: its wire name would be its Go name", typ.Name(), f.Name)
			}
		}
		add(typ.Name()+" field", secs, jsonTags(typ)...)
	}
	for _, name := range src.taggedTypes() {
		if ast.IsExported(name) && !byName[name] {
			t.Errorf("notify.%s has JSON tags but is not checked here: add it to tagged, with its section", name)
		}
	}
	// Requests are decoded through other structs too (publishJSON, the anonymous structs of
	// DecodeClientFrame): every JSON name anywhere in internal/notify is a wire name.
	add("JSON field", []string{"3", "4", "5"}, src.allTagNames()...)
	// Keys written into JSON by hand (`,"read":true` on each synced notification), if any.
	if keys := src.handWrittenKeys(); len(keys) > 0 {
		add("hand-written JSON key", inbox, keys...)
	}

	add("Lambda errorType", publish, lambdaevents.ValidationErrorType, lambdaevents.InternalErrorType)

	// Environment: what each function reads (METRICS_NAMESPACE among them).
	var env []string
	for _, vars := range app.FunctionEnv {
		env = append(env, vars...)
	}
	add("environment variable", config, env...)

	// §9: the EMF metrics, their units, dimensions and dimension values, and the default
	// namespace.
	ops := []string{"9"}
	add("metric", ops, metrics.Publishes, metrics.Deliveries, metrics.Gone, metrics.Failed,
		metrics.Throttled, metrics.Duplicates, metrics.FanoutConnections, metrics.PublishLatency,
		metrics.StoreLatency, metrics.Connects, metrics.ConnectsRefused, metrics.Frames,
		metrics.FrameErrors, metrics.Disconnects)
	add("metric unit", ops, string(metrics.Count), string(metrics.Milliseconds))
	add("metric dimension", ops, metrics.DimensionFunction, metrics.DimensionReason, metrics.DimensionAction)
	add("metric dimension value", ops, metrics.ReasonOrigin, metrics.ReasonToken, metrics.ReasonRevoked,
		metrics.ReasonStorage, metrics.ActionInvalid, notify.ActionPing, notify.ActionSync, notify.ActionRead)
	add("metrics namespace", ops, metrics.DefaultNamespace, app.EnvMetricsNamespace)
	add("local stack environment variable", local, devstack.EnvAddr, devstack.EnvDynamoDBEndpoint)

	for _, name := range slices.Sorted(maps.Keys(want)) {
		for _, s := range want[name] {
			if !slices.ContainsFunc(s.sections, func(sec string) bool { return mentions(sections[sec], name) }) {
				t.Errorf("%s %q: not in code in docs/PROTOCOL.md §%s", s.what, name, strings.Join(s.sections, " or §"))
			}
		}
	}
}

// protocolSections splits the document by its "## N. Title" headings.
func protocolSections(doc string) map[string]string {
	out := map[string]string{}
	for _, part := range strings.Split(doc, "\n## ")[1:] {
		if num, _, ok := strings.Cut(part, ". "); ok {
			out[num] = part
		}
	}
	return out
}

var (
	fenced     = regexp.MustCompile("(?s)```[a-z]*\n(.*?)```")
	inlineCode = regexp.MustCompile("`([^`\n]+)`")
)

// mentions reports whether name appears as a whole word in code (a fenced block or an inline
// code span) of text.
func mentions(text, name string) bool {
	word := regexp.MustCompile(`(^|[^A-Za-z0-9_])` + regexp.QuoteMeta(name) + `($|[^A-Za-z0-9_])`)
	for _, m := range fenced.FindAllStringSubmatch(text, -1) {
		if word.MatchString(m[1]) {
			return true
		}
	}
	for _, m := range inlineCode.FindAllStringSubmatch(fenced.ReplaceAllString(text, ""), -1) {
		if word.MatchString(m[1]) {
			return true
		}
	}
	return false
}

func jsonTags(typ reflect.Type) []string {
	var out []string
	for f := range typ.Fields() {
		if name, _, _ := strings.Cut(f.Tag.Get("json"), ","); name != "" && name != "-" {
			out = append(out, name)
		}
	}
	return out
}

// notifySource is internal/notify's production source, parsed.
type notifySource []*ast.File

func parseNotify(t *testing.T) notifySource {
	t.Helper()
	paths, err := filepath.Glob(filepath.Join("..", "notify", "*.go"))
	if err != nil {
		t.Fatal(err)
	}
	var src notifySource
	fset := token.NewFileSet()
	for _, p := range paths {
		if strings.HasSuffix(p, "_test.go") {
			continue
		}
		f, err := parser.ParseFile(fset, p, nil, parser.SkipObjectResolution)
		if err != nil {
			t.Fatal(err)
		}
		src = append(src, f)
	}
	if len(src) == 0 {
		t.Fatal("no source files in ../notify")
	}
	return src
}

func (src notifySource) inspect(fn func(ast.Node) bool) {
	for _, f := range src {
		ast.Inspect(f, fn)
	}
}

func unquote(e ast.Expr) (string, bool) {
	lit, ok := e.(*ast.BasicLit)
	if !ok || lit.Kind != token.STRING {
		return "", false
	}
	s, err := strconv.Unquote(lit.Value)
	return s, err == nil
}

// frameTypes returns the Type of every composite literal of a type named XxxFrame.
func (src notifySource) frameTypes() []string {
	var out []string
	src.inspect(func(n ast.Node) bool {
		lit, ok := n.(*ast.CompositeLit)
		if !ok {
			return true
		}
		if id, ok := lit.Type.(*ast.Ident); !ok || !strings.HasSuffix(id.Name, "Frame") {
			return true
		}
		for _, e := range lit.Elts {
			if kv, ok := e.(*ast.KeyValueExpr); ok {
				if key, _ := kv.Key.(*ast.Ident); key != nil && key.Name == "Type" {
					if s, ok := unquote(kv.Value); ok && !slices.Contains(out, s) {
						out = append(out, s)
					}
				}
			}
		}
		return true
	})
	return out
}

// stringConsts returns the values of the string constants whose names match re.
func (src notifySource) stringConsts(re *regexp.Regexp) []string {
	var out []string
	src.inspect(func(n ast.Node) bool {
		if spec, ok := n.(*ast.ValueSpec); ok {
			for i, id := range spec.Names {
				if i < len(spec.Values) && re.MatchString(id.Name) {
					if s, ok := unquote(spec.Values[i]); ok {
						out = append(out, s)
					}
				}
			}
		}
		return true
	})
	return out
}

// allTagNames returns the names of every json tag in internal/notify, named types or not.
func (src notifySource) allTagNames() []string {
	var out []string
	src.inspect(func(n ast.Node) bool {
		if f, ok := n.(*ast.Field); ok && f.Tag != nil {
			tag, _ := strconv.Unquote(f.Tag.Value)
			name, _, _ := strings.Cut(reflect.StructTag(tag).Get("json"), ",")
			if name != "" && name != "-" && !slices.Contains(out, name) {
				out = append(out, name)
			}
		}
		return true
	})
	return out
}

// taggedTypes returns the struct types that have a field with a json tag.
func (src notifySource) taggedTypes() []string {
	var out []string
	src.inspect(func(n ast.Node) bool {
		spec, ok := n.(*ast.TypeSpec)
		if !ok {
			return true
		}
		if st, ok := spec.Type.(*ast.StructType); ok {
			for _, f := range st.Fields.List {
				if f.Tag != nil && strings.Contains(f.Tag.Value, `json:"`) {
					out = append(out, spec.Name.Name)
					break
				}
			}
		}
		return true
	})
	return out
}

// handWrittenKeys returns the JSON keys spelled in string literals (`,"read":true`).
func (src notifySource) handWrittenKeys() []string {
	key := regexp.MustCompile(`"([A-Za-z]+)":`)
	var out []string
	src.inspect(func(n ast.Node) bool {
		if lit, ok := n.(*ast.BasicLit); ok && lit.Kind == token.STRING {
			s, _ := strconv.Unquote(lit.Value)
			for _, m := range key.FindAllStringSubmatch(s, -1) {
				if !slices.Contains(out, m[1]) {
					out = append(out, m[1])
				}
			}
		}
		return true
	})
	return out
}

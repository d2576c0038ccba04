package samtemplate

import (
	"os"
	"path/filepath"
	"sort"
	"sync"
	"testing"

	"github.com/awslabs/goformation/v7/cloudformation/global"
	"github.com/awslabs/goformation/v7/cloudformation/serverless"
)

// repoRoot walks up from the test's folder to the folder holding go.mod.
func repoRoot(t testing.TB) string {
	t.Helper()
	dir, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			t.Fatal("no go.mod above the test's folder")
		}
		dir = parent
	}
}

var (
	realOnce sync.Once
	realTmpl *Template
	realErr  error
)

// realTemplate loads the repository's template.yaml once.
func realTemplate(t testing.TB) *Template {
	t.Helper()
	root := repoRoot(t)
	realOnce.Do(func() { realTmpl, realErr = Load(filepath.Join(root, "template.yaml")) })
	if realErr != nil {
		t.Fatal(realErr)
	}
	return realTmpl
}

// functionPolicies returns the inline policy documents of fn.
func (t *Template) functionPolicies(fn string) []serverless.Function_IAMPolicyDocument {
	f, ok := t.cfn.GetAllServerlessFunctionResources()[fn]
	if !ok || f.Policies == nil {
		return nil
	}
	if f.Policies.IAMPolicyDocumentArray != nil {
		return *f.Policies.IAMPolicyDocumentArray
	}
	if f.Policies.IAMPolicyDocument != nil {
		return []serverless.Function_IAMPolicyDocument{*f.Policies.IAMPolicyDocument}
	}
	return nil
}

// statement is one decoded IAM policy statement.
type statement struct {
	Effect    string
	Actions   []string
	Resources []Value
}

func (t *Template) statements(tb testing.TB, fn string) []statement {
	tb.Helper()
	var out []statement
	for _, doc := range t.functionPolicies(fn) {
		for _, raw := range doc.Statement {
			m, ok := raw.(map[string]any)
			if !ok {
				tb.Fatalf("%s: statement %v is not an object", fn, raw)
			}
			st := statement{}
			st.Effect, _ = m["Effect"].(string)
			for _, a := range list(m["Action"]) {
				s, ok := a.(string)
				if !ok {
					tb.Fatalf("%s: action %v is not a string", fn, a)
				}
				st.Actions = append(st.Actions, s)
			}
			for _, r := range list(m["Resource"]) {
				v, err := decodeAny(r)
				if err != nil {
					tb.Fatalf("%s: resource %v: %v", fn, r, err)
				}
				st.Resources = append(st.Resources, v)
			}
			out = append(out, st)
		}
	}
	return out
}

// resource returns the untyped resource id (Type, Properties, policies...).
func (t *Template) resource(tb testing.TB, id string) map[string]any {
	tb.Helper()
	resources, _ := t.doc["Resources"].(map[string]any)
	res, ok := resources[id].(map[string]any)
	if !ok {
		tb.Fatalf("no resource %s", id)
	}
	return res
}

// resourcesOfType returns the logical IDs of the resources of type typ.
func (t *Template) resourcesOfType(typ string) []string {
	resources, _ := t.doc["Resources"].(map[string]any)
	var ids []string
	for id, r := range resources {
		if res, _ := r.(map[string]any); res["Type"] == typ {
			ids = append(ids, id)
		}
	}
	sort.Strings(ids)
	return ids
}

func list(x any) []any {
	switch x := x.(type) {
	case nil:
		return nil
	case []any:
		return x
	default:
		return []any{x}
	}
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

// functionBuild is what `sam build` and Lambda take from a function (none of which the local
// stack runs), with Globals applied as SAM applies them: the function's value, else Globals',
// else SAM's default; Architectures are Globals' list followed by the function's own.
type functionBuild struct {
	codeURI, handler, runtime string
	architectures             []string
	memorySize                int
	buildMethod, contextPath  string
}

func (t *Template) functionBuild(tb testing.TB, id string) functionBuild {
	tb.Helper()
	f, ok := t.cfn.GetAllServerlessFunctionResources()[id]
	if !ok {
		tb.Fatalf("no function %s", id)
	}
	g, err := t.cfn.GetServerlessGlobalFunction()
	if err != nil {
		g = &global.Function{}
	}
	b := functionBuild{
		handler:    deref(f.Handler, deref(g.Handler, "")),
		runtime:    deref(f.Runtime, deref(g.Runtime, "")),
		memorySize: derefInt(f.MemorySize, derefInt(g.MemorySize, 128)),
	}
	for _, uri := range []*serverless.Function_CodeUri{g.CodeUri, f.CodeUri} {
		if uri != nil && uri.String == nil {
			tb.Fatalf("%s: CodeUri must be a local path", id)
		} else if uri != nil {
			b.codeURI = *uri.String
		}
	}
	if g.Architectures != nil {
		b.architectures = append(b.architectures, *g.Architectures...)
	}
	b.architectures = append(b.architectures, f.Architectures...)
	b.buildMethod, _ = f.AWSCloudFormationMetadata["BuildMethod"].(string)
	b.contextPath, _ = f.AWSCloudFormationMetadata["ContextPath"].(string)
	return b
}

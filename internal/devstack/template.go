package devstack

import (
	"errors"
	"fmt"
	"io/fs"
	"maps"
	"os"
	"path/filepath"
	"slices"

	"github.com/workorders/notify/internal/app"
	"github.com/workorders/notify/internal/localgw"
	"github.com/workorders/notify/internal/samtemplate"
)

// FindTemplate returns the template to run. A path that is given must
// exist. An empty path looks for template.yaml in the working directory,
// then in each parent folder up to the first one holding go.mod, so that
// `notify local` works from anywhere inside the repository.
func FindTemplate(path string) (string, error) {
	if path != "" {
		if _, err := os.Stat(path); err != nil {
			return "", fmt.Errorf("template %s: %w", path, err)
		}
		return path, nil
	}
	wd, err := os.Getwd()
	if err != nil {
		return "", fmt.Errorf("looking for %s: %w", DefaultTemplate, err)
	}
	for dir := wd; ; {
		candidate := filepath.Join(dir, DefaultTemplate)
		if _, err := os.Stat(candidate); err == nil {
			return candidate, nil
		} else if !errors.Is(err, fs.ErrNotExist) {
			return "", fmt.Errorf("template %s: %w", candidate, err)
		}
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			break
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			break
		}
		dir = parent
	}
	return "", fmt.Errorf("no %s in %s or its parent folders up to the module root: give --template", DefaultTemplate, wd)
}

// devDefaults are the local-only values of the variables a deploy must be
// given (template.yaml has no default for them, on purpose).
var devDefaults = map[string]string{
	app.EnvJWTSecret:      DevSecret,
	app.EnvAllowedOrigins: DevOrigins,
}

// resolver gives the template's parameters and resources their local values.
type resolver struct {
	tmpl   *samtemplate.Template
	env    map[string]string
	params map[string]string // parameter → value
	refs   map[string]string // resource or pseudo parameter → value
	tables map[string]string // table logical ID → table name
}

func newResolver(tmpl *samtemplate.Template, env, overrides map[string]string, region string) (*resolver, error) {
	r := &resolver{
		tmpl: tmpl, env: env,
		params: map[string]string{},
		refs:   map[string]string{"AWS::Region": region},
		tables: map[string]string{},
	}
	for name := range overrides {
		if _, ok := tmpl.Parameters[name]; !ok {
			return nil, fmt.Errorf("%s has no parameter %q (it has %v)", tmpl.Path, name, slices.Sorted(maps.Keys(tmpl.Parameters)))
		}
	}
	if tmpl.API != "" {
		r.refs[tmpl.API] = localgw.APIID
	}
	// A function's name is its logical ID on the local Lambda API.
	for name := range tmpl.Functions {
		r.refs[name] = name
	}

	// Which environment variable each parameter and table feeds: a variable
	// whose value is !Ref of it.
	paramVar, tableVar := map[string]string{}, map[string]string{}
	for _, fname := range slices.Sorted(maps.Keys(tmpl.Functions)) {
		for _, k := range slices.Sorted(maps.Keys(tmpl.Functions[fname].Environment)) {
			v := tmpl.Functions[fname].Environment[k]
			if v.Kind != samtemplate.Ref {
				continue
			}
			if _, ok := tmpl.Parameters[v.Name]; ok {
				if _, seen := paramVar[v.Name]; !seen {
					paramVar[v.Name] = k
				}
			} else if _, ok := tmpl.Tables[v.Name]; ok {
				if _, seen := tableVar[v.Name]; !seen {
					tableVar[v.Name] = k
				}
			}
		}
	}

	for name, p := range tmpl.Parameters {
		if v, ok := overrides[name]; ok {
			r.params[name] = v
			continue
		}
		k := paramVar[name]
		if v, ok := env[k]; ok && k != "" {
			r.params[name] = v
			continue
		}
		if v, ok := devDefaults[k]; ok {
			r.params[name] = v
			continue
		}
		if name == "StageName" {
			r.params[name] = localgw.Stage
			continue
		}
		if p.Default == nil {
			hint := "give it with a parameter override"
			if k != "" {
				hint = "set " + k
			}
			return nil, fmt.Errorf("%s: parameter %s has no default and no local value: %s", tmpl.Path, name, hint)
		}
	}

	for id, t := range tmpl.Tables {
		name := firstNonEmpty(t.TableName, id)
		if k := tableVar[id]; k != "" {
			name = firstNonEmpty(env[k], name)
		}
		r.tables[id] = name
		r.refs[id] = name
	}
	return r, nil
}

// functionEnvs resolves every function's environment. A variable the
// function declares as a literal (or a Sub, a GetAtt) is overridden by the
// environment variable of the same name, except MANAGEMENT_API_ENDPOINT,
// which the stack sets; a !Ref took the environment into account already,
// after Options.Parameters.
func (r *resolver) functionEnvs() (map[string]map[string]string, error) {
	out := make(map[string]map[string]string, len(r.tmpl.Functions))
	for name, fn := range r.tmpl.Functions {
		env, err := r.tmpl.ResolveEnv(name, r.params, r.refs)
		if err != nil {
			return nil, err
		}
		for k, tv := range fn.Environment {
			if v, ok := r.env[k]; ok && tv.Kind != samtemplate.Ref && k != app.EnvManagementEndpoint {
				env[k] = v
			}
		}
		out[name] = env
	}
	return out, nil
}

package samtemplate

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"sort"
	"strconv"
	"strings"
)

// Kind says what a Value is.
type Kind int

const (
	// Literal is a plain string.
	Literal Kind = iota
	// Ref is !Ref Name: a parameter, a resource or a pseudo parameter (AWS::Region).
	Ref
	// GetAtt is !GetAtt Name.Attribute.
	GetAtt
	// Sub is !Sub Format, with optional Vars (the two-element list form).
	Sub
)

// String names the kind, e.g. "Ref".
func (k Kind) String() string {
	switch k {
	case Literal:
		return "Literal"
	case Ref:
		return "Ref"
	case GetAtt:
		return "GetAtt"
	case Sub:
		return "Sub"
	}
	return "Kind(" + strconv.Itoa(int(k)) + ")"
}

// Value is a template value that is a literal or one of the intrinsics the
// local stack can resolve: Ref, GetAtt and Sub. Only the fields of its Kind
// are set.
type Value struct {
	Kind Kind
	// Literal is the string of a Literal.
	Literal string
	// Name is the logical ID (or parameter, or pseudo parameter) of a Ref,
	// or the resource of a GetAtt.
	Name string
	// Attribute is the attribute of a GetAtt ("Arn").
	Attribute string
	// Format is the string of a Sub, with its ${...} placeholders.
	Format string
	// Vars are the explicit variables of a Sub's list form.
	Vars map[string]Value
}

// String renders v the way the template spells it: a quoted literal, or
// !Ref X, !GetAtt X.Y, !Sub "...".
func (v Value) String() string {
	switch v.Kind {
	case Literal:
		return strconv.Quote(v.Literal)
	case Ref:
		return "!Ref " + v.Name
	case GetAtt:
		return "!GetAtt " + v.Name + "." + v.Attribute
	case Sub:
		if len(v.Vars) == 0 {
			return "!Sub " + strconv.Quote(v.Format)
		}
		names := make([]string, 0, len(v.Vars))
		for n := range v.Vars {
			names = append(names, n)
		}
		sort.Strings(names)
		parts := make([]string, len(names))
		for i, n := range names {
			parts[i] = n + ": " + v.Vars[n].String()
		}
		return "!Sub [" + strconv.Quote(v.Format) + ", {" + strings.Join(parts, ", ") + "}]"
	}
	return v.Kind.String()
}

// Refs returns the names v depends on, in order of appearance: a Ref's name,
// "Name.Attribute" for a GetAtt, and every ${...} of a Sub that its Vars do
// not define (with the Vars' own references).
func (v Value) Refs() []string {
	var out []string
	switch v.Kind {
	case Ref:
		out = append(out, v.Name)
	case GetAtt:
		out = append(out, v.Name+"."+v.Attribute)
	case Sub:
		_, _ = substitute(v.Format, func(name string) (string, error) {
			if inner, ok := v.Vars[name]; ok {
				out = append(out, inner.Refs()...)
			} else {
				out = append(out, name)
			}
			return "", nil
		})
	}
	return out
}

// Resolve returns v's value. lookup answers a Ref's name (a parameter, a
// resource logical ID or AWS::Region), a GetAtt's "Name.Attribute", and each
// ${...} of a Sub that Vars does not define, by the same rules.
func (v Value) Resolve(lookup func(name string) (string, error)) (string, error) {
	switch v.Kind {
	case Literal:
		return v.Literal, nil
	case Ref:
		return lookup(v.Name)
	case GetAtt:
		return lookup(v.Name + "." + v.Attribute)
	case Sub:
		return substitute(v.Format, func(name string) (string, error) {
			if inner, ok := v.Vars[name]; ok {
				return inner.Resolve(lookup)
			}
			return lookup(name)
		})
	}
	return "", fmt.Errorf("cannot resolve a value of kind %v", v.Kind)
}

// substitute replaces each ${Name} of format with lookup(Name). ${!Text} is
// the escape for a literal ${Text}, as in CloudFormation.
func substitute(format string, lookup func(name string) (string, error)) (string, error) {
	var b strings.Builder
	rest := format
	for {
		i := strings.Index(rest, "${")
		if i < 0 {
			b.WriteString(rest)
			return b.String(), nil
		}
		b.WriteString(rest[:i])
		rest = rest[i+2:]
		j := strings.IndexByte(rest, '}')
		if j < 0 {
			return "", fmt.Errorf("Sub %q: unterminated ${", format)
		}
		name := rest[:j]
		rest = rest[j+1:]
		if strings.HasPrefix(name, "!") {
			b.WriteString("${" + name[1:] + "}")
			continue
		}
		name = strings.TrimSpace(name)
		if name == "" {
			return "", fmt.Errorf("Sub %q: empty ${}", format)
		}
		s, err := lookup(name)
		if err != nil {
			return "", err
		}
		b.WriteString(s)
	}
}

// decodeValue turns a field of goformation's typed template back into a
// Value. Parsed with cloudformation.EncoderIntrinsics, goformation leaves an
// intrinsic in a string field as base64 of its JSON ({"Ref":"X"}); anything
// else is a literal.
func decodeValue(s string) (Value, error) {
	obj, ok := encodedIntrinsic(s)
	if !ok {
		return Value{Kind: Literal, Literal: s}, nil
	}
	return intrinsicValue(obj)
}

// decodeAny is decodeValue for untyped fields (interface{}), which hold
// strings, numbers, booleans or long-form intrinsic objects.
func decodeAny(x any) (Value, error) {
	switch x := x.(type) {
	case string:
		return decodeValue(x)
	case float64:
		return Value{Kind: Literal, Literal: strconv.FormatFloat(x, 'f', -1, 64)}, nil
	case bool:
		return Value{Kind: Literal, Literal: strconv.FormatBool(x)}, nil
	case map[string]any:
		if len(x) == 1 {
			return intrinsicValue(x)
		}
	}
	return Value{}, fmt.Errorf("unsupported value %v (%T)", x, x)
}

// encodedIntrinsic reports whether s is goformation's base64 encoding of an
// intrinsic function object, and returns the object.
func encodedIntrinsic(s string) (map[string]any, bool) {
	if len(s) < 8 || len(s)%4 != 0 {
		return nil, false
	}
	raw, err := base64.StdEncoding.DecodeString(s)
	if err != nil {
		return nil, false
	}
	var obj map[string]any
	if err := json.Unmarshal(raw, &obj); err != nil || len(obj) != 1 {
		return nil, false
	}
	for k := range obj {
		if k != "Ref" && !strings.HasPrefix(k, "Fn::") {
			return nil, false
		}
	}
	return obj, true
}

func intrinsicValue(obj map[string]any) (Value, error) {
	for fn, arg := range obj {
		switch fn {
		case "Ref":
			if name, ok := arg.(string); ok && name != "" {
				return Value{Kind: Ref, Name: name}, nil
			}
		case "Fn::GetAtt":
			switch a := arg.(type) {
			case string:
				if name, attr, ok := strings.Cut(a, "."); ok {
					return Value{Kind: GetAtt, Name: name, Attribute: attr}, nil
				}
			case []any:
				if len(a) == 2 {
					name, ok1 := a[0].(string)
					attr, ok2 := a[1].(string)
					if ok1 && ok2 {
						return Value{Kind: GetAtt, Name: name, Attribute: attr}, nil
					}
				}
			}
		case "Fn::Sub":
			switch a := arg.(type) {
			case string:
				return Value{Kind: Sub, Format: a}, nil
			case []any:
				if len(a) != 2 {
					break
				}
				format, ok1 := a[0].(string)
				vars, ok2 := a[1].(map[string]any)
				if !ok1 || !ok2 {
					break
				}
				v := Value{Kind: Sub, Format: format, Vars: make(map[string]Value, len(vars))}
				for name, x := range vars {
					inner, err := decodeAny(x)
					if err != nil {
						return Value{}, fmt.Errorf("Sub variable %s: %w", name, err)
					}
					v.Vars[name] = inner
				}
				return v, nil
			}
		default:
			return Value{}, fmt.Errorf("unsupported intrinsic %s (only Ref, Fn::GetAtt and Fn::Sub can be resolved locally)", fn)
		}
		return Value{}, fmt.Errorf("malformed %s: %v", fn, arg)
	}
	return Value{}, fmt.Errorf("empty intrinsic")
}

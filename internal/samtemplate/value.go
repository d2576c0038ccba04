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
	// Sub is !Sub Format, with optional variables (the two-element list form).
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
// are set; String spells it as the template does.
type Value struct {
	Kind Kind
	// Name is the logical ID (or parameter, or pseudo parameter) of a Ref,
	// or the resource of a GetAtt.
	Name string

	literal   string           // a Literal's string
	attribute string           // a GetAtt's attribute ("Arn")
	format    string           // a Sub's string, with its ${...} placeholders
	vars      map[string]Value // the explicit variables of a Sub's list form
}

// String renders v the way the template spells it: a quoted literal, or
// !Ref X, !GetAtt X.Y, !Sub "...".
func (v Value) String() string {
	switch v.Kind {
	case Literal:
		return strconv.Quote(v.literal)
	case Ref:
		return "!Ref " + v.Name
	case GetAtt:
		return "!GetAtt " + v.Name + "." + v.attribute
	case Sub:
		if len(v.vars) == 0 {
			return "!Sub " + strconv.Quote(v.format)
		}
		names := make([]string, 0, len(v.vars))
		for n := range v.vars {
			names = append(names, n)
		}
		sort.Strings(names)
		parts := make([]string, len(names))
		for i, n := range names {
			parts[i] = n + ": " + v.vars[n].String()
		}
		return "!Sub [" + strconv.Quote(v.format) + ", {" + strings.Join(parts, ", ") + "}]"
	}
	return v.Kind.String()
}

// resolve returns v's value. lookup answers a Ref's name (a parameter, a
// resource logical ID or AWS::Region), a GetAtt's "Name.Attribute", and each
// ${...} of a Sub that its variables do not define, by the same rules.
func (v Value) resolve(lookup func(name string) (string, error)) (string, error) {
	switch v.Kind {
	case Literal:
		return v.literal, nil
	case Ref:
		return lookup(v.Name)
	case GetAtt:
		return lookup(v.Name + "." + v.attribute)
	case Sub:
		return substitute(v.format, func(name string) (string, error) {
			if inner, ok := v.vars[name]; ok {
				return inner.resolve(lookup)
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
		return Value{Kind: Literal, literal: s}, nil
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
		return Value{Kind: Literal, literal: strconv.FormatFloat(x, 'f', -1, 64)}, nil
	case bool:
		return Value{Kind: Literal, literal: strconv.FormatBool(x)}, nil
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
					return Value{Kind: GetAtt, Name: name, attribute: attr}, nil
				}
			case []any:
				if len(a) == 2 {
					name, ok1 := a[0].(string)
					attr, ok2 := a[1].(string)
					if ok1 && ok2 {
						return Value{Kind: GetAtt, Name: name, attribute: attr}, nil
					}
				}
			}
		case "Fn::Sub":
			switch a := arg.(type) {
			case string:
				return Value{Kind: Sub, format: a}, nil
			case []any:
				if len(a) != 2 {
					break
				}
				format, ok1 := a[0].(string)
				vars, ok2 := a[1].(map[string]any)
				if !ok1 || !ok2 {
					break
				}
				v := Value{Kind: Sub, format: format, vars: make(map[string]Value, len(vars))}
				for name, x := range vars {
					inner, err := decodeAny(x)
					if err != nil {
						return Value{}, fmt.Errorf("Sub variable %s: %w", name, err)
					}
					v.vars[name] = inner
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

package notify

import (
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/go-json-experiment/json"
	"github.com/go-json-experiment/json/jsontext"
)

// Every wire format (client frames, publish and disconnect requests) is
// unmarshaled into typed structs by encoding/json/v2 semantics, strictly:
// names are case-sensitive, a key repeated anywhere is refused (encoding/json
// would keep the last, so that {"broadcast":false,"broadcast":true} would be
// a broadcast), and so is a value of the wrong type. Invalid UTF-8 is
// accepted, mangled to U+FFFD as encoding/json always did.
var (
	// frameOptions decode a client frame, whose unknown fields are ignored.
	frameOptions = json.JoinOptions(jsontext.AllowDuplicateNames(false), jsontext.AllowInvalidUTF8(true))
	// requestOptions decode a publish or disconnect request, whose unknown
	// fields are refused: a typo such as "user" must not quietly send nothing.
	requestOptions = json.JoinOptions(frameOptions, json.RejectUnknownMembers(true))
)

// wireTypes says what each field must be, by its path from the top of the
// frame or request, for the message that refuses a value of another type.
var wireTypes = map[string]string{
	"action": "a string", "ref": "a string",
	"after": "a string (a notification id)", "cursor": "a string (a notification id)",
	"limit": fmt.Sprintf("an integer from 1 to %d", MaxSyncLimit),
	"ids":   "an array of notification ids", "all": "a boolean",
	"users": "an array of strings", "groups": "an array of strings",
	"broadcast": "a boolean", "idempotencyKey": "a string",
	"notification": "a JSON object", "notification.type": "a string",
	"notification.title": "a string", "notification.body": "a string",
	"disconnect": "a JSON object", "disconnect.reason": "a string",
}

// allowedFields lists the fields of each object whose unknown fields are
// refused, by what is decoded ("request", "fan-out batch") and the object's
// JSON pointer.
var allowedFields = map[string]map[jsontext.Pointer]string{
	"request": {
		"":              "users, groups, broadcast, idempotencyKey, notification, disconnect",
		"/notification": "type, title, body, data",
		"/disconnect":   "reason",
	},
	batchWhat: {
		"":               "frame, connections, postsPerSecond, deadline",
		"/connections/*": "id, userId, connectedAt, tokenExpiresAt",
	},
}

// allowedIn returns the fields allowed in the object at p of what: an
// array's elements share one entry, "*".
func allowedIn(what string, p jsontext.Pointer) string {
	if v, ok := allowedFields[what][p]; ok {
		return v
	}
	if parent := p.Parent(); parent != "" {
		return allowedFields[what][parent+"/*"]
	}
	return ""
}

// decodeObject unmarshals the JSON object in into a new T. Any error is
// EINVALID and names the field at fault; what names the whole text
// ("frame", "request").
func decodeObject[T any](in []byte, what string, opts json.Options) (*T, error) {
	var v *T // stays nil for null, which is no object either
	if err := json.Unmarshal(in, &v, opts); err != nil {
		return nil, invalidJSON(err, what)
	}
	if v == nil {
		return nil, invalidf("%s: must be a JSON object", what)
	}
	return v, nil
}

// invalidJSON turns an error of json.Unmarshal into an EINVALID error whose
// message names the field at fault by its path ("notification.type").
func invalidJSON(err error, what string) error {
	var syntax *jsontext.SyntacticError
	var semantic *json.SemanticError
	switch {
	case errors.As(err, &syntax) && errors.Is(syntax.Err, jsontext.ErrDuplicateName):
		p := syntax.JSONPointer
		return invalidf("%s: repeated key %q (each key may appear once)", dotted(p.Parent(), what), p.LastToken())
	case errors.As(err, &syntax):
		return invalidf("%s: not JSON: %s", what, strings.TrimPrefix(syntax.Error(), "jsontext: "))
	case errors.As(err, &semantic) && errors.Is(semantic.Err, json.ErrUnknownName):
		p := semantic.JSONPointer
		return invalidf("%s: unknown field %q (allowed: %s)", dotted(p.Parent(), what), p.LastToken(), allowedIn(what, p.Parent()))
	case errors.As(err, &semantic) && semantic.JSONPointer == "":
		return invalidf("%s: must be a JSON object", what)
	case errors.As(err, &semantic):
		// Named by its deepest field of a known type: "users" for /users/3.
		field, want, path := dotted(semantic.JSONPointer, what), "a value of another type", ""
		for token := range semantic.JSONPointer.Tokens() {
			path = strings.TrimPrefix(path+"."+token, ".")
			if w, ok := wireTypes[path]; ok {
				field, want = path, w
			}
		}
		return invalidf("%s: must be %s", field, want)
	}
	return invalidf("%s: %v", what, err)
}

// dotted writes a JSON pointer as a path of dotted names, or top for the
// top level.
func dotted(p jsontext.Pointer, top string) string {
	if p == "" {
		return top
	}
	return strings.Join(slices.Collect(p.Tokens()), ".")
}

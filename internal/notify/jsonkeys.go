package notify

import (
	"bytes"
	"errors"
	"strings"

	"github.com/go-json-experiment/json/jsontext"
)

// checkRepeatedKeys refuses a JSON text in which an object repeats a key:
// encoding/json would silently keep the last value, so that
// {"broadcast":false,"broadcast":true} would be a broadcast. what names the
// text in the message ("frame", "request"). Other syntax errors are left to
// the decoder that follows, which reports them its own way.
func checkRepeatedKeys(body []byte, what string) error {
	_, err := jsontext.NewDecoder(bytes.NewReader(body), jsontext.AllowInvalidUTF8(true)).ReadValue()
	var serr *jsontext.SyntacticError
	if err == nil || !errors.As(err, &serr) || !errors.Is(serr.Err, jsontext.ErrDuplicateName) {
		return nil
	}
	ptr := serr.JSONPointer
	name := ptr.LastToken()
	where := what
	if parent := string(ptr.Parent()); parent != "" {
		where = strings.ReplaceAll(strings.TrimPrefix(parent, "/"), "/", ".")
	}
	return invalidf("%s: repeated key %q (each key may appear once)", where, name)
}

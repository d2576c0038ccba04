package notify

import (
	"bytes"
	"encoding/json"
)

// EncodeJSON marshals v the way every frame is sent: like json.Marshal but
// without HTML escaping, so that `<`, `>` and `&` stay one byte each. With
// json.Marshal's escaping a notification under the 120 KiB limit could grow
// past API Gateway's 128 KiB frame (each of those characters becomes six
// bytes) and never be delivered.
func EncodeJSON(v any) ([]byte, error) {
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return nil, err
	}
	return bytes.TrimSuffix(b.Bytes(), []byte("\n")), nil
}

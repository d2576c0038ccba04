package notify_test

import (
	"encoding/json"
	"reflect"
	"strings"
	"testing"

	jsonv2 "github.com/go-json-experiment/json"
	"github.com/workorders/notify/internal/notify"
)

const someID = "01JD3Y5W8X2K7Q9R4T6V8B0C2D"

func TestDecodeClientFrame(t *testing.T) {
	f, err := notify.DecodeClientFrame([]byte(`{"action":"ping","ref":"r1","extra":true}`))
	if err != nil || f.Action != notify.ActionPing || f.Ref != "r1" {
		t.Fatalf("ping: %+v, %v", f, err)
	}
	f, err = notify.DecodeClientFrame([]byte(`{"action":"sync"}`))
	if err != nil || f.Sync.Limit != notify.DefaultSyncLimit || f.Sync.After != "" {
		t.Fatalf("plain sync: %+v, %v", f, err)
	}
	f, err = notify.DecodeClientFrame([]byte(`{"action":"sync","after":"` + someID + `","limit":100}`))
	if err != nil || f.Sync.After != someID || f.Sync.Limit != 100 {
		t.Fatalf("sync after: %+v, %v", f, err)
	}
	f, err = notify.DecodeClientFrame([]byte(`{"action":"sync","after":"","cursor":"` + someID + `"}`))
	if err != nil || f.Sync.Cursor != someID {
		t.Fatalf(`after "" with cursor: %+v, %v`, f, err)
	}
	f, err = notify.DecodeClientFrame([]byte(`{"action":"read","ids":["` + someID + `"]}`))
	if err != nil || len(f.Read.IDs) != 1 || f.Read.All {
		t.Fatalf("read ids: %+v, %v", f, err)
	}
	f, err = notify.DecodeClientFrame([]byte(`{"action":"read","all":true}`))
	if err != nil || !f.Read.All {
		t.Fatalf("read all: %+v, %v", f, err)
	}
	// null is absent; the fields of other actions are ignored, as unknown
	// fields are.
	f, err = notify.DecodeClientFrame([]byte(`{"action":"sync","limit":null,"after":null,"ids":5,"all":"x","ref":null}`))
	if err != nil || f.Sync != (notify.SyncRequest{Limit: notify.DefaultSyncLimit}) || f.Ref != "" {
		t.Fatalf("sync with nulls: %+v, %v", f, err)
	}
	f, err = notify.DecodeClientFrame([]byte(`{"action":"read","ids":null,"all":true,"limit":"x"}`))
	if err != nil || !f.Read.All || f.Read.IDs != nil {
		t.Fatalf("read with nulls: %+v, %v", f, err)
	}
	if _, err := notify.DecodeClientFrame([]byte(`{"action":"ping","limit":0,"ids":[]}`)); err != nil {
		t.Fatalf("ping with other actions' fields: %v", err)
	}
}

func TestDecodeClientFrameRefuses(t *testing.T) {
	ids101 := `"` + strings.Repeat(someID+`","`, 100) + someID + `"`
	cases := []struct {
		name, body, code, wantInMessage, wantRef string
	}{
		{"not JSON", `hello`, notify.EINVALID, "not JSON", ""},
		{"not an object", `[1]`, notify.EINVALID, "JSON object", ""},
		{"string", `"ping"`, notify.EINVALID, "JSON object", ""},
		{"no action", `{"ref":"r"}`, notify.EINVALID, "action: required", "r"},
		{"action number", `{"action":1,"ref":"r"}`, notify.EINVALID, "action: must be a string", "r"},
		{"ref number", `{"action":"ping","ref":5}`, notify.EINVALID, "ref: must be a string", ""},
		{"ref too long", `{"action":"ping","ref":"` + strings.Repeat("r", 65) + `"}`, notify.EINVALID, "ref: at most 64", ""},
		{"unknown action", `{"action":"dance","ref":"r"}`, notify.EUNKNOWNACTION, `"dance"`, "r"},
		{"limit 500", `{"action":"sync","limit":500}`, notify.EINVALID, "limit", ""},
		{"limit 0", `{"action":"sync","limit":0}`, notify.EINVALID, "limit", ""},
		{"limit fraction", `{"action":"sync","limit":1.5}`, notify.EINVALID, "limit", ""},
		{"limit string", `{"action":"sync","limit":"5"}`, notify.EINVALID, "limit", ""},
		{"limit exponent", `{"action":"sync","limit":1e1}`, notify.EINVALID, "limit: must be an integer", ""},
		{"null", `null`, notify.EINVALID, "frame: must be a JSON object", ""},
		{"truncated", `{"action":"ping","ref":"r"`, notify.EINVALID, "not JSON", ""},
		{"empty action", `{"action":"","ref":"r"}`, notify.EUNKNOWNACTION, `unknown action ""`, "r"},
		{"ids number", `{"action":"read","ids":["` + someID + `",5],"ref":"r"}`, notify.EINVALID, "ids: must be an array", "r"},
		{"after not ulid", `{"action":"sync","after":"abc"}`, notify.EINVALID, "after", ""},
		{"after number", `{"action":"sync","after":5}`, notify.EINVALID, "after", ""},
		{"cursor not ulid", `{"action":"sync","cursor":"zzz"}`, notify.EINVALID, "cursor", ""},
		{"after and cursor", `{"action":"sync","after":"` + someID + `","cursor":"` + someID + `"}`, notify.EINVALID, "after and cursor", ""},
		{"read neither", `{"action":"read"}`, notify.EINVALID, "ids or all", ""},
		{"read both", `{"action":"read","ids":["` + someID + `"],"all":true}`, notify.EINVALID, "ids and all", ""},
		{"read empty ids", `{"action":"read","ids":[]}`, notify.EINVALID, "ids", ""},
		{"read 101 ids", `{"action":"read","ids":[` + ids101 + `]}`, notify.EINVALID, "ids", ""},
		{"read bad id", `{"action":"read","ids":["nope"]}`, notify.EINVALID, "ids[0]", ""},
		{"read all string", `{"action":"read","all":"yes"}`, notify.EINVALID, "all: must be a boolean", ""},
		{"repeated action", `{"action":"ping","action":"sync","ref":"r"}`, notify.EINVALID, `repeated key "action"`, "r"},
		{"repeated limit", `{"action":"sync","limit":5,"limit":500}`, notify.EINVALID, `repeated key "limit"`, ""},
		{"repeated nested", `{"action":"ping","x":{"a":1,"a":2}}`, notify.EINVALID, `x: repeated key "a"`, ""},
		{"repeated escaped", `{"action":"ping","\u0061ll":true,"all":false}`, notify.EINVALID, `repeated key "all"`, ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			f, err := notify.DecodeClientFrame([]byte(tc.body))
			if err == nil {
				t.Fatalf("accepted %s", truncate(tc.body))
			}
			if got := notify.ErrorCode(err); got != tc.code {
				t.Errorf("code = %q, want %q", got, tc.code)
			}
			if !strings.Contains(notify.ErrorMessage(err), tc.wantInMessage) {
				t.Errorf("message %q does not name %q", notify.ErrorMessage(err), tc.wantInMessage)
			}
			if f.Ref != tc.wantRef {
				t.Errorf("ref = %q, want %q", f.Ref, tc.wantRef)
			}
		})
	}
}

func TestNewErrorFrame(t *testing.T) {
	cases := []struct {
		err  error
		want string
	}{
		{notify.Errorf(notify.EINVALID, "limit: bad"), `{"type":"error","code":"bad_request","message":"limit: bad","ref":"r"}`},
		{notify.Errorf(notify.EUNKNOWNACTION, "unknown action \"x\""), `{"type":"error","code":"unknown_action","message":"unknown action \"x\"","ref":"r"}`},
		{notify.Wrap(notify.EINTERNAL, errSecret, "store"), `{"type":"error","code":"internal","message":"internal error","ref":"r"}`},
	}
	for _, tc := range cases {
		b, _ := json.Marshal(notify.NewErrorFrame(tc.err, "r"))
		if string(b) != tc.want {
			t.Errorf("frame = %s, want %s", b, tc.want)
		}
	}
}

var errSecret = jsonError("table arn:aws:dynamodb:secret")

type jsonError string

func (e jsonError) Error() string { return string(e) }

func FuzzDecodeClientFrame(f *testing.F) {
	f.Add([]byte(`{"action":"ping","ref":"r1"}`))
	f.Add([]byte(`{"action":"sync","after":"` + someID + `","limit":10}`))
	f.Add([]byte(`{"action":"read","ids":["` + someID + `"]}`))
	f.Add([]byte(`{"action":"read","all":true}`))
	f.Add([]byte(`not json`))
	f.Fuzz(func(t *testing.T, body []byte) {
		fr, err := notify.DecodeClientFrame(body)
		if len(fr.Ref) > 4*notify.MaxRefLength {
			t.Fatalf("ref longer than allowed: %d bytes", len(fr.Ref))
		}
		if err != nil {
			code := notify.ErrorCode(err)
			if code != notify.EINVALID && code != notify.EUNKNOWNACTION {
				t.Fatalf("unexpected code %q", code)
			}
			frame := notify.NewErrorFrame(err, fr.Ref)
			if frame.Message == "" {
				t.Fatal("error frame without a message")
			}
			return
		}
		switch fr.Action {
		case notify.ActionPing:
		case notify.ActionSync:
			if fr.Sync.Limit < 1 || fr.Sync.Limit > notify.MaxSyncLimit || (fr.Sync.After != "" && fr.Sync.Cursor != "") {
				t.Fatalf("accepted out-of-range sync %+v", fr.Sync)
			}
		case notify.ActionRead:
			if fr.Read.All == (len(fr.Read.IDs) > 0) {
				t.Fatalf("accepted read with neither or both: %+v", fr.Read)
			}
		default:
			t.Fatalf("accepted unknown action %q", fr.Action)
		}
		// Re-encoded from its type, the frame decodes to itself.
		encoded, err := jsonv2.Marshal(fr)
		if err != nil {
			t.Fatal(err)
		}
		again, err := notify.DecodeClientFrame(encoded)
		if err != nil || !reflect.DeepEqual(again, fr) {
			t.Fatalf("%+v re-encoded as %s decodes to %+v, %v", fr, encoded, again, err)
		}
	})
}

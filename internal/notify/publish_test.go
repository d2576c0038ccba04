package notify_test

import (
	"reflect"
	"strings"
	"testing"

	"github.com/workorders/notify/internal/notify"
)

func TestDecodePublishRequestAccepts(t *testing.T) {
	req, err := notify.DecodePublishRequest([]byte(`{"users":["42","43"],"groups":["team:plant-3"],"broadcast":false,
		"idempotencyKey":"wo-1042-assigned-v1",
		"notification":{"type":"workorder.assigned","title":"WO-1042 assigned to you","body":"Pump P-7 leaking","data":{ "workOrderId" : "WO-1042" }}}`))
	if err != nil {
		t.Fatalf("valid request refused: %v", err)
	}
	if got := strings.Join(req.Users, ","); got != "42,43" {
		t.Errorf("users = %q", got)
	}
	if len(req.Groups) != 1 || req.Groups[0] != "team:plant-3" || req.Broadcast {
		t.Errorf("groups/broadcast = %v/%v", req.Groups, req.Broadcast)
	}
	if req.IdempotencyKey != "wo-1042-assigned-v1" {
		t.Errorf("idempotencyKey = %q", req.IdempotencyKey)
	}
	n := req.Notification
	if n.Type != "workorder.assigned" || n.Title != "WO-1042 assigned to you" || n.Body != "Pump P-7 leaking" {
		t.Errorf("notification = %+v", n)
	}
	if string(n.Data) != `{"workOrderId":"WO-1042"}` {
		t.Errorf("data = %s, want compacted object", n.Data)
	}

	for _, body := range []string{
		`{"broadcast":true,"notification":{"type":"t"}}`,
		`{"groups":["g"],"notification":{"type":"t","data":null}}`,
		`{"groups":["g"],"idempotencyKey":null,"notification":{"type":"t","title":null,"body":null}}`,
		`{"users":["` + strings.Repeat("a", 128) + `"],"notification":{"type":"` + strings.Repeat("x", 100) + `"}}`,
		`{"users":["42"],"notification":{"type":"t","title":"` + strings.Repeat("é", 200) + `"}}`,
	} {
		if _, err := notify.DecodePublishRequest([]byte(body)); err != nil {
			t.Errorf("valid request %s refused: %v", body, err)
		}
	}
}

func TestDecodePublishRequestRefuses(t *testing.T) {
	big := strings.Repeat("x", 120*1024)
	manyUsers := `"` + strings.Repeat(`u",  "`, 1000) + `u"`
	manyGroups := `"` + strings.Repeat(`g",  "`, 100) + `g"`
	cases := []struct {
		name, body, wantInMessage string
	}{
		{"not an object", `[1,2]`, "request: must be a JSON object"},
		{"null", `null`, "request: must be a JSON object"},
		{"no target", `{"notification":{"type":"t"}}`, "no target"},
		{"empty users alone", `{"users":[],"notification":{"type":"t"}}`, "no target"},
		{"broadcast false alone", `{"broadcast":false,"notification":{"type":"t"}}`, "no target"},
		{"typo user", `{"user":["42"],"notification":{"type":"t"}}`, `unknown field "user"`},
		{"case-sensitive Users", `{"Users":["42"],"notification":{"type":"t"}}`, `unknown field "Users"`},
		{"unknown notification field", `{"users":["42"],"notification":{"type":"t","titel":"x"}}`, `notification: unknown field "titel"`},
		{"no notification", `{"users":["42"]}`, "notification: required"},
		{"notification not object", `{"users":["42"],"notification":"hi"}`, "notification: must be a JSON object"},
		{"no type", `{"users":["42"],"notification":{"title":"x"}}`, "notification.type: required"},
		{"empty type", `{"users":["42"],"notification":{"type":""}}`, "notification.type: must be 1-100"},
		{"type too long", `{"users":["42"],"notification":{"type":"` + strings.Repeat("x", 101) + `"}}`, "notification.type: must be 1-100"},
		{"type not string", `{"users":["42"],"notification":{"type":7}}`, "notification.type: must be a string"},
		{"title too long", `{"users":["42"],"notification":{"type":"t","title":"` + strings.Repeat("x", 201) + `"}}`, "notification.title: at most 200"},
		{"body too long", `{"users":["42"],"notification":{"type":"t","body":"` + strings.Repeat("x", 2001) + `"}}`, "notification.body: at most 2000"},
		{"data array", `{"users":["42"],"notification":{"type":"t","data":[1]}}`, "notification.data: must be a JSON object"},
		{"data string", `{"users":["42"],"notification":{"type":"t","data":"x"}}`, "notification.data: must be a JSON object"},
		{"too big", `{"users":["42"],"notification":{"type":"t","data":{"x":"` + big + `"}}}`, "notification: "},
		{"users not array", `{"users":"42","notification":{"type":"t"}}`, "users: must be an array of strings"},
		{"users numbers", `{"users":[42],"notification":{"type":"t"}}`, "users: must be an array of strings"},
		{"bad user id", `{"users":["a b"],"notification":{"type":"t"}}`, `users[0]: "a b" is not a valid user id`},
		{"user id too long", `{"users":["` + strings.Repeat("a", 129) + `"],"notification":{"type":"t"}}`, "users[0]"},
		{"too many users", `{"users":[` + manyUsers + `],"notification":{"type":"t"}}`, "users: at most 1000"},
		{"too many groups", `{"groups":[` + manyGroups + `],"notification":{"type":"t"}}`, "groups: at most 100"},
		{"bad group", `{"groups":["team plant"],"notification":{"type":"t"}}`, `groups[0]: "team plant" is not a valid group name`},
		{"broadcast string", `{"broadcast":"yes","notification":{"type":"t"}}`, "broadcast: must be a boolean"},
		{"empty idempotencyKey", `{"users":["42"],"idempotencyKey":"","notification":{"type":"t"}}`, "idempotencyKey: must be 1-128"},
		{"long idempotencyKey", `{"users":["42"],"idempotencyKey":"` + strings.Repeat("k", 129) + `","notification":{"type":"t"}}`, "idempotencyKey: must be 1-128"},
		{"idempotencyKey number", `{"users":["42"],"idempotencyKey":5,"notification":{"type":"t"}}`, "idempotencyKey: must be a string"},
		{"not JSON", `{"users":["42"]`, "request: not JSON"},
		{"type null", `{"users":["42"],"notification":{"type":null}}`, "notification.type: required"},
		{"title number", `{"users":["42"],"notification":{"type":"t","title":5}}`, "notification.title: must be a string"},
		{"group number", `{"groups":["g",5],"notification":{"type":"t"}}`, "groups: must be an array of strings"},
		{"empty notification with disconnect", `{"users":["42"],"notification":{},"disconnect":{}}`, "notification and disconnect: give one"},
		{"repeated broadcast", `{"broadcast":false,"broadcast":true,"notification":{"type":"t"}}`, `request: repeated key "broadcast"`},
		{"repeated users", `{"users":["42"],"users":["7"],"notification":{"type":"t"}}`, `repeated key "users"`},
		{"repeated in notification", `{"users":["42"],"notification":{"type":"t","type":"u"}}`, `notification: repeated key "type"`},
		{"repeated in data", `{"users":["42"],"notification":{"type":"t","data":{"wo":{"id":1,"id":2}}}}`, `notification.data.wo: repeated key "id"`},
		{"repeated in disconnect", `{"users":["42"],"disconnect":{"reason":"a","reason":"b"}}`, `disconnect: repeated key "reason"`},
		{"notification and disconnect", `{"users":["42"],"notification":{"type":"t"},"disconnect":{}}`, "notification and disconnect: give one"},
		{"disconnect with key", `{"users":["42"],"idempotencyKey":"k","disconnect":{}}`, "idempotencyKey: not accepted with disconnect"},
		{"disconnect not object", `{"users":["42"],"disconnect":true}`, "disconnect: must be a JSON object"},
		{"disconnect unknown field", `{"users":["42"],"disconnect":{"reason":"x","code":"y"}}`, `disconnect: unknown field "code"`},
		{"disconnect reason number", `{"users":["42"],"disconnect":{"reason":5}}`, "disconnect.reason: must be a string"},
		{"disconnect reason too long", `{"users":["42"],"disconnect":{"reason":"` + strings.Repeat("r", 201) + `"}}`, "disconnect.reason: at most 200"},
		{"disconnect no target", `{"disconnect":{}}`, "no target"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := notify.DecodePublishRequest([]byte(tc.body))
			if err == nil {
				t.Fatalf("accepted %s", truncate(tc.body))
			}
			if notify.ErrorCode(err) != notify.EINVALID {
				t.Errorf("code = %q, want %q", notify.ErrorCode(err), notify.EINVALID)
			}
			if !strings.Contains(notify.ErrorMessage(err), tc.wantInMessage) {
				t.Errorf("message %q does not contain %q", notify.ErrorMessage(err), tc.wantInMessage)
			}
		})
	}
}

func TestDecodeDisconnectRequest(t *testing.T) {
	for body, want := range map[string]notify.DisconnectInput{
		`{"users":["42"],"disconnect":{"reason":"signed out"}}`:           {Reason: "signed out"},
		`{"groups":["team:plant-3"],"disconnect":{}}`:                     {},
		`{"broadcast":true,"disconnect":{"reason":null}}`:                 {},
		`{"users":["42"],"notification":null,"disconnect":{"reason":""}}`: {},
	} {
		req, err := notify.DecodePublishRequest([]byte(body))
		if err != nil || req.Disconnect == nil || *req.Disconnect != want {
			t.Errorf("%s → %+v, %v; want disconnect %+v", body, req.Disconnect, err, want)
		}
	}
	if req, _ := notify.DecodePublishRequest([]byte(`{"users":["42"],"notification":{"type":"t"}}`)); req.Disconnect != nil {
		t.Error("a publish decoded as a disconnect request")
	}
}

func truncate(s string) string {
	if len(s) > 120 {
		return s[:120] + "..."
	}
	return s
}

func FuzzDecodePublishRequest(f *testing.F) {
	f.Add([]byte(`{"users":["42"],"notification":{"type":"workorder.assigned","title":"t","body":"b","data":{"a":1}}}`))
	f.Add([]byte(`{"groups":["team:plant-3"],"broadcast":true,"idempotencyKey":"k","notification":{"type":"x"}}`))
	f.Add([]byte(`{"users":[],"notification":{}}`))
	f.Add([]byte(`{"users":["42"],"disconnect":{"reason":"signed out"}}`))
	f.Add([]byte(`{"broadcast":false,"broadcast":true,"notification":{"type":"x"}}`))
	f.Fuzz(func(t *testing.T, payload []byte) {
		req, err := notify.DecodePublishRequest(payload)
		if err != nil {
			if notify.ErrorCode(err) != notify.EINVALID || notify.ErrorMessage(err) == "" {
				t.Fatalf("refusal without EINVALID and a message: %v", err)
			}
			return
		}
		if len(req.Users) == 0 && len(req.Groups) == 0 && !req.Broadcast {
			t.Fatal("accepted a request without a target")
		}
		if req.Disconnect != nil {
			if req.IdempotencyKey != "" || req.Notification.Type != "" {
				t.Fatalf("accepted a disconnect request with a key or a notification: %+v", req)
			}
		} else if req.Notification.Type == "" {
			t.Fatalf("accepted a publish without a type: %+v", req)
		}
		if len(req.Users) > notify.MaxUsersPerPublish || len(req.Groups) > notify.MaxGroupsPerPublish {
			t.Fatalf("accepted an out-of-range request: %+v", req)
		}
		for _, u := range append(append([]string{}, req.Users...), req.Groups...) {
			if !notify.ValidName(u) {
				t.Fatalf("accepted invalid name %q", u)
			}
		}
		if req.Notification.Data != nil && req.Notification.Data[0] != '{' {
			t.Fatalf("accepted non-object data %s", req.Notification.Data)
		}
		// Re-encoded from its type, the request decodes to itself.
		encoded, err := notify.EncodeJSON(req)
		if err != nil {
			t.Fatal(err)
		}
		again, err := notify.DecodePublishRequest(encoded)
		if err != nil || !reflect.DeepEqual(withoutEmptyTargets(again), withoutEmptyTargets(req)) {
			t.Fatalf("%+v re-encoded as %s decodes to %+v, %v", req, encoded, again, err)
		}
	})
}

// withoutEmptyTargets makes empty users or groups nil: `"users":[]` and no
// users are the same request.
func withoutEmptyTargets(r notify.PublishRequest) notify.PublishRequest {
	if len(r.Users) == 0 {
		r.Users = nil
	}
	if len(r.Groups) == 0 {
		r.Groups = nil
	}
	return r
}

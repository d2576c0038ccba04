package notify_test

import (
	"testing"

	"github.com/workorders/notify/internal/notify"
)

// The decoders' cost per frame and per request (allocations are the
// figure issue 10 tracks: before and after the typed decoders).
func BenchmarkDecodeClientFrame(b *testing.B) {
	for _, bc := range []struct{ name, body string }{
		{"ping", `{"action":"ping","ref":"r1"}`},
		{"sync", `{"action":"sync","after":"01JD3Y5W8X2K7Q9R4T6V8B0C2D","limit":50,"ref":"r2"}`},
		{"read", `{"action":"read","ids":["01JD3Y5W8X2K7Q9R4T6V8B0C2D","01JD3Y5W8X2K7Q9R4T6V8B0C2E"],"ref":"r3"}`},
	} {
		b.Run(bc.name, func(b *testing.B) {
			body := []byte(bc.body)
			b.ReportAllocs()
			for b.Loop() {
				if _, err := notify.DecodeClientFrame(body); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

func BenchmarkDecodePublishRequest(b *testing.B) {
	body := []byte(`{"users":["42","43"],"groups":["team:plant-3"],"idempotencyKey":"wo-1042-assigned-v1",
		"notification":{"type":"workorder.assigned","title":"WO-1042 assigned to you","body":"Pump P-7 leaking at plant 3",
		"data":{"workOrderId":"WO-1042","plant":"plant-3"}}}`)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := notify.DecodePublishRequest(body); err != nil {
			b.Fatal(err)
		}
	}
}

package apigw

import (
	"testing"
)

func TestPercentEncodeTrace(t *testing.T) {
	for in, want := range map[string]string{
		"Root=1-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8;Sampled=1": "Root=1-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8;Sampled=1",
		"a b\nc√": "a%20b%0Ac%E2%88%9A",
	} {
		if got := percentEncodeTrace(in); got != want {
			t.Errorf("%q: %q, want %q", in, got, want)
		}
	}
}

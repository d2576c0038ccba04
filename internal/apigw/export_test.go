package apigw

import (
	"context"
	"net/http"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
)

// NewSDK returns a Sender that posts through the service client, in the
// configuration newServiceClient gives it: the comparison for the lean path.
func NewSDK(cfg aws.Config, opts Options) *Sender { return newSender(cfg, opts, nil, pathSDK) }

// NewWithHTTPClient is New (sdk false) or NewSDK over the given client.
func NewWithHTTPClient(cfg aws.Config, opts Options, hc aws.HTTPClient, sdk bool) *Sender {
	path := pathLean
	if sdk {
		path = pathSDK
	}
	return newSender(cfg, opts, hc, path)
}

// LeanRequest returns the signed request that s's lean path would send for
// attempt of a post of data to id, signed at t with invocationID.
func LeanRequest(s *Sender, id string, data []byte, invocationID string, attempt int, t time.Time) (*http.Request, error) {
	p := s.lean
	if p.err != nil {
		return nil, p.err
	}
	return p.req.buildAt(context.Background(), id, data, payloadHash(data), invocationID, attempt, t)
}

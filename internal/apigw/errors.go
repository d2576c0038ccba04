package apigw

import (
	"errors"
	"fmt"
	"net/http"

	"github.com/aws/aws-sdk-go-v2/service/apigatewaymanagementapi/types"

	"github.com/workorders/notify/internal/notify"
)

// mapError turns an SDK-shaped error (from the SDK client or the lean post
// path, which builds the same chain) into a notify error. The modeled
// exception is checked first; the HTTP status is the fallback for answers
// without an x-amzn-ErrorType header (real 410s may come with an empty body,
// and local stand-ins may send no header at all).
func mapError(op, connectionID string, err error) error {
	if err == nil {
		return nil
	}
	var gone *types.GoneException
	var tooLarge *types.PayloadTooLargeException
	switch {
	case errors.As(err, &gone) || httpStatus(err) == http.StatusGone:
		// Both wrapped: errors.Is(err, notify.ErrGone) holds, ErrorCode finds
		// ErrGone (the first *notify.Error) and the SDK error stays reachable.
		return fmt.Errorf("apigw: %s connection %s: %w: %w", op, connectionID, notify.ErrGone, err)
	case errors.As(err, &tooLarge) || httpStatus(err) == http.StatusRequestEntityTooLarge:
		return notify.Wrap(notify.EINVALID, err, "apigw: "+op+" connection "+connectionID+": frame refused by the gateway as too large (413)")
	default:
		return notify.Wrap(notify.EINTERNAL, err, "apigw: "+op+" connection "+connectionID+" failed")
	}
}

// errorCode returns the API error code in err's chain, or "".
func errorCode(err error) string {
	var v interface{ ErrorCode() string }
	if errors.As(err, &v) {
		return v.ErrorCode()
	}
	return ""
}

// httpStatus returns the HTTP status of the answer in err's chain, or 0.
func httpStatus(err error) int {
	var v interface{ HTTPStatusCode() int }
	if errors.As(err, &v) {
		return v.HTTPStatusCode()
	}
	return 0
}

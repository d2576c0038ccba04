package apigw

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"strings"

	"github.com/aws/aws-sdk-go-v2/aws/protocol/restjson"
	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	"github.com/aws/aws-sdk-go-v2/service/apigatewaymanagementapi/types"
	smithy "github.com/aws/smithy-go"
	smithyhttp "github.com/aws/smithy-go/transport/http"
)

// maxErrorBody bounds what is read of an error answer (AWS's are a short
// JSON object).
const maxErrorBody = 64 << 10

// responseError reads a non-2xx answer into the error the SDK client would
// return for it: an *awshttp.ResponseError (HTTP status, request id) around
// the modeled exception (*types.GoneException, ...) or a
// *smithy.GenericAPIError. The code comes from the x-amzn-ErrorType header,
// else from the JSON body's code or __type; the message from the body's
// message. Where the SDK would fail on a body that is not JSON, the answer
// is kept as an "UnknownError" with its status, which mapError and the
// retryer then judge by.
func responseError(resp *http.Response) error {
	body, _ := io.ReadAll(io.LimitReader(resp.Body, maxErrorBody))
	code, message := errorInfo(resp.Header.Get("X-Amzn-Errortype"), body)
	requestID := resp.Header.Get("X-Amzn-Requestid")
	if requestID == "" {
		requestID = resp.Header.Get("X-Amz-Request-Id")
	}
	return &awshttp.ResponseError{
		ResponseError: &smithyhttp.ResponseError{
			Response: &smithyhttp.Response{Response: resp},
			Err:      apiError(code, message),
		},
		RequestID: requestID,
	}
}

// errorInfo returns the error code and message of an answer, as the SDK's
// REST-JSON error deserializer finds them.
func errorInfo(header string, body []byte) (code, message string) {
	code = "UnknownError"
	if header != "" {
		code = restjson.SanitizeErrorCode(header)
	}
	if len(bytes.TrimSpace(body)) > 0 {
		jsonCode, msg, err := restjson.GetErrorInfo(json.NewDecoder(bytes.NewReader(body)))
		if err == nil {
			if header == "" && jsonCode != "" {
				code = jsonCode
			}
			message = msg
		}
	}
	return code, message
}

// apiError returns the modeled exception for code, or a generic API error.
func apiError(code, message string) error {
	var msg *string
	if message != "" {
		msg = &message
	}
	switch {
	case strings.EqualFold(code, "GoneException"):
		return &types.GoneException{Message: msg}
	case strings.EqualFold(code, "PayloadTooLargeException"):
		return &types.PayloadTooLargeException{Message: msg}
	case strings.EqualFold(code, "ForbiddenException"):
		return &types.ForbiddenException{Message: msg}
	case strings.EqualFold(code, "LimitExceededException"):
		return &types.LimitExceededException{Message: msg}
	}
	if message == "" {
		message = code
	}
	return &smithy.GenericAPIError{Code: code, Message: message}
}

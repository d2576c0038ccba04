package apigw

import (
	"os"
	"runtime"
	"strings"

	"github.com/aws/aws-sdk-go-v2/aws"
)

// The headers the SDK adds to a call besides the operation's: the lean path
// sends the same (see requestBuilder).

// userAgentValue is the User-Agent of both post paths: what the SDK sends,
// computed once instead of on every call. It is not signed.
var userAgentValue = []string{"aws-sdk-go-v2/" + aws.SDKVersion + " ua/2.1 os/" + runtime.GOOS +
	" lang/go#" + strings.TrimPrefix(runtime.Version(), "go") +
	" md/GOOS#" + runtime.GOOS + " md/GOARCH#" + runtime.GOARCH + " api/apigatewaymanagementapi"}

// lambdaTraceID is the SDK's recursion detection: inside Lambda, the
// invocation's _X_AMZN_TRACE_ID goes out as X-Amzn-Trace-Id.
func lambdaTraceID() (string, bool) {
	if _, ok := os.LookupEnv("AWS_LAMBDA_FUNCTION_NAME"); !ok {
		return "", false
	}
	v, ok := os.LookupEnv("_X_AMZN_TRACE_ID")
	if !ok {
		return "", false
	}
	return percentEncodeTrace(v), true
}

// percentEncodeTrace escapes the bytes the SDK's recursion detection
// escapes: all but letters, digits and -=;:+&[]{}"',.
func percentEncodeTrace(s string) string {
	n := 0
	for i := 0; i < len(s); i++ {
		if !traceSafe(s[i]) {
			n++
		}
	}
	if n == 0 {
		return s
	}
	const hexUpper = "0123456789ABCDEF"
	b := make([]byte, 0, len(s)+2*n)
	for i := 0; i < len(s); i++ {
		if c := s[i]; traceSafe(c) {
			b = append(b, c)
		} else {
			b = append(b, '%', hexUpper[c>>4], hexUpper[c&15])
		}
	}
	return string(b)
}

func traceSafe(c byte) bool {
	return 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || strings.IndexByte(`-=;:+&[]{}"',`, c) >= 0
}

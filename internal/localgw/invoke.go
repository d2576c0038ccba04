package localgw

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"reflect"
	"runtime/debug"
	"time"

	"github.com/aws/aws-lambda-go/lambda"
	"github.com/aws/aws-lambda-go/lambda/handlertrace"
	"github.com/aws/aws-lambda-go/lambda/messages"
	"github.com/aws/aws-lambda-go/lambdacontext"
	"github.com/google/uuid"
)

// maxInvokePayload is Lambda's synchronous request payload quota (6 MB).
const maxInvokePayload = 6 << 20

// errUnknownFunction is returned by invoke for a name that is not in Config.Functions.
var errUnknownFunction = errors.New("function not found")

// invocation is the outcome of one function invocation.
type invocation struct {
	requestID string
	output    []byte                         // the handler's output (nil on a function error)
	fnErr     *messages.InvokeResponse_Error // the function error, as the runtime reports it
	logTail   []byte                         // the last 4 KB of the invocation's log lines
}

// functionARN is the ARN a function is invoked as.
func functionARN(name string) string {
	return "arn:aws:lambda:" + Region + ":" + AccountID + ":function:" + name
}

// invoke runs one function: the single path shared by the WebSocket routes and the Invoke API.
// ctx only carries values and cancellation from the caller; the deadline is the function's own.
func (g *Gateway) invoke(ctx context.Context, name string, payload []byte) (invocation, error) {
	fn, ok := g.functions[name]
	if !ok {
		return invocation{}, fmt.Errorf("%w: %s", errUnknownFunction, functionARN(name))
	}
	inv := invocation{requestID: uuid.NewString()}
	ctx, cancel := context.WithTimeout(ctx, fn.timeout)
	defer cancel()
	ctx = lambdacontext.NewContext(ctx, &lambdacontext.LambdaContext{
		AwsRequestID:       inv.requestID,
		InvokedFunctionArn: functionARN(name),
	})
	ctx, tail := startTail(ctx, inv.requestID)

	start := time.Now()
	out, panicked, err := fn.call(ctx, payload)
	switch {
	case panicked != nil:
		inv.fnErr = panicResponse(panicked)
		g.log.Error("function panicked", "function", name, "requestId", inv.requestID, "stack", string(panicked.(panicInfo).stack))
	case errors.Is(ctx.Err(), context.DeadlineExceeded):
		// Lambda stops the function at its deadline, whatever it was about to return.
		inv.fnErr = &messages.InvokeResponse_Error{
			Type:    "Runtime.Timeout",
			Message: fmt.Sprintf("%s %s Task timed out after %.2f seconds", time.Now().UTC().Format("2006-01-02T15:04:05.000Z"), inv.requestID, fn.timeout.Seconds()),
		}
	case err != nil:
		inv.fnErr = errorResponse(err)
	default:
		inv.output = out
	}
	elapsed := time.Since(start)
	attrs := []any{"function", name, "requestId", inv.requestID, "duration", elapsed}
	if inv.fnErr != nil {
		g.log.Warn("function error", append(attrs, "errorType", inv.fnErr.Type, "errorMessage", inv.fnErr.Message)...)
	} else {
		g.log.Debug("function invoked", attrs...)
	}
	memory := g.cfg.FunctionInfo[name].MemorySize
	if memory <= 0 {
		memory = 128
	}
	endTail(tail, inv.requestID, elapsed, memory)
	inv.logTail = tail.bytes()
	return inv, nil
}

// call invokes the handler and returns a copy of its output that no later invocation can touch.
//
// lambda.NewHandler's handlers take an output buffer from a sync.Pool before decoding the event,
// write the output into it after the function returned, and put it back in the pool before
// Invoke returns a slice of it. The gate keeps another invocation of the same handler from taking
// that buffer until this one copied it: it is held from the start of Invoke until the handler
// took its buffer (the RequestEvent hook, right after), and again from the function's return (the
// ResponseEvent hook, right before the output is written) until the copy. A handler that fires
// no hook holds the gate for its whole invocation.
func (fn *function) call(ctx context.Context, payload []byte) (out []byte, panicked any, err error) {
	held, requested, responded := true, false, false
	fn.gate.Lock()
	ctx = handlertrace.NewContext(ctx, handlertrace.HandlerTrace{
		RequestEvent: func(context.Context, any) {
			requested = true
			if held {
				held = false
				fn.gate.Unlock()
			}
		},
		ResponseEvent: func(context.Context, any) {
			responded = true
			if !held {
				fn.gate.Lock()
				held = true
			}
		},
	})
	defer func() {
		if p := recover(); p != nil {
			out, panicked, err = nil, panicInfo{value: p, stack: debug.Stack()}, nil
		}
		if held {
			fn.gate.Unlock()
		}
	}()
	out, err = fn.handler.Invoke(ctx, payload)
	if err != nil {
		return nil, nil, err
	}
	if requested && !responded && !held {
		// A reflected handler that returns only an error writes "null" once the function
		// returned, without a hook: its pooled bytes may already belong to another invocation.
		return []byte("null"), nil, nil
	}
	return bytes.Clone(out), nil, nil
}

type panicInfo struct {
	value any
	stack []byte
}

// errorResponse mirrors aws-lambda-go's lambdaErrorResponse.
func errorResponse(err error) *messages.InvokeResponse_Error {
	if ive, ok := err.(messages.InvokeResponse_Error); ok {
		return &ive
	}
	return &messages.InvokeResponse_Error{Message: err.Error(), Type: typeName(err)}
}

// panicResponse mirrors aws-lambda-go's lambdaPanicResponse (without the stack trace).
func panicResponse(p any) *messages.InvokeResponse_Error {
	v := p.(panicInfo).value
	if ive, ok := v.(messages.InvokeResponse_Error); ok {
		return &ive
	}
	msg := fmt.Sprintf("%v", v)
	if err, ok := v.(error); ok {
		msg = err.Error()
	}
	return &messages.InvokeResponse_Error{Message: msg, Type: typeName(v)}
}

func typeName(v any) string {
	t := reflect.TypeOf(v)
	if t == nil {
		return ""
	}
	if t.Kind() == reflect.Pointer {
		return t.Elem().Name()
	}
	return t.Name()
}

func isPointer(h lambda.Handler) bool {
	return reflect.TypeOf(h).Kind() == reflect.Pointer
}

// serveInvoke is the Lambda Invoke API: POST /2015-03-31/functions/{FunctionName}/invocations.
// An unknown Qualifier (anything but $LATEST) is refused with 404 ResourceNotFoundException.
// With X-Amz-Log-Type: Tail, a synchronous invocation's answer carries X-Amz-Log-Result.
func (g *Gateway) serveInvoke(w http.ResponseWriter, r *http.Request, ref string) {
	if r.Method != http.MethodPost {
		writeLambdaError(w, http.StatusMethodNotAllowed, "MethodNotAllowedException", "Use POST to invoke a function")
		return
	}
	name, ok := g.resolveFunction(w, r, ref)
	if !ok {
		return
	}
	logType := r.Header.Get("X-Amz-Log-Type")
	if logType != "" && logType != "None" && logType != "Tail" {
		writeLambdaError(w, http.StatusBadRequest, "InvalidParameterValueException",
			fmt.Sprintf("1 validation error detected: Value '%s' at 'logType' failed to satisfy constraint: Member must satisfy enum value set: [Tail, None]", logType))
		return
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxInvokePayload))
	if err != nil {
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			writeLambdaError(w, http.StatusRequestEntityTooLarge, "RequestTooLargeException",
				fmt.Sprintf("Request must be smaller than %d bytes for the InvokeFunction operation", maxInvokePayload))
			return
		}
		writeLambdaError(w, http.StatusBadRequest, "InvalidRequestContentException", "Could not read request body: "+err.Error())
		return
	}
	if len(bytes.TrimSpace(body)) == 0 {
		body = []byte("{}") // an invoke without payload hands the function {}
	}
	if !json.Valid(body) {
		var v any
		msg := json.Unmarshal(body, &v).Error()
		writeLambdaError(w, http.StatusBadRequest, "InvalidRequestContentException", "Could not parse request body into json: "+msg)
		return
	}

	switch typ := r.Header.Get("X-Amz-Invocation-Type"); typ {
	case "", "RequestResponse":
		inv, err := g.invoke(context.WithoutCancel(r.Context()), name, body)
		if err != nil {
			writeLambdaError(w, http.StatusNotFound, "ResourceNotFoundException", err.Error())
			return
		}
		w.Header().Set("X-Amz-Executed-Version", "$LATEST")
		w.Header().Set("Content-Type", "application/json")
		if logType == "Tail" {
			w.Header().Set("X-Amz-Log-Result", base64.StdEncoding.EncodeToString(inv.logTail))
		}
		out := inv.output
		if inv.fnErr != nil {
			w.Header().Set("X-Amz-Function-Error", "Unhandled")
			out, _ = json.Marshal(inv.fnErr)
		}
		w.WriteHeader(http.StatusOK)
		_, _ = w.Write(out)
	case "Event":
		g.background.Add(1)
		go func() {
			defer g.background.Done()
			_, _ = g.invoke(context.Background(), name, body)
		}()
		w.Header().Set("X-Amz-Executed-Version", "$LATEST")
		w.WriteHeader(http.StatusAccepted)
	case "DryRun":
		w.WriteHeader(http.StatusNoContent)
	default:
		writeLambdaError(w, http.StatusBadRequest, "InvalidParameterValueException",
			fmt.Sprintf("1 validation error detected: Value '%s' at 'invocationType' failed to satisfy constraint: Member must satisfy enum value set: [Event, RequestResponse, DryRun]", typ))
	}
}

// writeLambdaError answers like Lambda: the code in x-amzn-ErrorType, {"Type":"User","message":...}.
func writeLambdaError(w http.ResponseWriter, status int, code, message string) {
	writeJSON(w, status, map[string]string{"Type": "User", "message": message}, code)
}

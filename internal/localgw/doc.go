// Package localgw is the local stand-in for API Gateway (WebSocket API and Management API) and
// Lambda (Invoke API), on one loopback address, driving functions given as aws-lambda-go
// lambda.Handlers. SAM local cannot emulate WebSocket APIs; this package is what `notify local`
// serves instead.
//
// One address serves:
//
//   - ws://ADDR/ (any path): the WebSocket API. The $connect function runs before the upgrade
//     is accepted; a non-2xx statusCode refuses the handshake with that status and body, a
//     function error refuses it with 500. Text frames are routed by the route selection
//     expression ($request.body.FIELD); frames that are not JSON, or match no route, go to
//     $default; a binary message closes the socket with 1003, as on AWS. Messages of one connection
//     are handled in order, one at a time. Integration return values are ignored (no route
//     responses); a failing integration answers the client with AWS's
//     {"message":"Internal server error",...} frame, a missing route with {"message":"Forbidden",...}.
//   - http://ADDR/@connections/{id} (optionally under one stage segment, /local/@connections/{id}):
//     the Management API: POST (send one frame: a text frame when the data is valid UTF-8, else
//     a binary frame; over notify.MaxFrameBytes, 413), GET (connection info), DELETE (close).
//     A POST answers once its frame is queued for the socket, not once the client read it: each
//     connection has a bounded send queue (Config.SendQueue frames) emptied in order by its own
//     writer goroutine, which runs only while frames wait (an idle socket holds no writer and
//     no buffer), so a stalled client delays nobody else. A POST that finds the queue full
//     drops that connection and answers 410 GoneException. A DELETE's close frame goes out after
//     the frames posted before it.
//   - http://ADDR/2015-03-31/: the Lambda API: Invoke (POST functions/{FunctionName}/invocations;
//     RequestResponse, Event, DryRun; Qualifier only $LATEST; X-Amz-Log-Type: Tail returns the
//     last 4 KB of the invocation's log lines in X-Amz-Log-Result, see TailHandler),
//     ListFunctions (GET functions/) and GetFunction (GET functions/{name}). Any other path
//     answers 404 with a JSON body and x-amzn-ErrorType UnknownOperationException (or
//     ResourceNotFoundException for an unknown function or qualifier).
//
// Anything else that is a plain GET goes to Config.Static when set.
//
// # Two HTTP servers behind one address
//
// The listener's connections are split by their first request line (frontDoor). A connection
// that starts with a Management API request is a publisher's keep-alive connection, the
// fan-out's hot path: fasthttp serves it, at a fraction of net/http's CPU per request, and
// sends any other request on it to the same handler through fasthttpadaptor (a WebSocket
// upgrade on such a connection is refused with 400). Every other connection is net/http's,
// whose handler serves every path, the Management API included. One function (manage) answers
// the Management API for both, so their answers are the same.
//
// # Closing and $disconnect
//
// Every accepted socket gets exactly one $disconnect invocation after it closed, whatever closed
// it, with requestContext.disconnectStatusCode and disconnectReason:
//
//	client close frame          the client's code and reason
//	no close frame (TCP drop)   1006, ""
//	DELETE @connections/{id}    1000, "Connection Closed Normally" (as AWS logs it)
//	idle timeout, max duration  1001, "Going away"
//	Shutdown                    1001, "Going away"
//	text message too big        1009, "Message too big"
//	binary message too big      1003, "Message too big"
//	write timeout (slow reader) 1006, "write timeout" (the TCP connection is dropped)
//	send queue full             1006, "send queue full" (dropped; the POST answers 410)
//
// AWS does not document the codes for the idle timeout, the 2-hour limit or DELETE; the ones
// above are what clients report seeing and are a guess where unconfirmed. The idle clock counts
// data messages in both directions (a POST to the connection counts); control frames (ping/pong)
// do not, as clients report that pings do not keep an API Gateway socket alive.
//
// A connection is reachable through @connections from the moment its $connect function answered
// 2xx (a call that arrives while the 101 response is being written waits for it) until the start
// of its close; before and after, the Management API answers 410 GoneException, as AWS does for
// a post made during $connect.
//
// # Functions
//
// Every invocation, from a route or from the Invoke API, goes through one path: a context from
// lambdacontext.NewContext with a fresh AwsRequestID and the function's ARN
// (arn:aws:lambda:us-east-1:000000000000:function:NAME), a deadline (FunctionTimeouts, default
// 30 s), panics recovered, and errors turned into {"errorMessage","errorType"} exactly as
// aws-lambda-go's runtime loop does.
//
// aws-lambda-go v1.55.1's lambda.NewHandler returns its output in pooled storage that the next
// invocation of the same handler overwrites (aws/aws-lambda-go#639). The gateway therefore copies
// every output, and uses the library's handlertrace hooks to keep another invocation of the same
// handler from taking a pooled buffer between the moment the output is written and the moment it
// is copied. Handlers that do not go through lambda.NewHandler's reflection (hand-written
// Invoke methods) give no such hooks: their invocations are serialised, one at a time per handler.
package localgw

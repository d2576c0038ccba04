// Package lambdaevents turns API Gateway WebSocket events and publish
// invocations into calls on the notify.Service, and the service's answers
// and errors into what API Gateway and Lambda expect back.
package lambdaevents

import (
	"context"
	"encoding/json"
	"log/slog"
	"net/http"
	"time"

	"github.com/aws/aws-lambda-go/events"
	"github.com/aws/aws-lambda-go/lambda/messages"
	"github.com/aws/aws-lambda-go/lambdacontext"

	"github.com/workorders/notify/internal/auth"
	"github.com/workorders/notify/internal/metrics"
	"github.com/workorders/notify/internal/notify"
)

// ValidationErrorType is the Lambda errorType of a refused publish request:
// retrying cannot help (docs/PROTOCOL.md §4).
const ValidationErrorType = "ValidationError"

// InternalErrorType is the Lambda errorType of a publish that failed for a
// reason other than its input (storage, say): nothing was sent and a retry
// may succeed.
const InternalErrorType = "InternalError"

// Handlers holds what the five functions need. Each method is a handler
// aws-lambda-go's lambda.Start accepts.
type Handlers struct {
	Service *notify.Service
	// Verifier and Origins are used by Connect only.
	Verifier *auth.Verifier
	Origins  auth.OriginPolicy
	// SenderFor returns the Management API sender that reaches the
	// connection of an event (DefaultFunction answers through it;
	// ConnectFunction closes the user's oldest sockets through it).
	SenderFor func(rc events.APIGatewayWebsocketProxyRequestContext) notify.Sender
	Logger    *slog.Logger
	// Metrics writes each invocation's EMF object (docs/PROTOCOL.md §9).
	// Nil writes none.
	Metrics *metrics.Emitter
}

// Connect answers $connect: origin policy, then the token, then the
// user's revocation and storage. 403 for a refused origin, 401 for a bad or
// revoked token, 500 for a storage failure (docs/PROTOCOL.md §2). A refused
// connection stores nothing. The user's oldest sockets beyond the cap are
// closed once the new one is stored.
//
// Metrics: Connects 1 and ConnectsRefused 0, or Connects 0 and
// ConnectsRefused 1 with the Reason dimension (origin, token, revoked,
// storage).
func (h *Handlers) Connect(ctx context.Context, req events.APIGatewayWebsocketProxyRequest) (events.APIGatewayProxyResponse, error) {
	ctx, log := h.requestLogger(ctx, req.RequestContext)
	m := h.Metrics.Start(time.Now())
	m.Count(metrics.Connects, 0)
	m.Count(metrics.ConnectsRefused, 0)
	defer h.Metrics.Emit(ctx, log, m)
	refused := func(reason string) {
		m.Count(metrics.ConnectsRefused, 1)
		m.Dimension(metrics.DimensionReason, reason)
	}
	token, fromHeader := auth.TokenFromRequest(req.QueryStringParameters, req.Headers)
	if err := h.Origins.Check(auth.HeaderValue(req.Headers, "Origin"), fromHeader); err != nil {
		refused(metrics.ReasonOrigin)
		return refuse(log, http.StatusForbidden, err), nil
	}
	id, err := h.Verifier.Verify(ctx, token)
	if err != nil {
		refused(metrics.ReasonToken)
		return refuse(log, http.StatusUnauthorized, err), nil
	}
	connectedAt := time.UnixMilli(req.RequestContext.ConnectedAt)
	if req.RequestContext.ConnectedAt == 0 {
		connectedAt = time.Time{}
	}
	var sender notify.Sender
	if h.SenderFor != nil {
		sender = h.SenderFor(req.RequestContext)
	}
	err = h.Service.Connect(ctx, sender, notify.ConnectRequest{
		ID: req.RequestContext.ConnectionID, UserID: id.UserID, Groups: id.Groups, ConnectedAt: connectedAt,
		TokenIssuedAt: id.IssuedAt, TokenExpiresAt: id.ExpiresAt,
	})
	switch {
	case notify.ErrorCode(err) == notify.EUNAUTHORIZED:
		refused(metrics.ReasonRevoked)
		return refuse(log, http.StatusUnauthorized, err), nil
	case err != nil:
		refused(metrics.ReasonStorage)
		log.Error("connection refused", "status", http.StatusInternalServerError, "reason", "storage failure", "error", err.Error())
		return response(http.StatusInternalServerError, "could not store the connection"), nil
	}
	m.Count(metrics.Connects, 1)
	log.Info("connected", "userId", id.UserID, "groups", len(id.Groups))
	return response(http.StatusOK, ""), nil
}

// Disconnect answers $disconnect by forgetting the connection.
//
// Metrics: Disconnects 1 (the socket is closed whether or not forgetting
// it worked).
func (h *Handlers) Disconnect(ctx context.Context, req events.APIGatewayWebsocketProxyRequest) (events.APIGatewayProxyResponse, error) {
	ctx, log := h.requestLogger(ctx, req.RequestContext)
	m := h.Metrics.Start(time.Now())
	m.Count(metrics.Disconnects, 1)
	defer h.Metrics.Emit(ctx, log, m)
	if err := h.Service.Disconnect(ctx, req.RequestContext.ConnectionID); err != nil {
		log.Error("disconnect failed", "error", err.Error())
		return response(http.StatusInternalServerError, "could not remove the connection"), nil
	}
	log.Info("disconnected", "disconnectStatusCode", req.RequestContext.DisconnectStatusCode)
	return response(http.StatusOK, ""), nil
}

// Default answers every message: the answer goes back through the
// Management API (no route responses), and the socket stays open.
//
// Metrics: Frames 1, with the Action dimension (the frame's action, or
// "invalid" for a frame without one the server knows), and FrameErrors 1
// when the frame was answered with an `error` frame or its answer could not
// be delivered (for another reason than the socket being gone), else 0.
func (h *Handlers) Default(ctx context.Context, req events.APIGatewayWebsocketProxyRequest) (events.APIGatewayProxyResponse, error) {
	ctx, log := h.requestLogger(ctx, req.RequestContext)
	m := h.Metrics.Start(time.Now())
	defer h.Metrics.Emit(ctx, log, m)
	// A binary message arrives base64-encoded; it is refused whatever it
	// holds, so it is not decoded.
	sender := h.SenderFor(req.RequestContext)
	res, err := h.Service.HandleFrame(ctx, sender, req.RequestContext.ConnectionID, []byte(req.Body), req.IsBase64Encoded)
	if err != nil {
		log.Warn("answer not delivered", "code", notify.ErrorCode(err), "error", err.Error())
	}
	action := res.Action
	if action == "" {
		action = metrics.ActionInvalid
	}
	m.Dimension(metrics.DimensionAction, action)
	m.Count(metrics.Frames, 1)
	frameErrors := 0
	if res.ErrorCode != "" || (err != nil && notify.ErrorCode(err) != notify.EGONE) {
		frameErrors = 1
	}
	m.Count(metrics.FrameErrors, frameErrors)
	return response(http.StatusOK, ""), nil
}

// Publish answers a synchronous invocation from another service: a publish
// (its answer a notify.PublishResult) or a disconnect request (a
// notify.DisconnectResult). Invalid input is a ValidationError naming the
// field; anything else is an InternalError after which nothing was sent.
//
// Metrics, on every invocation: the counts Publishes, Deliveries, Gone,
// Failed, Throttled, Duplicates and FanoutConnections (zeros included).
//   - A publish answered (duplicate or not): Publishes 1, Deliveries,
//     Gone, Failed and FanoutConnections from the answer (delivered, gone,
//     failed, connections), Duplicates 1 for a duplicate; PublishLatency
//     (the whole invocation) and, when the inbox was written, StoreLatency.
//   - A publish that failed (InternalError): Publishes 0, PublishLatency,
//     and StoreLatency when the inbox write was attempted.
//   - A disconnect request is not a publish: Publishes 0, Deliveries 0,
//     Duplicates 0, FanoutConnections 0, no latencies; Gone and Failed are
//     its answer's (sockets already gone, closes that failed), as they are
//     the same Management API's health.
//   - A ValidationError: every count 0, no latencies.
//
// Throttled, in every case, counts the Management API's 429 answers that
// were retried (internal/apigw adds them to the record in ctx).
func (h *Handlers) Publish(ctx context.Context, payload json.RawMessage) (any, error) {
	start := time.Now()
	ctx, log, m := h.startInvocation(ctx, start, metrics.Publishes, metrics.Deliveries, metrics.Gone,
		metrics.Failed, metrics.Throttled, metrics.Duplicates, metrics.FanoutConnections)
	defer h.Metrics.Emit(ctx, log, m)
	req, err := notify.DecodePublishRequest(payload)
	if err != nil {
		log.Info("publish refused", "reason", notify.ErrorMessage(err))
		return nil, messages.InvokeResponse_Error{Type: ValidationErrorType, Message: notify.ErrorMessage(err)}
	}
	if req.Disconnect != nil {
		res, err := h.Service.DisconnectTargets(ctx, req)
		m.Count(metrics.Gone, res.Gone)
		m.Count(metrics.Failed, res.Failed)
		if err != nil {
			log.Error("disconnect failed", "error", err.Error())
			return nil, messages.InvokeResponse_Error{Type: InternalErrorType, Message: notify.ErrorMessage(err)}
		}
		log.Info("disconnected", "users", len(req.Users), "groups", len(req.Groups), "broadcast", req.Broadcast,
			"connections", res.Connections, "disconnected", res.Disconnected, "gone", res.Gone, "failed", res.Failed)
		return res, nil
	}
	res, err := h.Service.Publish(ctx, req)
	m.Duration(metrics.PublishLatency, time.Since(start))
	if res.StoreLatency > 0 {
		m.Duration(metrics.StoreLatency, res.StoreLatency)
	}
	if err != nil {
		log.Error("publish failed", "error", err.Error())
		return nil, messages.InvokeResponse_Error{Type: InternalErrorType, Message: notify.ErrorMessage(err)}
	}
	m.Count(metrics.Publishes, 1)
	m.Count(metrics.Deliveries, res.Delivered)
	m.Count(metrics.Gone, res.Gone)
	m.Count(metrics.Failed, res.Failed)
	m.Count(metrics.FanoutConnections, res.Connections)
	if res.Duplicate {
		m.Count(metrics.Duplicates, 1)
	}
	log.Info("published", "id", res.ID, "connections", res.Connections, "delivered", res.Delivered,
		"gone", res.Gone, "failed", res.Failed, "offlineUsers", len(res.OfflineUsers))
	return res, nil
}

// startInvocation begins a direct invocation (Publish, Fanout): its logger,
// with Lambda's request id, in ctx; and its metrics record, counts at 0 so
// that graphs always have data, in ctx too (the Management API sender adds
// Throttled to it).
func (h *Handlers) startInvocation(ctx context.Context, start time.Time, counts ...string) (context.Context, *slog.Logger, *metrics.Record) {
	log := h.Logger
	if lc, ok := lambdacontext.FromContext(ctx); ok {
		log = log.With("requestId", lc.AwsRequestID)
	}
	m := h.Metrics.Start(start)
	for _, name := range counts {
		m.Count(name, 0)
	}
	return metrics.NewContext(notify.WithLogger(ctx, log), m), log, m
}

func (h *Handlers) requestLogger(ctx context.Context, rc events.APIGatewayWebsocketProxyRequestContext) (context.Context, *slog.Logger) {
	requestID := rc.RequestID
	if lc, ok := lambdacontext.FromContext(ctx); ok && lc.AwsRequestID != "" {
		requestID = lc.AwsRequestID
	}
	log := h.Logger.With("requestId", requestID, "apiRequestId", rc.RequestID,
		"connectionId", rc.ConnectionID, "route", rc.RouteKey)
	return notify.WithLogger(ctx, log), log
}

func refuse(log *slog.Logger, status int, err error) events.APIGatewayProxyResponse {
	log.Info("connection refused", "status", status, "reason", notify.ErrorMessage(err))
	return response(status, notify.ErrorMessage(err))
}

func response(status int, message string) events.APIGatewayProxyResponse {
	r := events.APIGatewayProxyResponse{StatusCode: status}
	if message != "" {
		b, _ := json.Marshal(struct {
			Message string `json:"message"`
		}{message})
		r.Body = string(b)
		r.Headers = map[string]string{"Content-Type": "application/json"}
	}
	return r
}

// Fanout is FanoutFunction: it sends a publish's batch (notify.FanoutBatch,
// from PublishFunction) and answers its counts (notify.FanoutResult). A
// batch that does not decode is a ValidationError and sends nothing.
//
// Metrics: Deliveries, Gone, Failed and Throttled of the batch, under
// Function FanoutFunction (PublishFunction's own figures are the totals).
func (h *Handlers) Fanout(ctx context.Context, payload json.RawMessage) (any, error) {
	ctx, log, m := h.startInvocation(ctx, time.Now(), metrics.Deliveries, metrics.Gone, metrics.Failed, metrics.Throttled)
	defer h.Metrics.Emit(ctx, log, m)
	batch, err := notify.DecodeFanoutBatch(payload)
	if err != nil {
		log.Error("fan-out batch refused", "reason", notify.ErrorMessage(err))
		return nil, messages.InvokeResponse_Error{Type: ValidationErrorType, Message: notify.ErrorMessage(err)}
	}
	res := h.Service.DeliverBatch(ctx, batch)
	m.Count(metrics.Deliveries, res.Delivered)
	m.Count(metrics.Gone, res.Gone)
	m.Count(metrics.Failed, res.Failed)
	res.Throttled = m.Value(metrics.Throttled)
	log.Info("fanned out", "connections", len(batch.Connections), "delivered", res.Delivered,
		"gone", res.Gone, "failed", res.Failed, "throttled", res.Throttled)
	return res, nil
}

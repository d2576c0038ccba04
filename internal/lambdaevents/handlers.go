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
	"github.com/workorders/notify/internal/notify"
)

// ValidationErrorType is the Lambda errorType of a refused publish request:
// retrying cannot help (docs/PROTOCOL.md §4).
const ValidationErrorType = "ValidationError"

// InternalErrorType is the Lambda errorType of a publish that failed for a
// reason other than its input (storage, say): nothing was sent and a retry
// may succeed.
const InternalErrorType = "InternalError"

// Handlers holds what the four functions need. Each method is a handler
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
}

// Connect answers $connect: origin policy, then the token, then the
// user's revocation and storage. 403 for a refused origin, 401 for a bad or
// revoked token, 500 for a storage failure (docs/PROTOCOL.md §2). A refused
// connection stores nothing. The user's oldest sockets beyond the cap are
// closed once the new one is stored.
func (h *Handlers) Connect(ctx context.Context, req events.APIGatewayWebsocketProxyRequest) (events.APIGatewayProxyResponse, error) {
	ctx, log := h.requestLogger(ctx, req.RequestContext)
	token, fromHeader := auth.TokenFromRequest(req.QueryStringParameters, req.Headers)
	if err := h.Origins.Check(auth.HeaderValue(req.Headers, "Origin"), fromHeader); err != nil {
		return refuse(log, http.StatusForbidden, err), nil
	}
	id, err := h.Verifier.Verify(ctx, token)
	if err != nil {
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
		return refuse(log, http.StatusUnauthorized, err), nil
	case err != nil:
		log.Error("connection refused", "status", http.StatusInternalServerError, "reason", "storage failure", "error", err.Error())
		return response(http.StatusInternalServerError, "could not store the connection"), nil
	}
	log.Info("connected", "userId", id.UserID, "groups", len(id.Groups))
	return response(http.StatusOK, ""), nil
}

// Disconnect answers $disconnect by forgetting the connection.
func (h *Handlers) Disconnect(ctx context.Context, req events.APIGatewayWebsocketProxyRequest) (events.APIGatewayProxyResponse, error) {
	ctx, log := h.requestLogger(ctx, req.RequestContext)
	if err := h.Service.Disconnect(ctx, req.RequestContext.ConnectionID); err != nil {
		log.Error("disconnect failed", "error", err.Error())
		return response(http.StatusInternalServerError, "could not remove the connection"), nil
	}
	log.Info("disconnected", "disconnectStatusCode", req.RequestContext.DisconnectStatusCode)
	return response(http.StatusOK, ""), nil
}

// Default answers every message: the answer goes back through the
// Management API (no route responses), and the socket stays open.
func (h *Handlers) Default(ctx context.Context, req events.APIGatewayWebsocketProxyRequest) (events.APIGatewayProxyResponse, error) {
	ctx, log := h.requestLogger(ctx, req.RequestContext)
	// A binary message arrives base64-encoded; it is refused whatever it
	// holds, so it is not decoded.
	sender := h.SenderFor(req.RequestContext)
	if err := h.Service.HandleMessage(ctx, sender, req.RequestContext.ConnectionID, []byte(req.Body), req.IsBase64Encoded); err != nil {
		log.Warn("answer not delivered", "code", notify.ErrorCode(err), "error", err.Error())
	}
	return response(http.StatusOK, ""), nil
}

// Publish answers a synchronous invocation from another service: a publish
// (its answer a notify.PublishResult) or a disconnect request (a
// notify.DisconnectResult). Invalid input is a ValidationError naming the
// field; anything else is an InternalError after which nothing was sent.
func (h *Handlers) Publish(ctx context.Context, payload json.RawMessage) (any, error) {
	log := h.Logger
	if lc, ok := lambdacontext.FromContext(ctx); ok {
		log = log.With("requestId", lc.AwsRequestID)
	}
	ctx = notify.WithLogger(ctx, log)
	req, err := notify.DecodePublishRequest(payload)
	if err != nil {
		log.Info("publish refused", "reason", notify.ErrorMessage(err))
		return nil, messages.InvokeResponse_Error{Type: ValidationErrorType, Message: notify.ErrorMessage(err)}
	}
	if req.Disconnect != nil {
		res, err := h.Service.DisconnectTargets(ctx, req)
		if err != nil {
			log.Error("disconnect failed", "error", err.Error())
			return nil, messages.InvokeResponse_Error{Type: InternalErrorType, Message: notify.ErrorMessage(err)}
		}
		log.Info("disconnected", "users", len(req.Users), "groups", len(req.Groups), "broadcast", req.Broadcast,
			"connections", res.Connections, "disconnected", res.Disconnected, "gone", res.Gone, "failed", res.Failed)
		return res, nil
	}
	res, err := h.Service.Publish(ctx, req)
	if err != nil {
		log.Error("publish failed", "error", err.Error())
		return nil, messages.InvokeResponse_Error{Type: InternalErrorType, Message: notify.ErrorMessage(err)}
	}
	log.Info("published", "id", res.ID, "connections", res.Connections, "delivered", res.Delivered,
		"gone", res.Gone, "failed", res.Failed, "offlineUsers", len(res.OfflineUsers))
	return res, nil
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

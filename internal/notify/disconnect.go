package notify

import (
	"context"
	"sync/atomic"
	"time"

	"golang.org/x/sync/errgroup"
)

// DisconnectResult is PublishFunction's answer to a disconnect request
// (docs/PROTOCOL.md §4): Connections = Disconnected + Gone + Failed.
type DisconnectResult struct {
	Connections  int `json:"connections"`
	Disconnected int `json:"disconnected"`
	Gone         int `json:"gone"`
	Failed       int `json:"failed"`
}

// DisconnectTargets handles a disconnect request (req.Disconnect set):
// every user in req.Users is revoked first (their tokens issued before this
// second are refused at $connect for RevocationWindow), then every
// connection of the targets is sent a `disconnected` frame (revoked, with
// the reason) and closed. Nothing is stored in any inbox. If recording a
// revocation fails, nothing is closed and the error says so: a retry is
// safe.
func (s *Service) DisconnectTargets(ctx context.Context, req PublishRequest) (DisconnectResult, error) {
	var res DisconnectResult
	reason := ""
	if req.Disconnect != nil {
		reason = req.Disconnect.Reason
	}
	at := s.now().Truncate(time.Second)
	// Concurrently, each call bounded: up to 1,000 users, at most
	// answerConcurrency writes at once.
	var g errgroup.Group
	g.SetLimit(answerConcurrency)
	for _, u := range uniqueStrings(req.Users) {
		g.Go(func() error {
			callCtx, cancel := context.WithTimeout(ctx, s.callTimeout())
			defer cancel()
			if err := s.Connections.RevokeUser(callCtx, u, at, at.Add(RevocationWindow)); err != nil {
				return Wrap(EINTERNAL, err, "recording the revocation of user "+u+" failed; no socket was closed; retry")
			}
			return nil
		})
	}
	if err := g.Wait(); err != nil {
		return res, err
	}
	frame, err := EncodeJSON(DisconnectedFrame{Type: "disconnected", Code: DisconnectRevoked, Reason: reason})
	if err != nil {
		return res, Wrap(EINTERNAL, err, "marshal disconnected frame")
	}
	var disconnected, gone, failed atomic.Int64
	handed, walkErr := s.forEachConnection(ctx, req.Target(), s.concurrency(), s.now().Add(s.storeTimeout()), func(c Connection) {
		switch s.sendAndClose(ctx, s.Sender, c.ID, frame) {
		case closedNow:
			disconnected.Add(1)
		case closedGone:
			gone.Add(1)
		default:
			failed.Add(1)
		}
	})
	if walkErr != nil {
		if handed == 0 {
			return res, walkErr
		}
		// What was closed stays closed; the revocation already refuses the
		// rest's reconnection, and a retry closes them.
		LoggerFrom(ctx).Error("finding target connections failed part way", "closed", handed, "error", walkErr.Error())
	}
	res.Connections = handed
	res.Disconnected, res.Gone, res.Failed = int(disconnected.Load()), int(gone.Load()), int(failed.Load())
	return res, nil
}

package notify

import (
	"context"
	"sync"
	"sync/atomic"
	"time"

	"github.com/go-json-experiment/json"
	"github.com/go-json-experiment/json/jsontext"
	"golang.org/x/sync/errgroup"
	"golang.org/x/time/rate"
)

// Sharded fan-out: a publish that reaches more than FanoutThreshold
// connections hands them, in batches of FanoutBatchSize, to a Fanout (on AWS
// FanoutFunction, invoked through the Lambda API), FanoutShards batches at a
// time, and sums what the batches report. The answer is the same as when the
// publisher sends everything itself (docs/PROTOCOL.md §4). The defaults and
// the figures behind them are in BENCHMARKS.md.
const (
	// DefaultFanoutThreshold is the most connections a publish sends to
	// itself: one publisher posts 1,000 frames in about a third of a second
	// at 64 posts in flight and AWS's 20 ms round trip, less than what
	// splitting would save.
	DefaultFanoutThreshold = 1000
	// DefaultFanoutBatchSize is the number of connections of one batch: at
	// DefaultFanoutPostsPerSecond ÷ DefaultFanoutShards posts/s a batch
	// takes about half a second, and its request (ids, users, the frame of
	// up to 128 KiB) stays far under Lambda's 6 MB payload limit.
	DefaultFanoutBatchSize = 500
	// DefaultFanoutShards is the number of batches in flight per publish.
	DefaultFanoutShards = 10
	// DefaultFanoutPostsPerSecond is the Management API budget of one
	// publish's batches together: API Gateway's default account limit for
	// @connections calls (10,000/s). Each batch posts at most this divided
	// by the shards in flight.
	DefaultFanoutPostsPerSecond = 10000
	// MaxFanoutBatch is the most connections one batch may carry.
	MaxFanoutBatch = 5000
)

// Fanout delivers a batch of a publish's connections somewhere else: on AWS,
// FanoutFunction. internal/fanout implements it with the Lambda API.
type Fanout interface {
	// Fanout sends b.Frame to each of b.Connections and reports the counts.
	// An error means the batch's outcome is unknown: the publisher counts
	// all of its connections failed (they get the notification on sync).
	Fanout(ctx context.Context, b FanoutBatch) (FanoutResult, error)
}

// FanoutBatch is FanoutFunction's event: a frame and the connections to send
// it to.
type FanoutBatch struct {
	// Frame is the `notification` frame, sent as it is.
	Frame jsontext.Value `json:"frame"`
	// Connections to send it to, each once.
	Connections []FanoutConnection `json:"connections"`
	// PostsPerSecond caps the batch's posts per second (0: no cap).
	PostsPerSecond int `json:"postsPerSecond,omitempty"`
	// Deadline (epoch milliseconds; 0: none) is when the batch must have
	// answered: a send not started by then is counted failed, so the
	// publisher answers before its own timeout.
	Deadline int64 `json:"deadline,omitempty"`
}

// FanoutConnection is one connection of a batch.
type FanoutConnection struct {
	ID string `json:"id"`
	// UserID is set only for a user the publish named: the batch reports
	// which of them it reached (offlineUsers of the answer).
	UserID string `json:"userId,omitempty"`
	// ConnectedAt (epoch milliseconds) protects a fresh connection from 410
	// cleanup (GoneGrace).
	ConnectedAt int64 `json:"connectedAt,omitempty"`
	// TokenExpiresAt (epoch seconds; 0: none): a connection whose token has
	// expired is closed instead and counted gone.
	TokenExpiresAt int64 `json:"tokenExpiresAt,omitempty"`
}

// FanoutResult is FanoutFunction's answer: what became of a batch.
type FanoutResult struct {
	Delivered int `json:"delivered"`
	Gone      int `json:"gone"`
	Failed    int `json:"failed"`
	// Throttled counts the 429 answers that were retried (the Throttled
	// metric, docs/PROTOCOL.md §9).
	Throttled int `json:"throttled"`
	// ReachedUsers are the batch's named users (FanoutConnection.UserID)
	// with at least one connection delivered.
	ReachedUsers []string `json:"reachedUsers"`
}

// batchWhat names a fan-out batch in decoding errors.
const batchWhat = "fan-out batch"

// DecodeFanoutBatch decodes and validates FanoutFunction's event, strictly
// (an unknown field, a repeated key, a wrong type are refused), the frame
// byte for byte.
func DecodeFanoutBatch(payload []byte) (FanoutBatch, error) {
	b, err := decodeObject[FanoutBatch](payload, batchWhat, requestOptions)
	if err != nil {
		return FanoutBatch{}, err
	}
	return *b, b.Validate()
}

// Validate checks a batch: a JSON object frame of at most MaxFrameBytes, 1
// to MaxFanoutBatch connections, each with an id.
func (b FanoutBatch) Validate() error {
	switch {
	case len(b.Frame) == 0 || b.Frame.Kind() != '{':
		return invalidf("fan-out batch: frame must be a JSON object")
	case len(b.Frame) > MaxFrameBytes:
		return invalidf("fan-out batch: frame of %d bytes is over %d", len(b.Frame), MaxFrameBytes)
	case len(b.Connections) == 0 || len(b.Connections) > MaxFanoutBatch:
		return invalidf("fan-out batch: %d connections, want 1 to %d", len(b.Connections), MaxFanoutBatch)
	case b.PostsPerSecond < 0:
		return invalidf("fan-out batch: postsPerSecond must not be negative")
	case b.Deadline < 0:
		return invalidf("fan-out batch: deadline must not be negative")
	}
	for i, c := range b.Connections {
		if c.ID == "" {
			return invalidf("fan-out batch: connections[%d]: id is required", i)
		}
	}
	return nil
}

// DeliverBatch is what FanoutFunction does: it sends the batch's frame to
// each of its connections, at most Concurrency at a time and
// b.PostsPerSecond per second, exactly as a publish sends to its own (a 410
// forgets the connection unless younger than GoneGrace, an expired token
// closes it). The batch must be valid (DecodeFanoutBatch).
func (s *Service) DeliverBatch(ctx context.Context, b FanoutBatch) FanoutResult {
	now := s.now()
	goneBefore := now.Add(-s.goneGrace())
	// Answer in time: by the batch's deadline, and a little before this
	// function's own timeout, so that a slow batch reports what it did.
	deadline := time.Time{}
	if b.Deadline > 0 {
		deadline = time.UnixMilli(b.Deadline)
	}
	if d, ok := ctx.Deadline(); ok && (deadline.IsZero() || d.Add(-deadlineReserve).Before(deadline)) {
		deadline = d.Add(-deadlineReserve)
	}
	if !deadline.IsZero() {
		var cancel context.CancelFunc
		ctx, cancel = context.WithDeadline(ctx, deadline)
		defer cancel()
	}
	var limiter *rate.Limiter
	if b.PostsPerSecond > 0 {
		// A burst of 1: the budget holds from the first post (a full
		// bucket of N would let N posts through at once, on top of it).
		limiter = rate.NewLimiter(rate.Limit(b.PostsPerSecond), 1)
	}
	var delivered, gone, failed atomic.Int64
	var mu sync.Mutex
	reached := map[string]struct{}{}
	var g errgroup.Group
	g.SetLimit(s.concurrency())
	for _, fc := range uniqueBy(b.Connections, func(c FanoutConnection) string { return c.ID }) {
		g.Go(func() error {
			if limiter != nil {
				if err := limiter.Wait(ctx); err != nil {
					failed.Add(1)
					return nil
				}
			}
			if ctx.Err() != nil {
				failed.Add(1) // past the deadline: not started
				return nil
			}
			switch s.sendOne(ctx, fc.connection(), b.Frame, now, goneBefore) {
			case sentOK:
				delivered.Add(1)
				if fc.UserID != "" {
					mu.Lock()
					reached[fc.UserID] = struct{}{}
					mu.Unlock()
				}
			case sentGone:
				gone.Add(1)
			default:
				failed.Add(1)
			}
			return nil
		})
	}
	_ = g.Wait()
	res := FanoutResult{
		Delivered: int(delivered.Load()), Gone: int(gone.Load()), Failed: int(failed.Load()),
		ReachedUsers: make([]string, 0, len(reached)),
	}
	for u := range reached {
		res.ReachedUsers = append(res.ReachedUsers, u)
	}
	return res
}

// connection is the Connection a batch entry stands for.
func (c FanoutConnection) connection() Connection {
	conn := Connection{ID: c.ID, UserID: c.UserID}
	if c.ConnectedAt != 0 {
		conn.ConnectedAt = time.UnixMilli(c.ConnectedAt)
	}
	if c.TokenExpiresAt != 0 {
		conn.TokenExpiresAt = time.Unix(c.TokenExpiresAt, 0)
	}
	return conn
}

// fanoutConnection is c as a batch entry; its user only when named.
func fanoutConnection(c Connection, named bool) FanoutConnection {
	fc := FanoutConnection{ID: c.ID}
	if named {
		fc.UserID = c.UserID
	}
	if !c.ConnectedAt.IsZero() {
		fc.ConnectedAt = c.ConnectedAt.UnixMilli()
	}
	if !c.TokenExpiresAt.IsZero() {
		fc.TokenExpiresAt = c.TokenExpiresAt.Unix()
	}
	return fc
}

// MarshalFanoutBatch encodes a batch as FanoutFunction's event, the frame
// byte for byte: its strings keep their escapes (a caller's "\u00e9" in
// data, encoding/json's "\u2028") and invalid UTF-8 passes as it came.
func MarshalFanoutBatch(b FanoutBatch) ([]byte, error) {
	return json.Marshal(b, jsontext.PreserveRawStrings(true), jsontext.AllowInvalidUTF8(true))
}

// deadlineReserve is the time kept before a function's own deadline to
// answer: PublishFunction's batches must answer before it does, and a batch
// before its FanoutFunction times out.
const deadlineReserve = time.Second

// delivery is one publish's sends in progress: sent by the publisher itself
// (at most Concurrency at a time), or, once more than FanoutThreshold
// connections are found and a Fanout is set, handed out in batches.
type delivery struct {
	s     *Service
	ctx   context.Context
	frame []byte
	now   time.Time
	// goneBefore: a 410 forgets connections older than this.
	goneBefore time.Time
	// reached flags the named users delivered on at least one connection.
	// The map is read-only once built; the flags are atomic.
	reached map[string]*atomic.Bool
	// users are the named users, each once, in the request's order.
	users                   []string
	delivered, gone, failed atomic.Int64
	local, shards           errgroup.Group
	buffered                []Connection
	sharded                 bool
	threshold, batchSize    int
	// postsPerSecond is each batch's share of FanoutPostsPerSecond.
	postsPerSecond int
	// deadline is when every batch must have answered (zero: none).
	deadline time.Time
}

func newDelivery(ctx context.Context, s *Service, target Target, frame []byte) *delivery {
	now := s.now()
	d := &delivery{
		s: s, ctx: ctx, frame: frame, now: now, goneBefore: now.Add(-s.goneGrace()),
		reached:   make(map[string]*atomic.Bool, len(target.Users)),
		users:     uniqueStrings(target.Users),
		threshold: positiveOr(s.FanoutThreshold, DefaultFanoutThreshold),
		batchSize: positiveOr(s.FanoutBatchSize, DefaultFanoutBatchSize),
	}
	if dl, ok := ctx.Deadline(); ok {
		d.deadline = dl.Add(-deadlineReserve)
	}
	shards := positiveOr(s.FanoutShards, DefaultFanoutShards)
	d.postsPerSecond = max(1, positiveOr(s.FanoutPostsPerSecond, DefaultFanoutPostsPerSecond)/shards)
	for _, u := range target.Users {
		d.reached[u] = new(atomic.Bool)
	}
	d.local.SetLimit(s.concurrency())
	d.shards.SetLimit(shards)
	return d
}

// add takes the next connection of the walk (never called concurrently).
func (d *delivery) add(c Connection) {
	if d.s.Fanout == nil {
		d.sendLocal(c)
		return
	}
	d.buffered = append(d.buffered, c)
	if !d.sharded && len(d.buffered) > d.threshold {
		d.sharded = true
		LoggerFrom(d.ctx).Info("fanning out in batches", "over", d.threshold, "batchSize", d.batchSize)
	}
	for d.sharded && len(d.buffered) >= d.batchSize {
		d.dispatch(d.buffered[:d.batchSize])
		d.buffered = d.buffered[d.batchSize:]
	}
}

// finish sends what is buffered and waits for every send and batch.
func (d *delivery) finish() {
	if d.sharded {
		if len(d.buffered) > 0 {
			d.dispatch(d.buffered)
		}
	} else {
		for _, c := range d.buffered {
			d.sendLocal(c)
		}
	}
	d.buffered = nil
	_ = d.local.Wait()
	_ = d.shards.Wait()
}

func (d *delivery) sendLocal(c Connection) {
	d.local.Go(func() error {
		d.count(d.s.sendOne(d.ctx, c, d.frame, d.now, d.goneBefore), c.UserID)
		return nil
	})
}

func (d *delivery) count(o sendOutcome, userID string) {
	switch o {
	case sentOK:
		d.delivered.Add(1)
		if flag := d.reached[userID]; flag != nil {
			flag.Store(true)
		}
	case sentGone:
		d.gone.Add(1)
	default:
		d.failed.Add(1)
	}
}

// dispatch hands a batch to the Fanout; a batch that fails, or answers for
// fewer connections than it carried, counts the rest failed.
func (d *delivery) dispatch(conns []Connection) {
	n := len(conns)
	batch := FanoutBatch{Frame: d.frame, PostsPerSecond: d.postsPerSecond, Connections: make([]FanoutConnection, n)}
	if !d.deadline.IsZero() {
		batch.Deadline = d.deadline.UnixMilli()
	}
	for i, c := range conns {
		batch.Connections[i] = fanoutConnection(c, d.reached[c.UserID] != nil)
	}
	d.shards.Go(func() error {
		ctx := d.ctx
		if !d.deadline.IsZero() {
			var cancel context.CancelFunc
			ctx, cancel = context.WithDeadline(ctx, d.deadline.Add(deadlineReserve/2))
			defer cancel()
		}
		res, err := d.s.Fanout.Fanout(ctx, batch)
		if err == nil && (min(res.Delivered, res.Gone, res.Failed) < 0 || res.Delivered+res.Gone+res.Failed > n) {
			err = Errorf(EINTERNAL, "fan-out: an answer for more connections than the batch's %d: %+v", n, res)
		}
		if err != nil {
			d.failed.Add(int64(n))
			LoggerFrom(d.ctx).Error("fan-out batch failed; its connections get the notification on sync",
				"connections", n, "error", err.Error())
			return nil
		}
		d.delivered.Add(int64(res.Delivered))
		d.gone.Add(int64(res.Gone))
		d.failed.Add(int64(res.Failed + n - res.Delivered - res.Gone - res.Failed))
		for _, u := range res.ReachedUsers {
			if flag := d.reached[u]; flag != nil {
				flag.Store(true)
			}
		}
		return nil
	})
}

// counts returns the totals once finish has returned.
func (d *delivery) counts() deliveryCounts {
	c := deliveryCounts{
		delivered: int(d.delivered.Load()), gone: int(d.gone.Load()), failed: int(d.failed.Load()),
		offlineUsers: []string{},
	}
	for _, u := range d.users {
		if !d.reached[u].Load() {
			c.offlineUsers = append(c.offlineUsers, u)
		}
	}
	return c
}

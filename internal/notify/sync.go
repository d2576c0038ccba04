package notify

import (
	"bytes"
	"context"
	"encoding/json"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/oklog/ulid/v2"
)

// SyncOverlap is how far before `after` a resuming sync starts: publishes on
// different machines store out of id order by up to a few seconds, and the
// overlap is what keeps "nothing lost" true (docs/PROTOCOL.md §5).
const SyncOverlap = 30 * time.Second

// MaxUnread is where unread counting stops: 100 means "100 or more".
const MaxUnread = 100

// SyncedFrame answers `sync`.
type SyncedFrame struct {
	Type          string            `json:"type"`
	Notifications []json.RawMessage `json:"notifications"`
	Cursor        string            `json:"cursor"`
	More          bool              `json:"more"`
	Gap           bool              `json:"gap"`
	Unread        int               `json:"unread"`
	Ref           string            `json:"ref,omitempty"`
}

// ReadFrame answers `read`, on every socket of the user.
type ReadFrame struct {
	Type   string   `json:"type"`
	IDs    []string `json:"ids"`
	Unread int      `json:"unread"`
	Ref    string   `json:"ref,omitempty"`
}

// viewer is who is asking: a connection's user and the streams it may see.
type viewer struct {
	userID  string
	streams []string
}

// viewerOf is the viewer of a stored connection.
func viewerOf(c Connection) viewer {
	streams := make([]string, 0, len(c.Groups)+2)
	streams = append(streams, UserStream(c.UserID))
	for _, g := range c.Groups {
		streams = append(streams, GroupStream(g))
	}
	return viewer{userID: c.UserID, streams: append(streams, BroadcastStream)}
}

// viewerError explains why the sending connection could not be read.
func viewerError(err error) error {
	if ErrorCode(err) == ENOTFOUND {
		return Wrap(EINTERNAL, err, "this connection is not registered")
	}
	return Wrap(EINTERNAL, err, "reading this connection failed")
}

func (s *Service) sync(ctx context.Context, v viewer, req SyncRequest, ref string) (*SyncedFrame, error) {
	frame := &SyncedFrame{Type: "synced", Ref: ref}
	var page []StoredNotification
	var err error
	switch {
	case req.Cursor != "":
		frame.Cursor = req.Cursor
		page, frame.More, err = s.Inbox.ListAfter(ctx, v.streams, req.Cursor, req.Limit)
	case req.After != "":
		frame.Cursor = req.After
		after := ulid.MustParseStrict(req.After).Timestamp()
		frame.Gap = after.Before(s.now().Add(-s.retention()))
		page, frame.More, err = s.Inbox.ListAfter(ctx, v.streams, lowestIDAt(after.Add(-SyncOverlap)), req.Limit)
	default:
		page, err = s.Inbox.ListLatest(ctx, v.streams, req.Limit)
	}
	if err != nil {
		return nil, Wrap(EINTERNAL, err, "reading the inbox failed")
	}
	// The page's read flags and the unread count, at once: each is a
	// constant number of store requests.
	type readState struct {
		read []bool
		err  error
	}
	state := make(chan readState, 1)
	go func() {
		if len(page) == 0 {
			state <- readState{}
			return
		}
		ids := make([]string, len(page))
		for i, n := range page {
			ids[i] = n.ID
		}
		read, err := s.Inbox.ReadState(ctx, v.userID, ids)
		state <- readState{read, err}
	}()
	frame.Unread, err = s.Inbox.CountUnread(ctx, v.userID, v.streams, MaxUnread)
	rs := <-state
	if err != nil {
		return nil, Wrap(EINTERNAL, err, "counting unread notifications failed")
	}
	if rs.err != nil {
		return nil, Wrap(EINTERNAL, rs.err, "reading the read state failed")
	}
	if len(rs.read) != len(page) {
		return nil, Errorf(EINTERNAL, "the read state of %d notifications has %d flags", len(page), len(rs.read))
	}
	fitFrame(frame, page, rs.read, req.After == "" && req.Cursor == "")
	return frame, nil
}

// fitFrame puts page into frame, each notification with its read flag
// (read[i] for page[i]), dropping what would make the frame exceed
// MaxFrameBytes: the newest when resuming (more then says they follow), the
// oldest for a plain sync, which keeps the newest that fit.
func fitFrame(frame *SyncedFrame, page []StoredNotification, read []bool, keepNewest bool) {
	// The frame's other fields, generously: with a 64-character ref of
	// escaped characters they stay under 512 bytes.
	const envelope = 512
	size := envelope
	// Each notification costs its payload with the read flag, and a comma.
	cost := func(i int) int { return len(page[i].Payload) + readFieldLen(read[i]) + 1 }
	from, to := 0, len(page)
	if keepNewest {
		for from = len(page); from > 0 && size+cost(from-1) <= MaxFrameBytes; from-- {
			size += cost(from - 1)
		}
	} else {
		for to = 0; to < len(page) && size+cost(to) <= MaxFrameBytes; to++ {
			size += cost(to)
		}
		if to < len(page) {
			frame.More = true
		}
	}
	frame.Notifications = make([]json.RawMessage, 0, to-from)
	for i := from; i < to; i++ {
		frame.Notifications = append(frame.Notifications, withRead(page[i].Payload, read[i]))
	}
	if to > from {
		frame.Cursor = page[to-1].ID
	}
}

// readFieldLen is the most withRead adds to a payload: `,"read":false`
// (13 bytes) or `,"read":true` (12).
func readFieldLen(read bool) int {
	if read {
		return len(`,"read":true`)
	}
	return len(`,"read":false`)
}

// withRead returns payload, a JSON object as stored, with "read" added as
// its last member, without decoding it: the member goes before the closing
// brace. A payload that is not an object (which the inbox never holds) is
// returned unchanged.
func withRead(payload json.RawMessage, read bool) json.RawMessage {
	body := bytes.Trim(payload, " \t\r\n")
	if len(body) < 2 || body[0] != '{' || body[len(body)-1] != '}' {
		return payload
	}
	inner := bytes.TrimRight(body[:len(body)-1], " \t\r\n")
	out := make([]byte, 0, len(inner)+readFieldLen(read)+1)
	out = append(out, inner...)
	// Only an empty object's inside ends with its opening brace: no member
	// value can end with one.
	if inner[len(inner)-1] != '{' {
		out = append(out, ',')
	}
	out = strconv.AppendBool(append(out, `"read":`...), read)
	return append(out, '}')
}

func (s *Service) read(ctx context.Context, sender Sender, connectionID string, v viewer, req ReadRequest, ref string) error {
	ids := []string{}
	var err error
	if req.All {
		err = s.markAllRead(ctx, v)
	} else if ids, err = s.Inbox.VisibleIDs(ctx, v.streams, req.IDs); err == nil && len(ids) > 0 {
		err = s.Inbox.MarkRead(ctx, v.userID, ids, s.now().Add(s.retention()))
	}
	if err != nil {
		return Wrap(EINTERNAL, err, "storing the read state failed")
	}
	if ids == nil {
		ids = []string{}
	}
	unread, err := s.Inbox.CountUnread(ctx, v.userID, v.streams, MaxUnread)
	if err != nil {
		return Wrap(EINTERNAL, err, "counting unread notifications failed")
	}
	// Every tab of the user updates its badge; only the asking socket gets
	// the ref back.
	others, err := EncodeJSON(ReadFrame{Type: "read", IDs: ids, Unread: unread})
	if err != nil {
		return Wrap(EINTERNAL, err, "marshal read frame")
	}
	own, err := EncodeJSON(ReadFrame{Type: "read", IDs: ids, Unread: unread, Ref: ref})
	if err != nil {
		return Wrap(EINTERNAL, err, "marshal read frame")
	}
	send := func(id string, data []byte) {
		if err := sender.Send(ctx, id, data); err != nil && ErrorCode(err) != EGONE {
			LoggerFrom(ctx).Warn("read answer not delivered", "to", id, "error", err.Error())
		}
	}
	// Concurrently, bounded: one after another, a user's sockets at the
	// Management API's round trip would outlast the function's timeout.
	var ownSent atomic.Bool
	_, walkErr := s.forEachConnection(ctx, Target{Users: []string{v.userID}}, answerConcurrency, s.now().Add(s.storeTimeout()), func(c Connection) {
		if c.ID == connectionID {
			ownSent.Store(true)
			send(c.ID, own)
		} else {
			send(c.ID, others)
		}
	})
	if walkErr != nil {
		LoggerFrom(ctx).Warn("finding the user's other sockets failed", "error", walkErr.Error())
	}
	// The walk may not list this socket (an eventually consistent store):
	// it gets its answer all the same, once.
	if !ownSent.Load() {
		send(connectionID, own)
	}
	return nil
}

// markAllRead marks everything visible now as read. A watermark at "now"
// would also cover notifications minted before now but still being stored
// (publishes store out of id order by up to a few seconds), which the user
// has not seen. So the watermark stops SyncOverlap before now, and what is
// visible after it is marked one by one.
func (s *Service) markAllRead(ctx context.Context, v viewer) error {
	cut := highestIDAt(s.now().Add(-SyncOverlap))
	if err := s.Inbox.MarkAllRead(ctx, v.userID, cut); err != nil {
		return err
	}
	expires := s.now().Add(s.retention())
	for after := cut; ; {
		page, more, err := s.Inbox.ListAfter(ctx, v.streams, after, MaxReadIDs)
		if err != nil {
			return err
		}
		if len(page) == 0 {
			return nil
		}
		recent := make([]string, len(page))
		for i, n := range page {
			recent[i] = n.ID
		}
		if err := s.Inbox.MarkRead(ctx, v.userID, recent, expires); err != nil {
			return err
		}
		if !more {
			return nil
		}
		after = recent[len(recent)-1]
	}
}

// lowestIDAt is the smallest id of time t: every id minted at t or later
// sorts after it.
func lowestIDAt(t time.Time) string {
	if t.Before(time.UnixMilli(0)) {
		t = time.UnixMilli(0)
	}
	var id ulid.ULID
	_ = id.SetTime(ulid.Timestamp(t))
	return id.String()
}

// highestIDAt is the largest id of time t: every id minted at t or earlier
// sorts before or at it.
func highestIDAt(t time.Time) string {
	var id ulid.ULID
	_ = id.SetTime(ulid.Timestamp(t))
	for i := 6; i < len(id); i++ {
		id[i] = 0xFF
	}
	return id.String()
}

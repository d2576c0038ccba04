package web_test

// Browser tests of the client's v1.1 behaviour (docs/PROTOCOL.md §2, §3, §8):
// signed out by the server (`revoked`), displaced by the user's other tabs
// (`too_many_connections`), and replacing its socket before its token
// expires.

import (
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/workorders/notify/internal/devstack"
)

// wsRecorder runs in every page before its scripts: it records each
// WebSocket the page opens in window.wsLog — its token, when it opened and
// closed (Date.now()), its close code, and the frames it received and sent.
const wsRecorder = `(() => {
  const Native = window.WebSocket;
  window.wsLog = [];
  window.WebSocket = class extends Native {
    constructor(url, protocols) {
      super(url, protocols);
      const rec = { token: new URL(url).searchParams.get("token") || "", created: Date.now(),
        opened: 0, closed: 0, code: 0, received: [], sent: [] };
      window.wsLog.push(rec);
      this.addEventListener("open", () => (rec.opened = Date.now()));
      this.addEventListener("message", (ev) => rec.received.push(String(ev.data)));
      this.addEventListener("close", (ev) => ((rec.closed = Date.now()), (rec.code = ev.code)));
      this.rec = rec;
    }
    send(data) {
      this.rec.sent.push(String(data));
      return super.send(data);
    }
  };
})();`

// socket is one entry of window.wsLog.
type socket struct {
	Token    string   `json:"token"`
	Created  int64    `json:"created"`
	Opened   int64    `json:"opened"` // Unix ms, 0 if it never opened
	Closed   int64    `json:"closed"` // Unix ms, 0 while open
	Code     int      `json:"code"`
	Received []string `json:"received"`
	Sent     []string `json:"sent"`
}

func (p *tab) sockets() []socket { return eval[[]socket](p, `wsLog`) }

// frames decodes the frames a socket received.
func (s socket) frames(t *testing.T) []map[string]any {
	t.Helper()
	var out []map[string]any
	for _, raw := range s.Received {
		var f map[string]any
		if err := json.Unmarshal([]byte(raw), &f); err != nil {
			t.Fatalf("the page received %q, not a JSON object: %v", raw, err)
		}
		out = append(out, f)
	}
	return out
}

func (s socket) String() string {
	return fmt.Sprintf("{opened %d closed %d code %d, %d frames in, %d out}", s.Opened, s.Closed, s.Code, len(s.Received), len(s.Sent))
}

// recordStatus starts keeping the page client's status changes in
// window.statusLog.
func (p *tab) recordStatus() {
	p.t.Helper()
	eval[bool](p, `(window.statusLog = [], notifyClient.on("status", s => statusLog.push(s)), true)`)
}

// invoke invokes PublishFunction with a raw request and decodes its answer.
func (s *stack) invoke(req map[string]any) map[string]any {
	s.t.Helper()
	var res map[string]any
	s.call(req, &res)
	return res
}

// handshake tries a WebSocket upgrade with token as a browser on the page's
// origin would, and returns the HTTP status of the answer (101 when it
// opens; the socket is then closed at once).
func (s *stack) handshake(token string) int {
	s.t.Helper()
	conn, err := net.DialTimeout("tcp", s.addr, 5*time.Second)
	if err != nil {
		s.t.Fatal(err)
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(10 * time.Second))
	fmt.Fprintf(conn, "GET /?token=%s HTTP/1.1\r\nHost: %s\r\nOrigin: http://%s\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"+
		"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n", url.QueryEscape(token), s.addr, s.addr)
	var status int
	var proto string
	if _, err := fmt.Fscan(conn, &proto, &status); err != nil {
		s.t.Fatalf("reading the handshake's answer: %v", err)
	}
	return status
}

// claims reads a token's payload (the stack signed it; no need to verify).
func claims(t *testing.T, token string) jwt.MapClaims {
	t.Helper()
	c := jwt.MapClaims{}
	if _, _, err := jwt.NewParser().ParseUnverified(token, c); err != nil {
		t.Fatalf("token %q: %v", token, err)
	}
	return c
}

func unixClaim(t *testing.T, c jwt.MapClaims, name string) int64 {
	t.Helper()
	v, ok := c[name].(float64)
	if !ok {
		t.Fatalf("claims %v: no numeric %s", c, name)
	}
	return int64(v)
}

// waitNextSecond sleeps until the Unix second after sec has begun, so that
// a revocation now is later than a token issued in sec (iat has whole
// seconds).
func waitNextSecond(sec int64) {
	time.Sleep(time.Until(time.Unix(sec+1, 0)) + 20*time.Millisecond)
}

// noErrorFrames fails the test for any error frame (token_expired above
// all) that a socket of the page received.
func noErrorFrames(t *testing.T, name string, sockets []socket) {
	t.Helper()
	for i, s := range sockets {
		for _, f := range s.frames(t) {
			if f["type"] == "error" || f["code"] == "token_expired" {
				t.Errorf("%s, socket %d: received %v", name, i, f)
			}
		}
	}
}

// (a) The server signs the user out (a disconnect request through the
// Invoke API): the page's socket gets `disconnected` (revoked, with the
// reason) and closes; the client reconnects with a fresh token from its
// token function — the old one is now refused — and notifications published
// afterwards arrive.
func TestRevokedReconnectsWithFreshToken(t *testing.T) {
	s := startStack(t, "", nil)
	p := openPage(t, "tab", s.pageURL(pageQuery))
	p.recordStatus()
	first := s.publish(map[string]any{"users": []string{"demo"},
		"notification": notification("workorder.assigned", "WO-1 assigned to you", "WO-1")})
	p.waitItems(1)

	old := p.sockets()
	if len(old) != 1 {
		t.Fatalf("sockets before the sign-out: %v, want 1", old)
	}
	oldToken := old[0].Token
	waitNextSecond(unixClaim(t, claims(t, oldToken), "iat")) // so that the old token is revoked
	res := s.invoke(map[string]any{"users": []string{"demo"}, "disconnect": map[string]any{"reason": "signed out"}})
	if res["disconnected"] != 1.0 || res["connections"] != 1.0 {
		t.Fatalf("disconnect request: %v, want the page's one connection disconnected", res)
	}

	p.wait(`wsLog.length >= 2 && wsLog[wsLog.length - 1].opened > 0 &&
		document.querySelector("#status").dataset.status === "open"`, "a new socket, open and synced")
	sockets := p.sockets()
	var got []map[string]any
	for _, f := range sockets[0].frames(t) {
		if f["type"] == "disconnected" {
			got = append(got, f)
		}
	}
	if len(got) != 1 || got[0]["code"] != "revoked" || got[0]["reason"] != "signed out" {
		t.Errorf("disconnected frames on the old socket: %v, want one, revoked, reason \"signed out\"", got)
	}
	if sockets[0].Closed == 0 {
		t.Errorf("the old socket %v is still open", sockets[0])
	}
	latest := sockets[len(sockets)-1]
	if latest.Token == oldToken {
		t.Fatalf("the client reconnected with the revoked token")
	}
	if st := s.handshake(oldToken); st != http.StatusUnauthorized {
		t.Errorf("connecting with the old token after the sign-out: HTTP %d, want 401", st)
	}
	if iat, revoked := unixClaim(t, claims(t, latest.Token), "iat"), unixClaim(t, claims(t, oldToken), "iat"); iat <= revoked {
		t.Errorf("the new token's iat %d is not later than the old one's %d", iat, revoked)
	}
	// The demo page tells the user (the client's `disconnected` event).
	p.wait(`[...document.querySelectorAll(".toast-title")].some(e => e.textContent === "Signed out by the server")`, "the sign-out toast")

	after := s.publish(map[string]any{"users": []string{"demo"},
		"notification": notification("workorder.status", "WO-2 moved to In progress", "WO-2")})
	if after.Delivered != 1 {
		t.Fatalf("publish after the reconnect: %+v, want delivered 1", after)
	}
	p.waitItems(2)
	var ids []string
	for _, it := range p.items() {
		ids = append(ids, it.ID)
	}
	if want := []string{after.ID, first.ID}; !slices.Equal(ids, want) {
		t.Errorf("list %v, want %v", ids, want)
	}
	log := eval[[]string](p, `statusLog`)
	if !slices.Equal(log, []string{"reconnecting", "open"}) {
		t.Errorf("status changes %v, want [reconnecting open]", log)
	}
	if n := len(p.sockets()); n != 2 {
		t.Errorf("%d sockets, want 2 (one reconnect)", n)
	}
}

// (a') A client given a plain-string token cannot get a fresh one: signed
// out, it tries its token once more, is refused (401), and stops with status
// "unauthorized". The demo page's own client, of another user, is left
// alone.
func TestRevokedStringTokenUnauthorized(t *testing.T) {
	s := startStack(t, "", nil)
	p := openPage(t, "tab", s.pageURL(pageQuery))
	token, err := s.cur.Load().DevToken("kiosk-7", nil, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	eval[bool](p, fmt.Sprintf(`(import("/notify.js").then(({ NotifyClient }) => {
		const c = new NotifyClient("ws://" + location.host + "/", { token: %q, backoffBase: 50, backoffCap: 400 });
		window.kiosk = { client: c, statuses: [], disconnected: [], errors: [] };
		c.on("status", (s) => kiosk.statuses.push(s));
		c.on("disconnected", (d) => kiosk.disconnected.push(d));
		c.on("error", (e) => kiosk.errors.push(e.code || e.message));
		c.connect();
	}), true)`, token))
	p.wait(`window.kiosk?.client.status === "open"`, "the string-token client to open")

	waitNextSecond(unixClaim(t, claims(t, token), "iat"))
	res := s.invoke(map[string]any{"users": []string{"kiosk-7"}, "disconnect": map[string]any{}})
	if res["disconnected"] != 1.0 {
		t.Fatalf("disconnect request: %v, want one connection disconnected", res)
	}
	p.wait(`kiosk.client.status === "unauthorized"`, `the string-token client to stop "unauthorized"`)
	statuses := eval[[]string](p, `kiosk.statuses`)
	if !slices.Equal(statuses, []string{"connecting", "open", "reconnecting", "unauthorized"}) {
		t.Errorf("statuses %v, want [connecting open reconnecting unauthorized]", statuses)
	}
	if d := eval[[]map[string]string](p, `kiosk.disconnected`); len(d) != 1 || d[0]["code"] != "revoked" || d[0]["reason"] != "" {
		t.Errorf("disconnected events %v, want one, revoked, no reason", d)
	}
	if errs := eval[[]string](p, `kiosk.errors`); !slices.Contains(errs, "unauthorized") {
		t.Errorf("error events %v, want an unauthorized one", errs)
	}
	// Its two sockets (the first, and the one refused), then nothing more.
	time.Sleep(time.Second)
	var kiosk []socket
	for _, sk := range p.sockets() {
		if sk.Token == token {
			kiosk = append(kiosk, sk)
		}
	}
	if len(kiosk) != 2 || kiosk[1].Opened != 0 {
		t.Errorf("the string-token client's sockets: %v, want 2, the second refused", kiosk)
	}
	if p.status() != "open" {
		t.Errorf("the page's own client (user demo): %q, want open", p.status())
	}
}

// (b) A user's connections are capped (MAX_CONNECTIONS_PER_USER=2 here):
// when a third tab connects, the oldest gets `disconnected`
// (too_many_connections) and stops, "closed", without reconnecting, while
// the two others keep receiving.
func TestTooManyConnectionsStopsOldest(t *testing.T) {
	s := startStack(t, "", map[string]string{"MAX_CONNECTIONS_PER_USER": "2"})
	if got := s.cur.Load().FunctionEnv("ConnectFunction")["MAX_CONNECTIONS_PER_USER"]; got != "2" {
		t.Fatalf("ConnectFunction's MAX_CONNECTIONS_PER_USER is %q, want 2", got)
	}
	oldest := openPage(t, "tab 1", s.pageURL(pageQuery))
	oldest.recordStatus()
	second := openPage(t, "tab 2", s.pageURL(pageQuery))
	third := openPage(t, "tab 3", s.pageURL(pageQuery))

	oldest.waitStatus("closed")
	oldest.wait(`!document.querySelector("#displaced").hidden`, "the notice that another tab took its place")
	time.Sleep(1500 * time.Millisecond) // backoffs here are at most 400 ms: a reconnect would show by now
	if st := oldest.status(); st != "closed" {
		t.Errorf("tab 1: status %q, want closed", st)
	}
	if log := eval[[]string](oldest, `statusLog`); !slices.Equal(log, []string{"closed"}) {
		t.Errorf("tab 1: status changes %v, want [closed]", log)
	}
	sockets := oldest.sockets()
	if len(sockets) != 1 || sockets[0].Closed == 0 {
		t.Fatalf("tab 1's sockets: %v, want its first one only, closed", sockets)
	}
	var codes []any
	for _, f := range sockets[0].frames(t) {
		if f["type"] == "disconnected" {
			codes = append(codes, f["code"])
		}
	}
	if !slices.Equal(codes, []any{"too_many_connections"}) {
		t.Errorf("tab 1's disconnected frames: %v, want one, too_many_connections", codes)
	}

	res := s.publish(map[string]any{"users": []string{"demo"},
		"notification": notification("workorder.assigned", "WO-9 assigned to you", "WO-9")})
	if res.Connections != 2 || res.Delivered != 2 {
		t.Fatalf("publish: %+v, want 2 connections, delivered 2 (tabs 2 and 3)", res)
	}
	for _, p := range []*tab{second, third} {
		p.waitItems(1)
		if items := p.items(); items[0].ID != res.ID {
			t.Errorf("%s: list %v, want %s", p.name, items, res.ID)
		}
		if p.status() != "open" || len(p.sockets()) != 1 {
			t.Errorf("%s: status %q, sockets %v; want open on its first socket", p.name, p.status(), p.sockets())
		}
	}
	if n := len(oldest.items()); n != 0 {
		t.Errorf("tab 1 shows %d notifications, want none", n)
	}
}

// (c) Tokens that live 8 s: the client replaces its socket before each
// token's exp with one opened with a fresh token, which syncs from the last
// id seen before the old one closes; notifications published after each
// replacement arrive, once each; the status never leaves "open", and no
// `token_expired` is ever received.
func TestTokenRefreshBeforeExpiry(t *testing.T) {
	const ttl = 8 * time.Second
	s := startStack(t, "", nil)
	s.tokenTTL.Store(int64(ttl))
	p := openPage(t, "tab", s.pageURL(pageQuery))
	p.recordStatus()

	var ids []string
	publish := func(i int) {
		res := s.publish(map[string]any{"users": []string{"demo"},
			"notification": notification("workorder.status", fmt.Sprintf("WO-%d moved to In progress", i), fmt.Sprintf("WO-%d", i))})
		ids = append(ids, res.ID)
		p.waitItems(len(ids))
	}
	publish(0)
	// Two replacements, each waited for until the old socket has closed;
	// then a notification.
	for n := 2; n <= 3; n++ {
		p.wait(fmt.Sprintf(`wsLog.length >= %d && wsLog[%d].opened > 0 && wsLog[%d].closed > 0`, n, n-1, n-2),
			fmt.Sprintf("replacement %d", n-1))
		publish(n - 1)
	}

	sockets := p.sockets()
	if len(sockets) != 3 {
		t.Fatalf("sockets: %v, want 3 (two replacements)", sockets)
	}
	for i := 1; i < len(sockets); i++ {
		prev, cur := sockets[i-1], sockets[i]
		prevClaims := claims(t, prev.Token)
		exp := unixClaim(t, prevClaims, "exp") * 1000
		if cur.Token == prev.Token {
			t.Errorf("socket %d reused socket %d's token", i, i-1)
		}
		if unixClaim(t, claims(t, cur.Token), "exp")*1000 <= exp {
			t.Errorf("socket %d's token expires no later than socket %d's", i, i-1)
		}
		if cur.Opened == 0 || cur.Opened >= exp {
			t.Errorf("socket %d opened at %d, want before socket %d's token's exp %d", i, cur.Opened, i-1, exp)
		}
		if prev.Closed == 0 || prev.Closed >= exp || prev.Closed < cur.Opened {
			t.Errorf("socket %d closed at %d, want after socket %d opened (%d) and before its token's exp %d", i-1, prev.Closed, i, cur.Opened, exp)
		}
		if prev.Code != 1000 {
			t.Errorf("socket %d closed with %d, want 1000 (by the client)", i-1, prev.Code)
		}
		// The new socket resumed after what the page had seen: `sync` with `after`.
		var first map[string]any
		if len(cur.Sent) == 0 || json.Unmarshal([]byte(cur.Sent[0]), &first) != nil {
			t.Fatalf("socket %d sent %q, want a sync first", i, cur.Sent)
		}
		if first["action"] != "sync" || first["after"] != ids[i-1] {
			t.Errorf("socket %d's first frame %v, want a sync after %s", i, first, ids[i-1])
		}
	}
	noErrorFrames(t, "tab", sockets)
	slices.Reverse(ids)
	var got []string
	for _, it := range p.items() {
		got = append(got, it.ID)
	}
	if !slices.Equal(got, ids) {
		t.Errorf("list %v, want %v (each once)", got, ids)
	}
	if log := eval[[]string](p, `statusLog`); len(log) != 0 {
		t.Errorf("status changes %v while the sockets were replaced, want none (always open)", log)
	}
	if strings.Contains(strings.Join(eval[[]string](p, `[...document.querySelectorAll(".toast-title")].map(e => e.textContent)`), "|"), "Signed out") {
		t.Error("the page showed a sign-out")
	}
}

// (d) A token whose exp+60 s passes while its socket is open: issued 82 s
// ago, expired 52 s ago, so still accepted for the 60 s skew. (By this
// machine's clock it has expired already, so the client goes by its 30 s
// lifetime and would replace it only 22.5 s after opening: too late here.)
// The server answers the client's next ping `token_expired` and closes the
// socket. A client with a token function reconnects with a fresh token and
// keeps receiving; one with a plain string stops, "unauthorized", without
// trying the expired token again.
func TestTokenExpiredReconnectsOrStops(t *testing.T) {
	s := startStack(t, "", nil)
	p := openPage(t, "tab", s.pageURL(pageQuery))
	secret := s.cur.Load().FunctionEnv("ConnectFunction")["JWT_SECRET"]
	stale := func(sub string) string {
		token, err := devstack.SignToken(devstack.TokenClaims{Secret: secret, Subject: sub,
			Now: time.Now().Add(-82 * time.Second), TTL: 30 * time.Second})
		if err != nil {
			t.Fatal(err)
		}
		return token
	}
	fnStale, strStale := stale("late-fn"), stale("late-str")
	eval[bool](p, fmt.Sprintf(`(import("/notify.js").then(({ NotifyClient }) => {
		const make = (name, token) => {
			const c = new NotifyClient("ws://" + location.host + "/", { token, pingInterval: 300, backoffBase: 50, backoffCap: 400 });
			const rec = (window[name] = { client: c, statuses: [], errors: [], notifications: [] });
			c.on("status", (s) => rec.statuses.push(s));
			c.on("error", (e) => rec.errors.push(e.code || e.message));
			c.on("notification", (n) => rec.notifications.push(n.id));
			c.connect();
		};
		let first = %q;
		make("fn", async () => {
			if (first) return [first, (first = "")][0];
			const res = await fetch("/dev/token?sub=late-fn&groups=", { cache: "no-store" });
			return (await res.json()).token;
		});
		make("str", %q);
	}), true)`, fnStale, strStale))

	p.wait(`window.str?.client.status === "unauthorized"`, `the string-token client to stop "unauthorized"`)
	p.wait(`window.fn?.client.status === "open" && wsLog.filter(s => s.opened > 0).length >= 4`,
		"the function-token client to reconnect") // the page's socket, fn's two, str's one
	if got := eval[[]string](p, `str.statuses`); !slices.Equal(got, []string{"connecting", "open", "unauthorized"}) {
		t.Errorf("string-token client: statuses %v, want [connecting open unauthorized]", got)
	}
	if got := eval[[]string](p, `fn.statuses`); !slices.Equal(got, []string{"connecting", "open", "reconnecting", "open"}) {
		t.Errorf("function-token client: statuses %v, want [connecting open reconnecting open]", got)
	}
	for _, name := range []string{"fn", "str"} {
		if errs := eval[[]string](p, name+`.errors`); !slices.Contains(errs, "token_expired") {
			t.Errorf("%s client: error events %v, want token_expired", name, errs)
		}
	}
	byToken := map[string][]socket{}
	for _, sk := range p.sockets() {
		byToken[sk.Token] = append(byToken[sk.Token], sk)
	}
	for name, token := range map[string]string{"function-token": fnStale, "string-token": strStale} {
		sks := byToken[token]
		if len(sks) != 1 || sks[0].Closed == 0 {
			t.Fatalf("%s client: sockets with the expired token %v, want one, closed", name, sks)
		}
		var expired bool
		for _, f := range sks[0].frames(t) {
			expired = expired || (f["type"] == "error" && f["code"] == "token_expired")
		}
		if !expired {
			t.Errorf("%s client: its socket received %q, want a token_expired error", name, sks[0].Received)
		}
	}

	res := s.publish(map[string]any{"users": []string{"late-fn", "late-str"},
		"notification": notification("workorder.assigned", "WO-5 assigned to you", "WO-5")})
	if res.Delivered != 1 || !slices.Equal(res.OfflineUsers, []string{"late-str"}) {
		t.Fatalf("publish: %+v, want delivered 1 (the function-token client), late-str offline", res)
	}
	p.wait(fmt.Sprintf(`fn.notifications.includes(%q)`, res.ID), "the notification on the reconnected client")
}

package web_test

// Browser tests: the demo page and notify.js in Debian's Chromium (headless,
// driven by chromedp) against the local stack started in this process on a
// free loopback port. Without chromium the tests skip, or fail under CI=true.

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/lambda"
	"github.com/chromedp/cdproto/page"
	"github.com/chromedp/chromedp"

	"github.com/workorders/notify/internal/devstack"
	"github.com/workorders/notify/internal/testenv"
	"github.com/workorders/notify/web"
)

// Short reconnect backoffs for the page, so that tests are quick; nothing
// here asserts a duration.
const pageQuery = "?backoff=50&cap=400&failAfter=3"

// waitFor bounds every wait for the page; generous, for slow CI machines.
const waitFor = 20 * time.Second

var (
	browserOnce   sync.Once
	browserCtx    context.Context
	browserErr    error
	browserCancel context.CancelFunc = func() {}
	chromiumPath  string
)

func TestMain(m *testing.M) {
	// Off AWS nothing may look for credentials on the network (PROTOCOL.md §6).
	os.Setenv("AWS_EC2_METADATA_DISABLED", "true")
	code := m.Run()
	browserCancel()
	os.Exit(code)
}

// browser returns the context of a headless Chromium shared by the tests of
// this binary, started on first use.
func browser(t *testing.T) context.Context {
	t.Helper()
	browserOnce.Do(func() {
		for _, name := range []string{"chromium", "chromium-browser", "google-chrome-stable", "google-chrome"} {
			if p, err := exec.LookPath(name); err == nil {
				chromiumPath = p
				break
			}
		}
		if chromiumPath == "" {
			return
		}
		dir, err := os.MkdirTemp("", "notify-chromium-")
		if err != nil {
			browserErr = err
			return
		}
		opts := append(chromedp.DefaultExecAllocatorOptions[:],
			chromedp.ExecPath(chromiumPath),
			chromedp.UserDataDir(dir), // a fresh profile
			chromedp.Headless,
			chromedp.NoSandbox,
			chromedp.DisableGPU,
			chromedp.NoFirstRun,
			chromedp.WindowSize(1280, 860),
			// Only loopback traffic: no background requests, updates or sync,
			// and no host name resolves (the tests use 127.0.0.1).
			chromedp.Flag("disable-background-networking", true),
			chromedp.Flag("disable-component-update", true),
			chromedp.Flag("disable-sync", true),
			chromedp.Flag("disable-domain-reliability", true),
			chromedp.Flag("host-resolver-rules", "MAP * ~NOTFOUND, EXCLUDE 127.0.0.1"),
		)
		allocCtx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
		ctx, cancelCtx := chromedp.NewContext(allocCtx)
		browserCancel = func() {
			cancelCtx()
			cancelAlloc()
			os.RemoveAll(dir)
		}
		if err := chromedp.Do(ctx); err != nil { // starts the browser
			browserErr = fmt.Errorf("starting %s: %w", chromiumPath, err)
			return
		}
		browserCtx = ctx
	})
	if chromiumPath == "" {
		const hint = "chromium is needed for the browser tests: apt-get install -y chromium"
		if os.Getenv("CI") == "true" {
			t.Fatal(hint)
		}
		t.Skip(hint)
	}
	if browserErr != nil {
		t.Fatal(browserErr)
	}
	return browserCtx
}

// stack is a local stack serving the demo page; restart keeps its address.
type stack struct {
	t    *testing.T
	opts devstack.Options
	cur  atomic.Pointer[devstack.Stack]
	addr string
	// tokenTTL is the lifetime of the tokens GET /dev/token mints (zero:
	// an hour).
	tokenTTL atomic.Int64
}

// startStack starts a local stack with the demo page on a free port; env
// (nil: none) is its environment; tweaks adjust its options.
func startStack(t *testing.T, dynamo string, env map[string]string, tweaks ...func(*devstack.Options)) *stack {
	t.Helper()
	if env == nil {
		env = map[string]string{}
	}
	s := &stack{t: t, opts: devstack.Options{
		Addr:             "127.0.0.1:0",
		DynamoDBEndpoint: dynamo,
		Env:              env,
		Logger:           slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelWarn})),
	}}
	s.opts.Static = web.Handler(func(sub string, groups []string) (string, error) {
		cur := s.cur.Load()
		if cur == nil {
			return "", fmt.Errorf("the stack is not running: %w", web.ErrNotReady)
		}
		if !cur.DevSecretInUse() { // as notify local wires it
			return "", fmt.Errorf("JWT_SECRET is not the development default: %w", web.ErrDisabled)
		}
		ttl := time.Duration(s.tokenTTL.Load())
		if ttl <= 0 {
			ttl = time.Hour
		}
		return cur.DevToken(sub, groups, ttl)
	})
	for _, tweak := range tweaks {
		tweak(&s.opts)
	}
	s.start()
	t.Cleanup(s.stop)
	return s
}

func (s *stack) start() {
	s.t.Helper()
	opts := s.opts
	if s.addr != "" {
		opts.Addr = s.addr // a restart: the old port
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	st, err := devstack.Start(ctx, opts)
	// A restart takes the old port back; should another listener hold it
	// for a moment (tests in other packages bind free ports too), try again.
	for try := 0; err != nil && s.addr != "" && errors.Is(err, syscall.EADDRINUSE) && try < 20; try++ {
		time.Sleep(250 * time.Millisecond)
		st, err = devstack.Start(ctx, opts)
	}
	if err != nil {
		s.t.Fatalf("starting the local stack: %v", err)
	}
	s.addr = st.Addr()
	s.cur.Store(st)
}

func (s *stack) stop() {
	st := s.cur.Swap(nil)
	if st == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := st.Shutdown(ctx); err != nil {
		s.t.Errorf("stopping the local stack: %v", err)
	}
}

func (s *stack) pageURL(query string) string { return "http://" + s.addr + "/" + query }

type publishResult struct {
	ID           string   `json:"id"`
	Connections  int      `json:"connections"`
	Delivered    int      `json:"delivered"`
	OfflineUsers []string `json:"offlineUsers"`
}

// publish invokes PublishFunction through the SDK's Lambda client.
func (s *stack) publish(req map[string]any) publishResult {
	s.t.Helper()
	var res publishResult
	s.call(req, &res)
	return res
}

// call invokes PublishFunction with req through the SDK's Lambda client and
// decodes its answer into res; a function error fails the test.
func (s *stack) call(req map[string]any, res any) {
	s.t.Helper()
	client := lambda.New(lambda.Options{
		Region:       "us-east-1",
		Credentials:  credentials.NewStaticCredentialsProvider("AKIDLOCAL", "local-secret", ""),
		BaseEndpoint: aws.String(s.cur.Load().InvokeEndpoint()),
	})
	payload, err := json.Marshal(req)
	if err != nil {
		s.t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	out, err := client.Invoke(ctx, &lambda.InvokeInput{FunctionName: aws.String("PublishFunction"), Payload: payload})
	if err != nil {
		s.t.Fatalf("invoking PublishFunction: %v", err)
	}
	if out.FunctionError != nil {
		s.t.Fatalf("PublishFunction %s: %s: %s", payload, *out.FunctionError, out.Payload)
	}
	if err := json.Unmarshal(out.Payload, res); err != nil {
		s.t.Fatalf("PublishFunction's answer %s: %v", out.Payload, err)
	}
}

func notification(typ, title, workOrder string) map[string]any {
	return map[string]any{"type": typ, "title": title, "body": "Pump P-7 at plant 3", "data": map[string]any{"workOrderId": workOrder}}
}

// tab is one browser tab showing the demo page.
type tab struct {
	t          *testing.T
	name       string
	ctx        context.Context
	exceptions chan string
}

// openPage opens url in a new tab and waits until the client is connected
// and synced. Every WebSocket the page opens is recorded in window.wsLog
// (see wsRecorder).
func openPage(t *testing.T, name, url string) *tab {
	t.Helper()
	ctx, cancel := chromedp.NewContext(browser(t))
	t.Cleanup(cancel)
	p := &tab{t: t, name: name, ctx: ctx, exceptions: make(chan string, 100)}
	// Uncaught exceptions in the page fail the test.
	messages := chromedp.Console(ctx)
	go func() {
		for m, err := range messages {
			if err != nil {
				return
			}
			if m.Type == chromedp.ConsoleException {
				select {
				case p.exceptions <- m.Text:
				default:
				}
			}
		}
	}()
	t.Cleanup(func() {
		n := len(p.exceptions)
		for range n {
			t.Errorf("%s: uncaught exception in the page: %s", name, <-p.exceptions)
		}
	})
	if _, err := chromedp.Call(ctx, page.AddScriptToEvaluateOnNewDocument,
		page.AddScriptToEvaluateOnNewDocumentParams{Source: wsRecorder}); err != nil {
		t.Fatalf("%s: installing the WebSocket recorder: %v", name, err)
	}
	if err := chromedp.Do(ctx, chromedp.Navigate(url)); err != nil {
		t.Fatalf("%s: navigating to %s: %v", name, url, err)
	}
	p.waitStatus("open")
	return p
}

// wait polls the JavaScript predicate expr until it is true.
func (p *tab) wait(expr, what string) {
	p.t.Helper()
	_, err := chromedp.Run(p.ctx, chromedp.Poll[chromedp.Void](expr,
		chromedp.WithPollingInterval(25*time.Millisecond), chromedp.WithPollingTimeout(waitFor)))
	if err != nil {
		p.t.Fatalf("%s: waiting for %s: %v\npage: status %q, badge %d, list %v",
			p.name, what, err, p.status(), p.badge(), p.items())
	}
}

func (p *tab) waitStatus(status string) {
	p.t.Helper()
	p.wait(fmt.Sprintf(`document.querySelector("#status").dataset.status === %q`, status), "status "+status)
}

func eval[T any](p *tab, expr string) T {
	p.t.Helper()
	v, err := chromedp.Run(p.ctx, chromedp.Evaluate[T](expr))
	if err != nil {
		p.t.Fatalf("%s: evaluating %s: %v", p.name, expr, err)
	}
	return v
}

func (p *tab) status() string {
	return eval[string](p, `document.querySelector("#status").dataset.status`)
}

// badge is the unread count the bell shows (0 when hidden).
func (p *tab) badge() int {
	return eval[int](p, `(b => b.hidden ? 0 : Number(b.textContent))(document.querySelector("#badge"))`)
}

type item struct {
	ID     string `json:"id"`
	Title  string `json:"title"`
	WO     string `json:"wo"`
	Unread bool   `json:"unread"`
}

func (it item) String() string {
	if it.Unread {
		return it.Title + " (unread)"
	}
	return it.Title
}

// items is the list as shown, top (newest) first.
func (p *tab) items() []item {
	return eval[[]item](p, `[...document.querySelectorAll("#list .item")].map(li => ({
		id: li.dataset.id, title: li.querySelector(".title").textContent,
		wo: li.querySelector(".wo").textContent, unread: li.classList.contains("unread")}))`)
}

func (p *tab) click(selector string) {
	p.t.Helper()
	if err := chromedp.Do(p.ctx, chromedp.Click(chromedp.CSS(selector))); err != nil {
		p.t.Fatalf("%s: clicking %s: %v", p.name, selector, err)
	}
}

func (p *tab) waitItems(n int) {
	p.t.Helper()
	p.wait(fmt.Sprintf(`document.querySelectorAll("#list .item").length >= %d`, n), fmt.Sprintf("%d notifications in the list", n))
}

func (p *tab) waitBadge(n int) {
	p.t.Helper()
	p.wait(fmt.Sprintf(`(b => (b.hidden ? 0 : Number(b.textContent)) === %d)(document.querySelector("#badge"))`, n),
		fmt.Sprintf("the badge to show %d", n))
}

// (1) A notification published after load appears in the list, the badge
// counts it, a toast shows it; the publish form works; marking read updates
// the badge.
func TestNotificationAppears(t *testing.T) {
	s := startStack(t, "", nil)
	p := openPage(t, "tab", s.pageURL(pageQuery))

	if empty := eval[bool](p, `!document.querySelector("#empty").hidden`); !empty || p.badge() != 0 {
		t.Fatalf("a new user's page: empty state shown %v, badge %d; want the empty state and no badge", empty, p.badge())
	}

	res := s.publish(map[string]any{"users": []string{"demo"},
		"notification": notification("workorder.assigned", "WO-1042 assigned to you", "WO-1042")})
	if res.Delivered != 1 {
		t.Fatalf("publish: %+v, want delivered 1 (the page's socket)", res)
	}
	p.waitItems(1)
	p.waitBadge(1)
	items := p.items()
	if len(items) != 1 || items[0].ID != res.ID || items[0].Title != "WO-1042 assigned to you" || items[0].WO != "WO-1042" || !items[0].Unread {
		t.Fatalf("list %+v, want the one unread notification %s", items, res.ID)
	}
	p.wait(`[...document.querySelectorAll(".toast-title")].some(e => e.textContent === "WO-1042 assigned to you")`, "the toast")
	if eval[bool](p, `!document.querySelector("#empty").hidden`) {
		t.Error("the empty state is still shown")
	}

	// The page's own form: to the demo user's group, through the Invoke API.
	if err := chromedp.Do(p.ctx,
		chromedp.SetValue(chromedp.CSS(`select[name=type]`), "workorder.comment"),
		chromedp.SetValue(chromedp.CSS(`input[name=title]`), "New comment on WO-7"),
		chromedp.SetValue(chromedp.CSS(`input[name=workOrderId]`), "WO-7"),
	); err != nil {
		t.Fatal(err)
	}
	p.click("#group-label")
	p.click("#send")
	p.wait(`document.querySelector("#result.ok")?.dataset.delivered === "1"`, "the publish result: delivered to 1")
	p.waitItems(2)
	p.waitBadge(2)
	if items := p.items(); items[0].Title != "New comment on WO-7" || items[0].WO != "WO-7" || !items[0].Unread {
		t.Fatalf("list %v: want the comment on top, unread", items)
	}

	// Mark the first one read from its button.
	p.click(fmt.Sprintf(`#list .item[data-id=%q] .mark-read`, res.ID))
	p.waitBadge(1)
	for _, it := range p.items() {
		if it.Unread != (it.ID != res.ID) {
			t.Errorf("after marking %s read: %v", res.ID, p.items())
			break
		}
	}
}

// (2) Two tabs of one user both get a notification; marking it read in one
// updates the badge in both.
func TestTwoTabs(t *testing.T) {
	s := startStack(t, "", nil)
	a := openPage(t, "tab A", s.pageURL(pageQuery))
	b := openPage(t, "tab B", s.pageURL(pageQuery))

	res := s.publish(map[string]any{"groups": []string{"team:plant-3"},
		"notification": notification("workorder.deadline", "WO-1042 is due in 2 hours", "WO-1042")})
	if res.Delivered != 2 {
		t.Fatalf("publish to the group: %+v, want delivered 2 (both tabs)", res)
	}
	for _, p := range []*tab{a, b} {
		p.waitItems(1)
		p.waitBadge(1)
		if items := p.items(); items[0].ID != res.ID || !items[0].Unread {
			t.Fatalf("%s: list %v, want %s unread", p.name, items, res.ID)
		}
	}

	a.click(fmt.Sprintf(`#list .item[data-id=%q] .mark-read`, res.ID))
	a.waitBadge(0)
	b.waitBadge(0)
	b.wait(`!document.querySelector("#list .item.unread")`, "tab B to show the notification read")
}

// (3) The page's stack stops; three notifications are published through a
// second stack sharing its DynamoDB tables; the first stack starts again on
// its old port, and after the client's own reconnect exactly those three
// appear, once each, in order.
func TestReconnectSyncsWhatWasMissed(t *testing.T) {
	endpoint := testenv.Dynalite(t)
	env := map[string]string{
		"CONNECTIONS_TABLE":   testenv.UniqueName("web-connections"),
		"NOTIFICATIONS_TABLE": testenv.UniqueName("web-notifications"),
	}
	first := startStack(t, endpoint, env)
	p := openPage(t, "tab", first.pageURL(pageQuery))

	before := first.publish(map[string]any{"users": []string{"demo"},
		"notification": notification("workorder.assigned", "WO-1 assigned to you", "WO-1")})
	p.waitItems(1)
	p.waitBadge(1)

	first.stop()
	p.wait(`["reconnecting", "failing"].includes(document.querySelector("#status").dataset.status)`, "the page to notice the drop")

	second := startStack(t, endpoint, env)
	titles := []string{"WO-2 moved to In progress", "New comment on WO-3", "WO-4 is due in 2 hours"}
	types := []string{"workorder.status", "workorder.comment", "workorder.deadline"}
	var missed []string
	for i, title := range titles {
		res := second.publish(map[string]any{"users": []string{"demo"},
			"notification": notification(types[i], title, fmt.Sprintf("WO-%d", i+2))})
		if res.Connections != 0 || len(res.OfflineUsers) != 1 {
			t.Fatalf("publish through the second stack: %+v, want nobody connected", res)
		}
		missed = append(missed, res.ID)
	}
	second.stop()

	first.start() // the old port: the page reconnects by itself
	p.waitStatus("open")
	p.waitItems(4)
	p.waitBadge(4)

	// Newest first: the three missed ones in reverse publish order, then the
	// one from before (re-sent by the sync's overlap, shown once).
	want := []string{missed[2], missed[1], missed[0], before.ID}
	items := p.items()
	var got []string
	for _, it := range items {
		got = append(got, it.ID)
	}
	if strings.Join(got, ",") != strings.Join(want, ",") {
		t.Fatalf("list after the reconnect:\n got %v\nwant %v (%v)", got, want, items)
	}
	for i, it := range items[:3] {
		if it.Title != titles[2-i] || !it.Unread {
			t.Errorf("item %d: %v, want %q unread", i, it, titles[2-i])
		}
	}
	// The order of delivery, not only of display: the toasts came in id order.
	toasts := eval[[]string](p, `[...document.querySelectorAll(".toast-title")].map(e => e.textContent)
		.filter(t => t !== "WO-1 assigned to you")`)
	if strings.Join(toasts, "|") != strings.Join(titles, "|") {
		t.Errorf("toasts %q, want %q (delivered once each, in order)", toasts, titles)
	}
}

// A reload shows each notification's own read state, from the synced
// frame's read flags (PROTOCOL §5), not a guess from the unread count: of
// five, the second and fourth are read, and after a reload exactly those two
// show as read — in memory and on DynamoDB (dynalite).
func TestReloadShowsReadState(t *testing.T) {
	for _, backend := range []string{"memory", "dynamodb"} {
		t.Run(backend, func(t *testing.T) {
			var s *stack
			if backend == "memory" {
				s = startStack(t, "", nil)
			} else {
				s = startStack(t, testenv.Dynalite(t), map[string]string{
					"CONNECTIONS_TABLE":   testenv.UniqueName("web-connections"),
					"NOTIFICATIONS_TABLE": testenv.UniqueName("web-notifications"),
				})
			}
			p := openPage(t, "tab", s.pageURL(pageQuery))
			var ids []string
			for i := range 5 {
				res := s.publish(map[string]any{"users": []string{"demo"},
					"notification": notification("workorder.status", fmt.Sprintf("WO-%d moved to In progress", i), fmt.Sprintf("WO-%d", i))})
				ids = append(ids, res.ID)
			}
			p.waitItems(5)
			p.waitBadge(5)
			read := []string{ids[1], ids[3]}
			for _, id := range read {
				p.click(fmt.Sprintf(`#list .item[data-id=%q] .mark-read`, id))
			}
			p.waitBadge(3) // the server's answer: both are stored read

			check := func(what string) {
				t.Helper()
				items := p.items()
				if len(items) != 5 {
					t.Fatalf("%s: list %v, want the 5 notifications", what, items)
				}
				var gotRead []string
				for _, it := range items {
					if !it.Unread {
						gotRead = append(gotRead, it.ID)
					}
				}
				slices.Sort(gotRead)
				if !slices.Equal(gotRead, read) {
					t.Errorf("%s: read %v (list %v), want exactly %v", what, gotRead, items, read)
				}
				if n := p.badge(); n != 3 {
					t.Errorf("%s: badge %d, want 3", what, n)
				}
				// Only unread items offer "mark as read".
				buttons := eval[[]string](p, `[...document.querySelectorAll("#list .item")]
					.filter(li => !li.querySelector(".mark-read").hidden).map(li => li.dataset.id)`)
				slices.Sort(buttons)
				if want := []string{ids[0], ids[2], ids[4]}; !slices.Equal(buttons, want) {
					t.Errorf("%s: mark-read buttons on %v, want on %v", what, buttons, want)
				}
			}
			check("before the reload")

			if err := chromedp.Do(p.ctx, chromedp.Reload()); err != nil {
				t.Fatalf("reload: %v", err)
			}
			p.waitStatus("open")
			p.waitItems(5)
			p.waitBadge(3)
			check("after the reload")

			// The client hands the flag to the page: from the sync, and
			// false for a live notification.
			eval[bool](p, `(window.liveRead = [], notifyClient.on("notification", n => liveRead.push(n.read)), true)`)
			s.publish(map[string]any{"users": []string{"demo"},
				"notification": notification("workorder.comment", "New comment on WO-9", "WO-9")})
			p.waitItems(6)
			p.waitBadge(4)
			if live := eval[[]any](p, `liveRead`); len(live) != 1 || live[0] != false {
				t.Errorf("live notification's read flag %v, want [false]", live)
			}
			if items := p.items(); items[0].Title != "New comment on WO-9" || !items[0].Unread {
				t.Errorf("list %v: want the new one on top, unread", items)
			}
		})
	}
}

// The client pings before the idle timeout and replaces its socket before
// the maximum duration, losing nothing and never leaving "open": here a
// 1-second idle timeout and a 3-second maximum, a page that pings every 300 ms
// and replaces its socket every 2 s, and notifications published 1.2 s apart
// over 6 s (the gaps are longer than the idle timeout: only pings keep the
// sockets).
func TestKeepAliveAndRotation(t *testing.T) {
	s := startStack(t, "", nil, func(o *devstack.Options) {
		o.IdleTimeout, o.MaxDuration = time.Second, 3*time.Second
	})
	p := openPage(t, "tab", s.pageURL(pageQuery+"&ping=300&maxAge=2000"))
	eval[bool](p, `(window.statusLog = [], notifyClient.on("status", s => statusLog.push(s)), true)`)

	const n = 5
	var ids []string
	for i := range n {
		res := s.publish(map[string]any{"users": []string{"demo"},
			"notification": notification("workorder.status", fmt.Sprintf("WO-%d moved to In progress", i), fmt.Sprintf("WO-%d", i))})
		ids = append(ids, res.ID)
		time.Sleep(1200 * time.Millisecond)
	}
	p.waitItems(n)
	p.waitBadge(n)
	slices.Reverse(ids)
	var got []string
	for _, it := range p.items() {
		got = append(got, it.ID)
	}
	if !slices.Equal(got, ids) {
		t.Errorf("list %v, want %v", got, ids)
	}
	if log := eval[[]string](p, `statusLog`); len(log) != 0 {
		t.Errorf("status changes %v while the sockets were replaced, want none (always open)", log)
	}
}

// The demo page with a few notifications: docs/demo.png, written only when
// UPDATE_SCREENSHOT=1 (CI never dirties the tree).
func TestDemoScreenshot(t *testing.T) {
	s := startStack(t, "", nil)
	p := openPage(t, "tab", s.pageURL(pageQuery))
	if err := chromedp.Do(p.ctx, chromedp.EmulateViewport(1280, 860)); err != nil {
		t.Fatal(err)
	}
	samples := []struct{ typ, title, body, wo string }{
		{"workorder.status", "WO-1038 moved to Done", "Sam Patel closed the work order: filter replaced, line back up.", "WO-1038"},
		{"workorder.comment", "New comment on WO-1040", "Alex Kim: Seal replaced; waiting on parts for the coupling.", "WO-1040"},
		{"workorder.deadline", "WO-1041 is due in 2 hours", "The maintenance window on line 4 closes at 16:00.", "WO-1041"},
	}
	var first string
	for _, n := range samples {
		res := s.publish(map[string]any{"users": []string{"demo"}, "notification": map[string]any{
			"type": n.typ, "title": n.title, "body": n.body, "data": map[string]any{"workOrderId": n.wo}}})
		if first == "" {
			first = res.ID
		}
	}
	p.waitItems(len(samples))
	p.click(fmt.Sprintf(`#list .item[data-id=%q] .mark-read`, first))
	p.waitBadge(len(samples) - 1)
	p.wait(`document.querySelectorAll(".toast").length === 0`, "the toasts to go")
	p.click("#send") // the form's suggested notification ("WO-1042 assigned to you"), with its result
	p.wait(`document.querySelector("#result.ok")?.dataset.delivered === "1"`, "the publish result")
	p.waitItems(len(samples) + 1)
	// Let the arrival highlight fade; its toast stays.
	p.wait(`!document.querySelector(".item.fresh")`, "the arrival highlight to fade")

	png, err := chromedp.Run(p.ctx, chromedp.CaptureScreenshot())
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.HasPrefix(png, []byte("\x89PNG")) {
		t.Fatalf("the screenshot is not a PNG (%d bytes)", len(png))
	}
	if os.Getenv("UPDATE_SCREENSHOT") != "1" {
		return
	}
	root, err := testenv.RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(root, "docs", "demo.png")
	if err := os.MkdirAll(filepath.Dir(out), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(out, png, 0o644); err != nil {
		t.Fatal(err)
	}
	t.Logf("wrote %s", out)
}

// testWriter sends the stack's warnings to the test log.
type testWriter struct{ t *testing.T }

func (w testWriter) Write(b []byte) (int, error) {
	w.t.Log(strings.TrimRight(string(b), "\n"))
	return len(b), nil
}

var _ io.Writer = testWriter{}

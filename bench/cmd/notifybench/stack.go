package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/workorders/notify/internal/notify"
)

// awsEnv is the environment of every process the benchmark starts: static
// dummy credentials, a region, and no EC2 metadata look-ups (PROTOCOL.md §6).
func awsEnv(extra ...string) []string {
	var env []string
	for _, kv := range os.Environ() {
		k, _, _ := strings.Cut(kv, "=")
		switch {
		case strings.HasPrefix(k, "AWS_"), k == "JWT_SECRET", k == "ALLOWED_ORIGINS", k == "ADDR",
			k == "CONNECTIONS_TABLE", k == "NOTIFICATIONS_TABLE", k == "PUBLISH_CONCURRENCY":
			continue
		}
		env = append(env, kv)
	}
	env = append(env,
		"AWS_ACCESS_KEY_ID=dummy", "AWS_SECRET_ACCESS_KEY=dummy", "AWS_REGION=us-east-1",
		"AWS_EC2_METADATA_DISABLED=true",
		"AWS_CONFIG_FILE=/nonexistent/notifybench/config",
		"AWS_SHARED_CREDENTIALS_FILE=/nonexistent/notifybench/credentials",
	)
	return append(env, extra...)
}

// goBuild builds pkg into out with extra environment (GOOS, GOARCH...) and flags.
func goBuild(root, out, pkg string, env []string, flags ...string) error {
	args := append([]string{"build", "-o", out}, flags...)
	args = append(args, pkg)
	cmd := exec.Command("go", args...)
	cmd.Dir = root
	cmd.Env = append(os.Environ(), env...)
	cmd.Env = append(cmd.Env, "GOFLAGS=-mod=readonly -buildvcs=false")
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	cmd.Stdout = &stderr
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("go build %s: %v\n%s", pkg, err, stderr.String())
	}
	return nil
}

// stack is a `notify local` subprocess.
type stack struct {
	cmd    *exec.Cmd
	url    string // ws://HOST:PORT/
	http   string // http://HOST:PORT
	stderr *stackLog
	exited chan struct{}
}

// startStack runs bin (`notify`) `local` on a free loopback port with args
// and the benchmark environment plus env, in root (a checkout: its
// template.yaml is the one run).
func startStack(root, bin string, args []string, env []string) (*stack, error) {
	full := append([]string{"local", "--addr", "127.0.0.1:0", "--log-level", "warn",
		"--template", filepath.Join(root, "template.yaml")}, args...)
	cmd := exec.Command(bin, full...)
	cmd.Dir = root
	cmd.Env = awsEnv(append([]string{"JWT_SECRET=" + benchSecret, "ALLOWED_ORIGINS=*"}, env...)...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	s := &stack{cmd: cmd, stderr: newStackLog(32 << 10), exited: make(chan struct{})}
	cmd.Stderr = s.stderr
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	go func() { _ = cmd.Wait(); close(s.exited) }()
	lines := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(stdout)
		first := true
		for sc.Scan() {
			if first {
				lines <- sc.Text()
				first = false
			}
		}
		if first {
			close(lines)
		}
	}()
	select {
	case line, ok := <-lines:
		if !ok || !strings.HasPrefix(line, "ws://") {
			s.kill()
			return nil, fmt.Errorf("notify local printed %q first; stderr: %s", line, s.stderr.String())
		}
		s.url = strings.TrimSpace(line)
		s.http = "http://" + strings.TrimSuffix(strings.TrimPrefix(s.url, "ws://"), "/")
		return s, nil
	case <-time.After(60 * time.Second):
		s.kill()
		return nil, fmt.Errorf("notify local did not start within 60 s; stderr: %s", s.stderr.String())
	}
}

// stop asks the stack to shut down (SIGTERM: every socket is closed with
// 1001 and $disconnect runs), and kills it after a grace period.
func (s *stack) stop(grace time.Duration) {
	_ = s.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-s.exited:
	case <-time.After(grace):
		s.kill()
	}
}

func (s *stack) kill() {
	_ = s.cmd.Process.Kill()
	<-s.exited
}

// invoker calls PublishFunction through the Lambda Invoke API of a stack,
// as another service would (synchronous lambda:Invoke).
type invoker struct {
	url    string
	client *http.Client
}

func newInvoker(base string) *invoker {
	return &invoker{
		url: base + "/2015-03-31/functions/PublishFunction/invocations",
		client: &http.Client{Timeout: 120 * time.Second, Transport: &http.Transport{
			Proxy: nil, MaxIdleConnsPerHost: 4, DisableCompression: true,
		}},
	}
}

func (iv *invoker) publish(ctx context.Context, body []byte) (notify.PublishResult, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, iv.url, bytes.NewReader(body))
	if err != nil {
		return notify.PublishResult{}, err
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := iv.client.Do(req)
	if err != nil {
		return notify.PublishResult{}, err
	}
	defer resp.Body.Close()
	out, err := io.ReadAll(resp.Body)
	if err != nil {
		return notify.PublishResult{}, err
	}
	if resp.StatusCode != http.StatusOK || resp.Header.Get("X-Amz-Function-Error") != "" {
		return notify.PublishResult{}, fmt.Errorf("invoke: HTTP %d %s: %s", resp.StatusCode, resp.Header.Get("X-Amz-Function-Error"), out)
	}
	var res notify.PublishResult
	if err := json.Unmarshal(out, &res); err != nil {
		return notify.PublishResult{}, fmt.Errorf("invoke: %v: %s", err, out)
	}
	return res, nil
}

// publishBody is a publish request shaped like events/publish.json, with the
// run number in data so that clients can tell runs apart cheaply.
func publishBody(target string, run int, idempotencyKey string) []byte {
	key := ""
	if idempotencyKey != "" {
		key = fmt.Sprintf(`"idempotencyKey":%q,`, idempotencyKey)
	}
	return fmt.Appendf(nil, `{%s%s"notification":{"type":"workorder.assigned","title":"WO-1042 assigned to you",`+
		`"body":"Pump P-7 leaking at plant 3","data":{"workOrderId":"WO-1042","plant":"plant-3","run":%d}}}`,
		target, key, run)
}

// stackLog is a stack's standard error. The functions' EMF lines (one JSON
// object per invocation, docs/PROTOCOL.md §9) are counted by function, not
// kept: FanoutFunction's tell how many batches a sharded publish made. The
// other lines (warnings, errors, a panic) are kept, their first and last
// max bytes, for error messages.
type stackLog struct {
	mu      sync.Mutex
	max     int
	partial []byte
	head    []byte
	tail    []byte
	skipped int // bytes between head and tail no longer kept
	emf     map[string]int
	// fanoutDeliveries sums the Deliveries of FanoutFunction's EMF objects.
	fanoutDeliveries float64
}

func newStackLog(keep int) *stackLog { return &stackLog{max: keep, emf: map[string]int{}} }

func (l *stackLog) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	data := p
	if len(l.partial) > 0 {
		data = append(l.partial, p...)
		l.partial = nil
	}
	for len(data) > 0 {
		i := bytes.IndexByte(data, '\n')
		if i < 0 {
			l.partial = append([]byte(nil), data...)
			break
		}
		l.line(data[:i+1])
		data = data[i+1:]
	}
	return len(p), nil
}

var (
	emfPrefix      = []byte(`{"_aws":`)
	emfFunctionKey = []byte(`"Function":"`)
)

func (l *stackLog) line(b []byte) {
	if bytes.HasPrefix(b, emfPrefix) {
		if _, rest, ok := bytes.Cut(b, emfFunctionKey); ok {
			if fn, _, ok := bytes.Cut(rest, []byte(`"`)); ok {
				l.emf[string(fn)]++
				if string(fn) == "FanoutFunction" {
					var v struct{ Deliveries float64 }
					if json.Unmarshal(b, &v) == nil {
						l.fanoutDeliveries += v.Deliveries
					}
				}
			}
		}
		return
	}
	if len(l.head) < l.max {
		n := min(len(b), l.max-len(l.head))
		l.head = append(l.head, b[:n]...)
		b = b[n:]
	}
	l.tail = append(l.tail, b...)
	if len(l.tail) > 2*l.max {
		cut := len(l.tail) - l.max
		l.skipped += cut
		l.tail = append([]byte(nil), l.tail[cut:]...)
	}
}

// String returns the kept lines (and a partial last line).
func (l *stackLog) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	s := string(l.head)
	if l.skipped > 0 {
		s += fmt.Sprintf("\n[... %d bytes left out ...]\n", l.skipped)
	}
	return strings.TrimSpace(s + string(l.tail) + string(l.partial))
}

// fanout returns the FanoutFunction EMF objects seen so far and the sum of
// their Deliveries.
func (l *stackLog) fanout() (int, float64) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.emf["FanoutFunction"], l.fanoutDeliveries
}

// tailBuffer keeps the first max bytes written to it.
type tailBuffer struct {
	mu  sync.Mutex
	max int
	b   []byte
}

func (t *tailBuffer) Write(p []byte) (int, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if len(t.b) < t.max {
		t.b = append(t.b, p[:min(len(p), t.max-len(t.b))]...)
	}
	return len(p), nil
}

func (t *tailBuffer) String() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	return strings.TrimSpace(string(t.b))
}

var errTimeout = errors.New("timed out")

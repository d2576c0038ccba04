package main

import (
	"fmt"
	"io"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/workorders/notify/internal/notify"
	"github.com/workorders/notify/internal/samtemplate"
)

// lastFanOut keeps scenario 4's figures (unsharded, with the post delay)
// for the cost model.
var lastFanOut struct {
	s4Rate   float64
	s4Invoke float64
}

// unshardedThreshold is the FanoutThreshold that keeps every publish of the
// benchmark in PublishFunction (the fan-out before sharding).
const unshardedThreshold = 1000000

// fanoutConfig is the sharded fan-out of the stacks that run with the
// template's defaults: template.yaml's parameter defaults, or the service's
// own when the template has none.
type fanoutConfig struct{ threshold, batch, shards, postsPerSecond int }

func templateFanout(root string) fanoutConfig {
	fc := fanoutConfig{notify.DefaultFanoutThreshold, notify.DefaultFanoutBatchSize, notify.DefaultFanoutShards, notify.DefaultFanoutPostsPerSecond}
	t, err := samtemplate.Load(filepath.Join(root, "template.yaml"))
	if err != nil {
		logf("template.yaml: %v (fan-out defaults of internal/notify used)", err)
		return fc
	}
	for name, dst := range map[string]*int{
		"FanoutThreshold": &fc.threshold, "FanoutBatchSize": &fc.batch,
		"FanoutShards": &fc.shards, "FanoutPostsPerSecond": &fc.postsPerSecond,
	} {
		if p, ok := t.Parameters[name]; ok && p.Default != nil {
			if v, err := strconv.Atoi(*p.Default); err == nil && v > 0 {
				*dst = v
			}
		}
	}
	return fc
}

// session is one `notify local` and the benchmark's clients of it.
type session struct {
	label string
	st    *stack
	f     *fleet
	r     *runner
}

func openSession(label, dir, bin string, params []string) (*session, error) {
	logf("stack %s: notify local %s (in %s)", label, strings.Join(params, " "), dir)
	st, err := startStack(dir, bin, params, nil)
	if err != nil {
		return nil, fmt.Errorf("stack %s: %w", label, err)
	}
	f := newFleet(st.url)
	return &session{label: label, st: st, f: f,
		r: &runner{fleet: f, iv: newInvoker(st.http), cpu: &cpuMeter{pid: st.cmd.Process.Pid}}}, nil
}

// fail ends the session and returns err with the stack's standard error.
func (s *session) fail(err error) error {
	s.f.close()
	s.st.kill()
	return fmt.Errorf("stack %s: %w; stack stderr: %s", s.label, err, s.st.stderr.String())
}

// close ends the session; the stack's log is complete afterwards.
func (s *session) close() {
	s.f.close()
	s.st.stop(30 * time.Second)
}

// broadcastRow starts a stack, connects c.conns clients and measures a
// broadcast to all of them. Its FanoutFunction invocations are counted
// from the stack's EMF lines once it has stopped.
func broadcastRow(label, dir, bin string, params []string, c config, name string) scenario {
	s, err := openSession(label, dir, bin, params)
	if err != nil {
		return scenario{name: name, err: err}
	}
	rate, err := s.f.connect(c.conns, c.parallel, func(i int) string { return fmt.Sprintf("b%d", i) }, nil)
	if err != nil {
		return scenario{name: name, err: s.fail(err)}
	}
	logf("connected %d (%s connects/s)", s.f.size(), thousands(rate))
	logf("scenario %s", name)
	n0, d0 := s.st.stderr.fanout()
	sc, err := s.r.fanOut(name, `"broadcast":true,`, c.conns, c.runs)
	if err != nil {
		return scenario{name: name, err: s.fail(err)}
	}
	s.close()
	n1, d1 := s.st.stderr.fanout()
	sc.fanoutInvocations, sc.fanoutDeliveries, sc.publishes = n1-n0, d1-d0, c.runs+1
	return sc
}

// fanOutScenarios measures the fan-out table: scenarios 1 to 4, 3 and 4
// unsharded and sharded (3s, 4s), and with c.baseline those of another
// revision. A scenario that fails is a row with its error; the others
// still run. It returns the failures' errors.
func fanOutScenarios(w io.Writer, c config, root, tmp, notifyBin string) []error {
	fc := templateFanout(root)
	base := []string{"--param", fmt.Sprintf("PublishConcurrency=%d", c.concurrency)}
	unsharded := append(slices.Clone(base), "--param", fmt.Sprintf("FanoutThreshold=%d", unshardedThreshold))
	delay := []string{"--post-delay", c.postDelay.String()}
	conns := thousands(float64(c.conns))
	if c.conns <= fc.threshold {
		logf("warning: -conns %d is not over FanoutThreshold %d: scenarios 3s and 4s are not sharded", c.conns, fc.threshold)
	}
	batches := (c.conns + fc.batch - 1) / fc.batch
	if c.conns <= fc.threshold {
		batches = 0
	}

	names := struct{ s1, s2, s3, s3s, s4, s4s, b3, b4 string }{
		s1:  fmt.Sprintf("1. one user, 1 connection, %s publishes in sequence", thousands(float64(c.seq))),
		s2:  fmt.Sprintf("2. group of %s connections", thousands(float64(c.group))),
		s3:  fmt.Sprintf("3. broadcast to %s connections, unsharded (FanoutThreshold %s)", conns, thousands(unshardedThreshold)),
		s3s: fmt.Sprintf("3s. as 3, sharded (defaults: over %s connections, batches of %s, %d at a time, %s posts/s)", thousands(float64(fc.threshold)), thousands(float64(fc.batch)), fc.shards, thousands(float64(fc.postsPerSecond))),
		s4:  fmt.Sprintf("4. as 3, --post-delay %s", c.postDelay),
		s4s: fmt.Sprintf("4s. as 3s, --post-delay %s", c.postDelay),
		b3:  fmt.Sprintf("3 (baseline %s)", c.baseline),
		b4:  fmt.Sprintf("4 (baseline %s)", c.baseline),
	}

	// Stack A: scenarios 1, 2 and 3 on the same clients, more of them for each.
	var rows []scenario
	func() {
		if !c.selected("1") && !c.selected("2") && !c.selected("3") {
			return
		}
		failAll := func(err error, from int) {
			for i, n := range []string{names.s1, names.s2, names.s3}[from:] {
				if c.selected(strconv.Itoa(from + i + 1)) {
					rows = append(rows, scenario{name: n, err: err})
					err = fmt.Errorf("not run: stack A failed in an earlier scenario")
				}
			}
		}
		s, err := openSession("A", root, notifyBin, unsharded)
		if err != nil {
			failAll(err, 0)
			return
		}
		if _, err := s.f.connect(1, 1, func(int) string { return "solo" }, nil); err != nil {
			failAll(s.fail(err), 0)
			return
		}
		if c.selected("1") {
			logf("scenario 1: one user, one connection, %d publishes in sequence", c.seq)
			s1, err := s.r.sequential(names.s1, `"users":["solo"],`, c.seq, c.runs)
			if err != nil {
				failAll(s.fail(err), 0)
				return
			}
			s1.limitKey = "seq"
			rows = append(rows, s1)
		}
		if !c.selected("2") && !c.selected("3") {
			s.close()
			return
		}

		rate, err := s.f.connect(c.group, c.parallel, func(i int) string { return fmt.Sprintf("g%d", i) }, []string{"bench:g1000"})
		if err != nil {
			failAll(s.fail(err), 1)
			return
		}
		logf("connected %d (%s connects/s)", s.f.size(), thousands(rate))
		if c.selected("2") {
			logf("scenario 2: group of %d connections", c.group)
			s2, err := s.r.fanOut(names.s2, `"groups":["bench:g1000"],`, c.group, c.runs)
			if err != nil {
				failAll(s.fail(err), 1)
				return
			}
			s2.limitKey = "group"
			rows = append(rows, s2)
		}
		if !c.selected("3") {
			s.close()
			return
		}

		rate, err = s.f.connect(c.conns-s.f.size(), c.parallel, func(i int) string { return fmt.Sprintf("b%d", i) }, nil)
		if err != nil {
			failAll(s.fail(err), 2)
			return
		}
		logf("connected %d (%s connects/s)", s.f.size(), thousands(rate))
		logf("scenario 3: broadcast to %d connections, unsharded", c.conns)
		s3, err := s.r.fanOut(names.s3, `"broadcast":true,`, c.conns, c.runs)
		if err != nil {
			failAll(s.fail(err), 2)
			return
		}
		s3.limitKey = "bcast"
		rows = append(rows, s3)
		s.close()
	}()

	// The baseline's stacks run right after the figures they are compared
	// with, under the same load of the machine.
	var baseBin, baseDir string
	var baseErr error
	if c.baseline != "" && (c.selected("3") || c.selected("4")) {
		var cleanup func()
		baseDir, baseBin, cleanup, baseErr = buildBaseline(root, tmp, c.baseline)
		if baseErr == nil {
			defer cleanup()
		}
	}
	baselineRow := func(label, name string, params []string) scenario {
		if baseErr != nil {
			return scenario{name: name, err: baseErr}
		}
		return broadcastRow(label, baseDir, baseBin, params, c, name)
	}

	if c.selected("3s") {
		s3s := broadcastRow("B", root, notifyBin, base, c, names.s3s)
		s3s.limitKey, s3s.budget, s3s.batch, s3s.batches = "bcast", float64(fc.postsPerSecond), fc.batch, batches
		rows = append(rows, s3s)
	}
	var baseRows []scenario
	if c.baseline != "" && c.selected("3") {
		// That revision may have no FanoutThreshold: no fan-out parameters.
		b3 := baselineRow("E (baseline)", names.b3, base)
		b3.limitKey = "bcast"
		baseRows = append(baseRows, b3)
	}

	if c.selected("4") {
		s4 := broadcastRow("C", root, notifyBin, append(slices.Clone(unsharded), delay...), c, names.s4)
		s4.limitKey, s4.ideal = "bcast-delay", float64(c.concurrency)/c.postDelay.Seconds()
		rows = append(rows, s4)
		if s4.err == nil {
			lastFanOut.s4Rate, lastFanOut.s4Invoke = s4.rate.med, s4.invoke.med
		}
	}
	if c.selected("4s") {
		s4s := broadcastRow("D", root, notifyBin, append(slices.Clone(base), delay...), c, names.s4s)
		s4s.limitKey, s4s.budget, s4s.batch, s4s.batches = "bcast-delay", float64(fc.postsPerSecond), fc.batch, batches
		rows = append(rows, s4s)
	}
	if c.baseline != "" && c.selected("4") {
		b4 := baselineRow("F (baseline)", names.b4, append(slices.Clone(base), delay...))
		b4.limitKey, b4.ideal = "bcast-delay", float64(c.concurrency)/c.postDelay.Seconds()
		baseRows = append(baseRows, b4)
	}
	rows = append(rows, baseRows...)

	// The machine's limit: the same number of keep-alive POSTs of the same
	// size at the same concurrency, Go client to Go server over loopback;
	// rows of the same shape share one measurement.
	frame := 1
	for _, r := range rows {
		frame = max(frame, r.frameLen)
	}
	logf("loopback limit: POSTs of %d bytes", frame)
	shapes := map[string]struct {
		n, concurrency int
		delay          time.Duration
	}{
		"seq":         {c.seq, 1, 0},
		"group":       {c.group, c.concurrency, 0},
		"bcast":       {c.conns, c.concurrency, 0},
		"bcast-delay": {c.conns, c.concurrency, c.postDelay},
	}
	limits := map[string]stat{}
	var errs []error
	for i := range rows {
		key := rows[i].limitKey
		if rows[i].err != nil || key == "" {
			continue
		}
		if _, ok := limits[key]; !ok {
			sh := shapes[key]
			l, err := measureLoopback(sh.n, sh.concurrency, frame, c.runs, sh.delay)
			if err != nil {
				errs = append(errs, fmt.Errorf("loopback limit (%s): %w", key, err))
				l = summarize(nil)
			}
			limits[key] = l
		}
		rows[i].limit = limits[key]
	}
	printFanOut(w, c, rows, frame)
	for _, r := range rows {
		if r.err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", r.name, r.err))
		}
	}
	return errs
}

// compare says how many times lower (or higher) now is than then.
func compare(now, then float64) string {
	if now <= then {
		return fmt.Sprintf("%.2f× lower", then/now)
	}
	return fmt.Sprintf("%.2f× higher", now/then)
}

// buildBaseline checks rev out in a detached worktree under tmp and builds
// its ./cmd/notify. The worktree stays (its template.yaml is the one the
// baseline stacks run) until cleanup.
func buildBaseline(root, tmp, rev string) (dir, bin string, cleanup func(), err error) {
	dir = filepath.Join(tmp, "baseline")
	bin = filepath.Join(tmp, "notify-baseline")
	logf("baseline: git worktree add --detach %s %s", dir, rev)
	if out, err := exec.Command("git", "-C", root, "worktree", "add", "--detach", dir, rev).CombinedOutput(); err != nil {
		return "", "", nil, fmt.Errorf("baseline %s: git worktree add: %v: %s", rev, err, strings.TrimSpace(string(out)))
	}
	cleanup = func() {
		if out, err := exec.Command("git", "-C", root, "worktree", "remove", "--force", dir).CombinedOutput(); err != nil {
			logf("baseline: git worktree remove: %v: %s", err, strings.TrimSpace(string(out)))
			_ = os.RemoveAll(dir)
			_ = exec.Command("git", "-C", root, "worktree", "prune").Run()
		}
	}
	logf("baseline: building ./cmd/notify of %s", rev)
	if err := goBuild(dir, bin, "./cmd/notify", nil); err != nil {
		cleanup()
		return "", "", nil, fmt.Errorf("baseline %s: %w", rev, err)
	}
	return dir, bin, cleanup, nil
}

func printFanOut(w io.Writer, c config, rows []scenario, frame int) {
	fmt.Fprintf(w, "\n## Fan-out (memory store, PUBLISH_CONCURRENCY %d, median (min–max) of %d runs after a warm-up)\n\n", c.concurrency, c.runs)
	fmt.Fprintln(w, "| scenario | deliveries/s | last client has it (ms) | p50 publish→receive (ms) | p99 publish→receive (ms) | invoke returned (ms) | stack CPU per delivery (µs) | mean: all runs' CPU ÷ deliveries (µs) | loopback limit (POSTs/s) | share of limit |")
	fmt.Fprintln(w, "|---|---|---|---|---|---|---|---|---|---|")
	for _, s := range rows {
		if s.err != nil {
			fmt.Fprintf(w, "| %s | failed (below) | — | — | — | — | — | — | — | — |\n", s.name)
			continue
		}
		share := "—"
		if !math.IsNaN(s.limit.med) && s.limit.med > 0 {
			share = fmt.Sprintf("%.0f%%", 100*s.rate.med/s.limit.med)
		}
		switch {
		case s.budget > 0:
			share += fmt.Sprintf("; %.0f%% of the %s posts/s budget", 100*s.rate.med/s.budget, thousands(s.budget))
		case s.ideal > 0:
			share += fmt.Sprintf("; %.0f%% of ideal %s/s", 100*s.rate.med/s.ideal, thousands(s.ideal))
		}
		last := s.last.format("%.1f")
		inv := s.invoke.format("%.1f")
		if s.sequential {
			last = s.last.format("%.0f") + " (all " + thousands(float64(c.seq)) + ")"
			inv = s.invoke.format("%.2f") + " each"
		}
		mean := "—"
		if !math.IsNaN(s.cpu.mean) {
			mean = fmt.Sprintf("%.2f", s.cpu.mean)
		}
		fmt.Fprintf(w, "| %s | %s | %s | %s | %s | %s | %s | %s | %s | %s |\n", s.name, s.rate.rate(), last,
			s.p50.format("%.2f"), s.p99.format("%.2f"), inv, s.cpu.format("%.2f"), mean, s.limit.rate(), share)
	}
	if !slices.ContainsFunc(rows, func(s scenario) bool { return s.err == nil }) {
		frame = 0
	}
	if frame > 0 {
		fmt.Fprintf(w, "\nFrame: %d bytes. Loopback limit: a Go net/http server in its own process answering 200, and a Go client "+
			"with a keep-alive pool, doing the scenario's number of POSTs of the frame's size at the scenario's concurrency "+
			"(1 for scenario 1; for scenarios 4, 4s and baseline 4 the server sleeps the post delay too); 3, 3s and baseline 3 share one "+
			"measurement, 4, 4s and baseline 4 another. A sharded publish posts from up to FanoutShards × PUBLISH_CONCURRENCY "+
			"requests at once, so its share of that limit can pass 100%%; its own ceiling is the posts/s budget.\n", frame)
		fmt.Fprintf(w, "\nStack CPU per delivery: the CPU time (user + system, every thread, exited ones included) of the `notify local` "+
			"process from just before the publish until the invoke has returned and the last client has the notification, "+
			"divided by the run's deliveries (every run of a row has the same deliveries, so the mean is all its runs' CPU "+
			"divided by all their deliveries: a garbage collection that falls in one run of five counts a fifth, where the "+
			"median may leave it out); read with clock_gettime on the process's CPU-time clock (nanoseconds: the "+
			"scheduler's sum_exec_runtime, which /proc/PID/stat's utime+stime round to 10 ms ticks). Sharded rows include "+
			"the FanoutFunction invocations, which run in the same process behind its Lambda Invoke API.\n")
	}

	header := false
	for _, s := range rows {
		if s.err != nil || s.budget == 0 {
			continue
		}
		if !header {
			fmt.Fprintf(w, "\nFanoutFunction invocations of the sharded rows (counted from the stack's standard error: "+
				"the EMF object each invocation writes, Function FanoutFunction):\n\n")
			header = true
		}
		per := float64(s.fanoutInvocations) / float64(max(s.publishes, 1))
		fmt.Fprintf(w, "- %s: %s per publish (%d over %d publishes, warm-up included; their Deliveries sum to %s; "+
			"ceil(%s / %d) = %d expected)\n",
			strings.SplitN(s.name, ".", 2)[0], strconv.FormatFloat(per, 'f', -1, 64), s.fanoutInvocations, s.publishes,
			thousands(s.fanoutDeliveries), thousands(float64(s.deliveries)), s.batch, s.batches)
	}

	var now, then *scenario
	for i := range rows {
		switch {
		case strings.HasPrefix(rows[i].name, "3. "):
			now = &rows[i]
		case strings.HasPrefix(rows[i].name, "3 (baseline "):
			then = &rows[i]
		}
	}
	if now != nil && then != nil && now.err == nil && then.err == nil {
		fmt.Fprintf(w, "\nCPU per delivery, unsharded broadcast without delay: median %.2f µs now vs %.2f µs at %s (%s); "+
			"mean %.2f vs %.2f µs (%s)\n", now.cpu.med, then.cpu.med, c.baseline, compare(now.cpu.med, then.cpu.med),
			now.cpu.mean, then.cpu.mean, compare(now.cpu.mean, then.cpu.mean))
	}

	for _, s := range rows {
		if s.err != nil {
			msg := s.err.Error()
			if len(msg) > 2000 {
				msg = msg[:2000] + " [...]"
			}
			fmt.Fprintf(w, "\nFailed: %s: %s\n", s.name, msg)
		}
	}
}

// Command notifybench is the benchmark program behind `make bench` (issue 6):
// fan-out speed through the local stack, measured against the machine's own
// loopback limit, cold starts of the deployed bootstraps, and the counts the
// cost model in BENCHMARKS.md rests on.
//
// The stack is a `notify local` subprocess built from ./cmd/notify; the
// WebSocket clients all live in this process. Everything talks over
// loopback only, with static dummy AWS credentials, a region and
// AWS_EC2_METADATA_DISABLED=true.
//
// Run from the repository root: go run ./bench/cmd/notifybench [flags].
package main

import (
	"bytes"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"runtime/pprof"
	"strings"
	"syscall"
	"time"
)

var verbose = true

func logf(format string, args ...any) {
	if verbose {
		fmt.Fprintf(os.Stderr, format+"\n", args...)
	}
}

type config struct {
	runs, conns, group, seq, concurrency, parallel int
	postDelay                                      time.Duration
	skipCold, skipCost, skipFanout                 bool
	cpuprofile                                     string
	out                                            string
	baseline                                       string
	only                                           map[string]bool
}

// selected reports whether -only selects the fan-out scenario key ("1", "2",
// "3", "3s", "4", "4s"; the baseline rows go with "3" and "4").
func (c config) selected(key string) bool { return len(c.only) == 0 || c.only[key] }

func main() {
	if len(os.Args) > 1 {
		switch os.Args[1] {
		case "loopback-server":
			loopbackServerMain(os.Args[2:])
			return
		case "local": // the profiled stack copy, started as startStack starts `notify local`
			stackMain(os.Args[2:])
			return
		}
	}
	var c config
	flag.IntVar(&c.runs, "runs", 5, "measured runs per scenario (figures are their median, min and max)")
	flag.IntVar(&c.conns, "conns", 10000, "connections for the broadcast scenarios (3, 3s, 4, 4s)")
	flag.IntVar(&c.group, "group", 1000, "connections in the group of scenario 2")
	flag.IntVar(&c.seq, "seq", 1000, "publishes in sequence in scenario 1")
	flag.IntVar(&c.concurrency, "concurrency", 64, "PUBLISH_CONCURRENCY given to the stack (template parameter PublishConcurrency)")
	flag.IntVar(&c.parallel, "connect-parallel", 64, "WebSocket handshakes in flight at once while connecting (pacing)")
	flag.DurationVar(&c.postDelay, "post-delay", 20*time.Millisecond, "notify local --post-delay of scenarios 4 and 4s")
	flag.BoolVar(&c.skipCold, "skip-coldstart", false, "skip cold starts and bootstrap sizes")
	flag.BoolVar(&c.skipCost, "skip-cost", false, "skip the DynamoDB request counts")
	flag.BoolVar(&c.skipFanout, "skip-fanout", false, "skip the fan-out scenarios")
	flag.StringVar(&c.cpuprofile, "cpuprofile", "", "run scenario 3 once more against an in-process copy of the stack that writes a CPU profile of its publishes here, the allocations before and after them to FILE.allocs.base and FILE.allocs (go tool pprof -base), and this process's profile to FILE.clients")
	flag.StringVar(&c.out, "o", "", "also write the tables to this file")
	flag.StringVar(&c.baseline, "baseline", "", "also run scenarios 3 and 4 against ./cmd/notify built from this git `revision` (a temporary worktree), as rows \"3 (baseline REV)\" and \"4 (baseline REV)\"")
	flag.Func("only", "run only these fan-out `scenarios` (comma-separated: 1,2,3,3s,4,4s; default all)", func(v string) error {
		c.only = map[string]bool{}
		for _, k := range strings.Split(v, ",") {
			switch k = strings.TrimSpace(k); k {
			case "1", "2", "3", "3s", "4", "4s":
				c.only[k] = true
			default:
				return fmt.Errorf("unknown scenario %q (1, 2, 3, 3s, 4 or 4s)", k)
			}
		}
		return nil
	})
	flag.Parse()
	if err := benchmark(c); err != nil {
		fmt.Fprintln(os.Stderr, "notifybench:", err)
		os.Exit(1)
	}
}

func benchmark(c config) error {
	start := time.Now()
	root, err := repoRoot()
	if err != nil {
		return err
	}
	soft, hard := raiseNoFile()
	logf("RLIMIT_NOFILE %d (hard %d)", soft, hard)
	tmp, err := os.MkdirTemp("", "notifybench-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp)
	notifyBin := filepath.Join(tmp, "notify")
	logf("building ./cmd/notify")
	if err := goBuild(root, notifyBin, "./cmd/notify", nil); err != nil {
		return err
	}

	var report bytes.Buffer
	w := io.MultiWriter(os.Stdout, &report)
	machine(w, root)

	var failed []error
	if !c.skipFanout {
		failed = fanOutScenarios(w, c, root, tmp, notifyBin)
		for _, err := range failed {
			fmt.Fprintln(os.Stderr, "notifybench: fan-out:", err)
		}
	}
	if c.cpuprofile != "" {
		if err := profileScenario3(c, root); err != nil {
			return err
		}
	}
	var dyn *dynalite
	var costs []phaseCounts
	connTable, notifTable, err := tablesFromEnv(root)
	if err != nil {
		return err
	}
	if !c.skipCold || !c.skipCost {
		logf("starting dynalite")
		if dyn, err = startDynalite(root); err != nil {
			return err
		}
		defer dyn.stop()
		// The cost run goes first: its stack creates the tables (template.yaml's
		// schema, events/env.json's names) that the cold starts use.
		logf("DynamoDB request counts (stack on dynalite through a counting proxy)")
		if costs, err = countRequests(c, root, notifyBin, dyn.endpoint, connTable, notifTable); err != nil {
			return err
		}
	}
	if !c.skipCold {
		logf("cold starts (linux/amd64 bootstraps under a local Runtime API, DynamoDB on dynalite)")
		cs, err := measureColdStarts(root, tmp, dyn.endpoint, c.runs)
		if err != nil {
			return err
		}
		logf("make build (arm64 bootstraps)")
		if err := armSizes(root, cs); err != nil {
			return err
		}
		printColdStarts(w, cs)
	}
	if !c.skipCost {
		printCounts(w, costs, connTable)
	}
	fmt.Fprintf(w, "\nTotal benchmark time: %s\n", time.Since(start).Round(time.Second))
	if c.out != "" {
		if err := os.WriteFile(c.out, report.Bytes(), 0o644); err != nil {
			return err
		}
	}
	if len(failed) > 0 {
		return fmt.Errorf("%d fan-out measurement(s) failed (errors above and under the table)", len(failed))
	}
	return nil
}

func printColdStarts(w io.Writer, cs []coldStart) {
	fmt.Fprintf(w, "\n## Cold start and size\n\n")
	fmt.Fprintln(w, "| function | cold start: process start → first answered invoke (ms, linux/amd64) | of which init: → first poll of /invocation/next (ms) | answer | bootstrap arm64 (make build) | bootstrap amd64 |")
	fmt.Fprintln(w, "|---|---|---|---|---|---|")
	for _, c := range cs {
		fmt.Fprintf(w, "| %s | %s | %s | %s | %.2f MB | %.2f MB |\n", c.name, c.start.format("%.1f"), c.init.format("%.1f"), c.answer,
			float64(c.arm64)/1e6, float64(c.amd64)/1e6)
	}
}

func printCounts(w io.Writer, costs []phaseCounts, connTable string) {
	fmt.Fprintf(w, "\n## DynamoDB requests observed (stack on dynalite, counting proxy)\n\n")
	fmt.Fprintln(w, "| phase | per | read units | write units (incl. GSI) | requests (operation table ×count per unit) |")
	fmt.Fprintln(w, "|---|---|---|---|---|")
	for _, p := range costs {
		r, wu := p.units(connTable)
		fmt.Fprintf(w, "| %s | %s | %.3g | %.3g | %s |\n", p.name, p.unit, r, wu, p.describe())
	}
	costModel(w, costs, connTable)
}

// stackMain is `notifybench stack local ...`: not the benchmarked stack, but
// an in-process copy of it that writes a CPU profile, for -cpuprofile.
func stackMain(args []string) {
	if err := runProfiledStack(args); err != nil {
		fmt.Fprintln(os.Stderr, "notifybench stack:", err)
		os.Exit(1)
	}
}

func profileScenario3(c config, root string) error {
	self, err := os.Executable()
	if err != nil {
		return err
	}
	params := []string{"--param", fmt.Sprintf("PublishConcurrency=%d", c.concurrency),
		"--param", fmt.Sprintf("FanoutThreshold=%d", unshardedThreshold)}
	logf("profiling scenario 3 (in-process stack copy, CPU profile to %s)", c.cpuprofile)
	st, err := startStack(root, self, params, []string{"NOTIFYBENCH_CPUPROFILE=" + c.cpuprofile})
	if err != nil {
		return err
	}
	f := newFleet(st.url)
	r := &runner{fleet: f, iv: newInvoker(st.http)}
	if _, err := f.connect(c.conns, c.parallel, func(i int) string { return fmt.Sprintf("b%d", i) }, nil); err != nil {
		f.close()
		st.kill()
		return err
	}
	cf, err := os.Create(c.cpuprofile + ".clients")
	if err != nil {
		return err
	}
	defer cf.Close()
	// The stack profiles from this signal on: connects are not in the profile.
	_ = st.cmd.Process.Signal(syscall.SIGUSR1)
	time.Sleep(100 * time.Millisecond)
	_ = pprof.StartCPUProfile(cf)
	_, err = r.fanOut("profile", `"broadcast":true,`, c.conns, c.runs)
	pprof.StopCPUProfile()
	// Disconnects are not in it either.
	_ = st.cmd.Process.Signal(syscall.SIGUSR1)
	time.Sleep(100 * time.Millisecond)
	f.close()
	st.stop(30 * time.Second)
	return err
}

func machine(w io.Writer, root string) {
	model := "unknown"
	if b, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for _, line := range strings.Split(string(b), "\n") {
			if k, v, ok := strings.Cut(line, ":"); ok && strings.TrimSpace(k) == "model name" {
				model = strings.TrimSpace(v)
				break
			}
		}
	}
	kernel, _ := exec.Command("uname", "-r").Output()
	var rl syscall.Rlimit
	_ = syscall.Getrlimit(syscall.RLIMIT_NOFILE, &rl)
	somax, _ := os.ReadFile("/proc/sys/net/core/somaxconn")
	fmt.Fprintf(w, "# notifybench %s\n\n", time.Now().UTC().Format("2006-01-02 15:04 UTC"))
	fmt.Fprintf(w, "Machine: nproc %d, CPU %q, %s, Linux %s, RLIMIT_NOFILE %d/%d, somaxconn %s. Command: `make bench` (go run ./bench/cmd/notifybench) in %s.\n",
		runtime.NumCPU(), model, runtime.Version(), strings.TrimSpace(string(kernel)), rl.Cur, rl.Max, strings.TrimSpace(string(somax)), filepath.Base(root))
}

// raiseNoFile raises the soft open-files limit to the hard limit (the Go
// runtime does this too since Go 1.19; child processes get the raised limit).
func raiseNoFile() (uint64, uint64) {
	var rl syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &rl); err != nil {
		return 0, 0
	}
	if rl.Cur < rl.Max {
		rl.Cur = rl.Max
		_ = syscall.Setrlimit(syscall.RLIMIT_NOFILE, &rl)
	}
	return rl.Cur, rl.Max
}

func repoRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if b, err := os.ReadFile(filepath.Join(dir, "go.mod")); err == nil && bytes.Contains(b, []byte("module github.com/workorders/notify")) {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("run notifybench inside the repository (no go.mod of github.com/workorders/notify above)")
		}
		dir = parent
	}
}

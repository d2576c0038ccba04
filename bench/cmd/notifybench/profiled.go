package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"runtime"
	"runtime/pprof"
	"strings"
	"syscall"
	"time"

	"github.com/workorders/notify/internal/devstack"
)

// runProfiledStack runs the same devstack.Start as `notify local` with the
// flags startStack passes, and profiles the CPU from the first SIGUSR1 until
// the second (or SIGTERM) into $NOTIFYBENCH_CPUPROFILE. Only -cpuprofile uses it: the benchmark
// figures come from the real `notify local`.
func runProfiledStack(args []string) error {
	if len(args) > 0 && args[0] == "local" {
		args = args[1:]
	}
	fs := flag.NewFlagSet("stack", flag.ContinueOnError)
	var opts devstack.Options
	var params []string
	var level slog.Level
	fs.StringVar(&opts.Addr, "addr", "127.0.0.1:0", "")
	fs.StringVar(&opts.TemplatePath, "template", "", "")
	fs.DurationVar(&opts.PostDelay, "post-delay", 0, "")
	fs.TextVar(&level, "log-level", slog.LevelWarn, "")
	fs.Func("param", "", func(s string) error { params = append(params, s); return nil })
	if err := fs.Parse(args); err != nil {
		return err
	}
	opts.Parameters = map[string]string{}
	for _, p := range params {
		k, v, _ := strings.Cut(p, "=")
		opts.Parameters[k] = v
	}
	opts.Logger = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: level}))
	st, err := devstack.Start(context.Background(), opts)
	if err != nil {
		return err
	}
	fmt.Println(st.URL())
	sig := make(chan os.Signal, 2)
	signal.Notify(sig, syscall.SIGUSR1, syscall.SIGTERM, os.Interrupt)
	var prof io.WriteCloser
	for s := range sig {
		if s == syscall.SIGUSR1 {
			path := os.Getenv("NOTIFYBENCH_CPUPROFILE")
			if prof != nil {
				pprof.StopCPUProfile()
				_ = prof.Close()
				prof = nil
				writeAllocs(path + ".allocs")
				continue
			}
			if path != "" {
				writeAllocs(path + ".allocs.base")
				f, err := os.Create(path)
				if err != nil {
					return err
				}
				if err := pprof.StartCPUProfile(f); err != nil {
					return err
				}
				prof = f
			}
			continue
		}
		break
	}
	if prof != nil {
		pprof.StopCPUProfile()
		_ = prof.Close()
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	return st.Shutdown(ctx)
}

// writeAllocs writes the allocation profile so far to path: the profile
// between the two signals is `go tool pprof -base PATH.allocs.base PATH.allocs`.
func writeAllocs(path string) {
	f, err := os.Create(path)
	if err != nil {
		fmt.Fprintln(os.Stderr, "notifybench stack:", err)
		return
	}
	defer f.Close()
	runtime.GC() // the profile is as of the last collection
	_ = pprof.Lookup("allocs").WriteTo(f, 0)
}

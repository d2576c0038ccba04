package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"maps"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/awslabs/goformation/v7/intrinsics"

	"github.com/workorders/notify/internal/app"
	"github.com/workorders/notify/internal/devstack"
	"github.com/workorders/notify/internal/runtimeapi"
	"github.com/workorders/notify/internal/samtemplate"
)

// invokeInitTimeout is Lambda's limit on a function's init phase, added to
// the function's timeout to bound the whole run.
const invokeInitTimeout = 10 * time.Second

// localAPIID stands for the WebSocket API's ID in the functions'
// environment, as in `notify local` (localgw.APIID).
const localAPIID = "local"

func invokeFlags(fs *flag.FlagSet, env func(string) string) runFunc {
	var event, envVars, template string
	fs.StringVar(&event, "event", "", "`file` holding the event JSON; - reads standard input (default {})")
	fs.StringVar(&event, "e", "", "short for --event")
	fs.StringVar(&envVars, "env-vars", "",
		"JSON `file` of environment overrides in SAM's format:\n{\"FunctionName\": {\"VAR\": \"value\"}, \"Parameters\": {\"VAR\": \"value\"}} (Parameters: every function)")
	fs.StringVar(&template, "template", "",
		"SAM `file` (default ./"+devstack.DefaultTemplate+", else the nearest one up to the module root)")

	return func(ctx context.Context, stdout, stderr io.Writer) error {
		if fs.NArg() != 1 {
			return usagef("want one FUNCTION (a logical ID of the template), got %d arguments", fs.NArg())
		}
		name := fs.Arg(0)
		path, err := devstack.FindTemplate(template)
		if err != nil {
			return err
		}
		tmpl, err := samtemplate.Load(path)
		if err != nil {
			return err
		}
		fn, ok := tmpl.Functions[name]
		if !ok {
			return usagef("unknown function %q: %s has %s", name, path, strings.Join(slices.Sorted(maps.Keys(tmpl.Functions)), ", "))
		}
		payload, err := readEvent(event)
		if err != nil {
			return err
		}
		overrides, err := readEnvVars(envVars, name)
		if err != nil {
			return err
		}
		region := firstNonEmptyEnv(env, "AWS_REGION", "AWS_DEFAULT_REGION")
		if region == "" {
			region = devstack.DefaultRegion
		}
		fnEnv, err := invokeEnv(tmpl, name, region)
		if err != nil {
			return err
		}
		maps.Copy(fnEnv, overrides)
		memory := memorySize(path, name)
		timeout := time.Duration(fn.Timeout) * time.Second
		if timeout <= 0 {
			timeout = 3 * time.Second
		}

		ctx, stop := signal.NotifyContext(ctx, os.Interrupt, syscall.SIGTERM)
		defer stop()
		dir, err := os.MkdirTemp("", "notify-invoke-")
		if err != nil {
			return err
		}
		defer os.RemoveAll(dir)
		bin, err := buildBootstrap(ctx, filepath.Dir(path), name, dir)
		if err != nil {
			return err
		}

		rie, err := runtimeapi.Start("arn:aws:lambda:"+region+":000000000000:function:"+name, timeout)
		if err != nil {
			return err
		}
		defer rie.Close()

		// The process environment: the template's and the overrides, then
		// what Lambda sets (and does not let a function change). Only PATH
		// and the SDK's endpoint overrides come from this process.
		vars := map[string]string{}
		for _, kv := range os.Environ() {
			k, v, _ := strings.Cut(kv, "=")
			if k == "PATH" || k == "AWS_ENDPOINT_URL" || strings.HasPrefix(k, "AWS_ENDPOINT_URL_") {
				vars[k] = v
			}
		}
		maps.Copy(vars, fnEnv)
		maps.Copy(vars, map[string]string{
			"AWS_LAMBDA_RUNTIME_API":          rie.Addr(),
			"AWS_LAMBDA_FUNCTION_NAME":        name,
			"AWS_LAMBDA_FUNCTION_VERSION":     "$LATEST",
			"AWS_LAMBDA_FUNCTION_MEMORY_SIZE": strconv.Itoa(memory),
			"AWS_LAMBDA_FUNCTION_TIMEOUT":     strconv.Itoa(int(timeout / time.Second)),
			"AWS_LAMBDA_LOG_GROUP_NAME":       "/aws/lambda/" + name,
			"AWS_LAMBDA_LOG_STREAM_NAME":      "$LATEST",
			"AWS_LAMBDA_INITIALIZATION_TYPE":  "on-demand",
			"AWS_REGION":                      region,
			"AWS_DEFAULT_REGION":              region,
			"AWS_ACCESS_KEY_ID":               "dummy",
			"AWS_SECRET_ACCESS_KEY":           "dummy",
			"AWS_EC2_METADATA_DISABLED":       "true",
			"LAMBDA_TASK_ROOT":                dir,
			"LAMBDA_RUNTIME_DIR":              dir,
			"_HANDLER":                        "bootstrap",
			"TZ":                              ":UTC",
		})
		delete(vars, "AWS_SESSION_TOKEN")

		id, done := rie.Submit(payload)
		logs := &lineWriter{w: stderr}
		fmt.Fprintf(logs, "START RequestId: %s Version: $LATEST\n", id)
		cmd := exec.Command(bin)
		cmd.Dir = dir
		for _, k := range slices.Sorted(maps.Keys(vars)) {
			cmd.Env = append(cmd.Env, k+"="+vars[k])
		}
		cmd.Stdout, cmd.Stderr = logs, logs
		start := time.Now()
		if err := cmd.Start(); err != nil {
			return fmt.Errorf("starting %s: %w", name, err)
		}
		exited := make(chan error, 1)
		go func() { exited <- cmd.Wait() }()
		var waitErr error
		stopped := false
		kill := func() {
			if !stopped {
				stopped = true
				_ = cmd.Process.Kill()
				waitErr = <-exited
			}
		}
		defer kill()
		timer := time.NewTimer(invokeInitTimeout + timeout)
		defer timer.Stop()

		var answer runtimeapi.Result
		select {
		case answer = <-done:
			kill()
		case r := <-rie.InitError():
			kill()
			fmt.Fprintf(logs, "END RequestId: %s\n", id)
			return fmt.Errorf("%s init error: %s", name, r.Payload)
		case waitErr = <-exited:
			stopped = true
			fmt.Fprintf(logs, "END RequestId: %s\n", id)
			phase := "during init"
			if !rie.FirstPoll().IsZero() {
				phase = "before answering"
			}
			return fmt.Errorf("%s init error: Runtime.ExitError: the bootstrap exited %s (%v); its log is above", name, phase, waitErr)
		case <-timer.C:
			kill()
			fmt.Fprintf(logs, "END RequestId: %s\n", id)
			return fmt.Errorf("%s: Task timed out after %d seconds", name, int(timeout/time.Second))
		case <-ctx.Done():
			kill()
			return ctx.Err()
		}

		fmt.Fprintf(logs, "END RequestId: %s\n", id)
		report := fmt.Sprintf("REPORT RequestId: %s", id)
		if first := rie.FirstPoll(); !first.IsZero() {
			report += fmt.Sprintf("\tInit Duration: %.2f ms", ms(first.Sub(start)))
			d := answer.At.Sub(first)
			report += fmt.Sprintf("\tDuration: %.2f ms\tBilled Duration: %d ms", ms(d), int64(d/time.Millisecond)+1)
		}
		report += fmt.Sprintf("\tMemory Size: %d MB", memory)
		fmt.Fprintln(logs, report)

		fmt.Fprintln(stdout, strings.TrimRight(string(answer.Payload), "\n"))
		if answer.Error {
			var doc struct{ ErrorType, ErrorMessage string }
			_ = json.Unmarshal(answer.Payload, &doc)
			return fmt.Errorf("%s answered an error: %s: %s", name, doc.ErrorType, doc.ErrorMessage)
		}
		return nil
	}
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

// readEvent reads the event file (- is standard input); no file is {}.
func readEvent(file string) ([]byte, error) {
	if file == "" {
		return []byte("{}"), nil
	}
	var data []byte
	var err error
	if file == "-" {
		file = "standard input"
		data, err = io.ReadAll(os.Stdin)
	} else {
		data, err = os.ReadFile(file)
	}
	if err != nil {
		return nil, fmt.Errorf("event %s: %w", file, err)
	}
	var v any
	if err := json.Unmarshal(data, &v); err != nil {
		return nil, fmt.Errorf("event %s is not JSON: %w", file, err)
	}
	return data, nil
}

// readEnvVars reads a SAM --env-vars file and returns the variables for
// function: its "Parameters" (every function's), overlaid by its own. Values
// may be strings, numbers or booleans.
func readEnvVars(file, function string) (map[string]string, error) {
	out := map[string]string{}
	if file == "" {
		return out, nil
	}
	data, err := os.ReadFile(file)
	if err != nil {
		return nil, fmt.Errorf("--env-vars: %w", err)
	}
	var doc map[string]map[string]any
	if err := json.Unmarshal(data, &doc); err != nil {
		return nil, fmt.Errorf("--env-vars %s: want {\"FunctionName\": {\"VAR\": \"value\"}, \"Parameters\": {...}}: %w", file, err)
	}
	for _, section := range []string{"Parameters", function} {
		for k, v := range doc[section] {
			switch v := v.(type) {
			case string:
				out[k] = v
			case float64, bool:
				out[k] = fmt.Sprint(v)
			default:
				return nil, fmt.Errorf("--env-vars %s: %s.%s: want a string, a number or a boolean", file, section, k)
			}
		}
	}
	return out, nil
}

// invokeEnv resolves function's environment in the template as `notify
// local` does without its environment: each parameter takes its default,
// JWT_SECRET and ALLOWED_ORIGINS the development values, a table its
// TableName (else its logical ID), the API the local API's ID.
func invokeEnv(tmpl *samtemplate.Template, function, region string) (map[string]string, error) {
	devDefaults := map[string]string{app.EnvJWTSecret: devstack.DevSecret, app.EnvAllowedOrigins: devstack.DevOrigins}
	params := map[string]string{}
	for name, p := range tmpl.Parameters {
		if p.Default == nil {
			params[name] = ""
		}
	}
	for k, v := range tmpl.Functions[function].Environment {
		if dev, ok := devDefaults[k]; ok && v.Kind == samtemplate.Ref {
			if _, ok := tmpl.Parameters[v.Name]; ok {
				params[v.Name] = dev
			}
		}
	}
	refs := map[string]string{"AWS::Region": region}
	for id, t := range tmpl.Tables {
		refs[id] = t.TableName
		if refs[id] == "" {
			refs[id] = id
		}
	}
	if tmpl.API != "" {
		refs[tmpl.API] = localAPIID
	}
	// A function run alone has no other function to invoke: FANOUT_FUNCTION
	// (!Ref FanoutFunction) is empty, so PublishFunction posts every frame
	// itself unless --env-vars names one.
	for id := range tmpl.Functions {
		refs[id] = ""
	}
	return tmpl.ResolveEnv(function, params, refs)
}

// memorySize is the function's MemorySize, else Globals', else SAM's 128.
func memorySize(path, function string) int {
	data, err := os.ReadFile(path)
	if err != nil {
		return 128
	}
	var raw []byte
	if strings.HasSuffix(path, ".json") {
		raw, err = intrinsics.ProcessJSON(data, &intrinsics.ProcessorOptions{NoProcess: true})
	} else {
		raw, err = intrinsics.ProcessYAML(data, &intrinsics.ProcessorOptions{NoProcess: true})
	}
	if err != nil {
		return 128
	}
	var doc struct {
		Globals struct {
			Function struct{ MemorySize any }
		}
		Resources map[string]struct {
			Properties struct{ MemorySize any }
		}
	}
	if json.Unmarshal(raw, &doc) != nil {
		return 128
	}
	for _, v := range []any{doc.Resources[function].Properties.MemorySize, doc.Globals.Function.MemorySize} {
		switch v := v.(type) {
		case float64:
			return int(v)
		case string:
			if n, err := strconv.Atoi(v); err == nil {
				return n
			}
		}
	}
	return 128
}

// buildBootstrap runs the Makefile's build-<function> target, the one `sam
// build` runs, for this machine instead of linux/arm64, and returns the
// bootstrap it built in dir.
func buildBootstrap(ctx context.Context, root, function, dir string) (string, error) {
	cmd := exec.CommandContext(ctx, "make", "--no-print-directory", "build-"+function,
		"ARTIFACTS_DIR="+dir,
		"LAMBDA_GOENV=CGO_ENABLED=0 GOOS="+runtime.GOOS+" GOARCH="+runtime.GOARCH)
	cmd.Dir = root
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Run(); err != nil {
		if errors.Is(err, exec.ErrNotFound) {
			return "", fmt.Errorf("building %s needs make (the Makefile's build-%s target): %w", function, function, err)
		}
		return "", fmt.Errorf("building %s (make build-%s in %s): %v\n%s", function, function, root, err, out.String())
	}
	bin := filepath.Join(dir, "bootstrap")
	if _, err := os.Stat(bin); err != nil {
		return "", fmt.Errorf("make build-%s left no bootstrap: %w", function, err)
	}
	return bin, nil
}

func firstNonEmptyEnv(env func(string) string, names ...string) string {
	for _, n := range names {
		if v := strings.TrimSpace(env(n)); v != "" {
			return v
		}
	}
	return ""
}

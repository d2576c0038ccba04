// Package testenv gives tests a local DynamoDB: a dynalite server started
// once per test binary, an aws.Config that talks only to it, and unique
// table names. It is imported only from _test files.
//
// dynalite is a Node.js package pinned in tools/package.json; install it with
// `npm ci --prefix tools` (`make test` does this). Without node or dynalite,
// tests that need it are skipped, or fail when CI=true.
package testenv

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
)

// Region is the region of the configurations AWSConfig returns.
const Region = "us-east-1"

// installHint tells people how to get dynalite.
const installHint = "dynalite is needed for this test: install Node.js (20 or later) and run " +
	"`npm ci --prefix tools` in the repository root (`make test` does this)"

var (
	dynaliteOnce     sync.Once
	dynaliteEndpoint string
	dynaliteMissing  string // why node or dynalite is not available
	dynaliteErr      error  // why it did not start
)

// Dynalite returns the endpoint URL (http://127.0.0.1:PORT) of a dynalite
// server shared by every test of this test binary. The server is started on
// first use on a free loopback port and dies with the test binary.
//
// When node or tools/node_modules/dynalite is missing, the test is skipped,
// or fails if the environment variable CI is "true".
func Dynalite(tb testing.TB) string {
	tb.Helper()
	dynaliteOnce.Do(func() {
		dynaliteEndpoint, dynaliteMissing, dynaliteErr = startDynalite()
	})
	if dynaliteMissing != "" {
		if os.Getenv("CI") == "true" {
			tb.Fatalf("%s; %s", dynaliteMissing, installHint)
		}
		tb.Skipf("%s; %s", dynaliteMissing, installHint)
	}
	if dynaliteErr != nil {
		tb.Fatalf("starting dynalite: %v", dynaliteErr)
	}
	return dynaliteEndpoint
}

// AWSConfig returns a configuration for the DynamoDB server at endpoint:
// static dummy credentials, region us-east-1, and endpoint as the base
// endpoint. It reads no shared configuration files or environment
// credentials, and sets AWS_EC2_METADATA_DISABLED=true for the whole process
// so that nothing else in the binary looks for credentials on the network.
func AWSConfig(tb testing.TB, endpoint string) aws.Config {
	tb.Helper()
	// os.Setenv rather than tb.Setenv: tb.Setenv is refused in parallel tests.
	if err := os.Setenv("AWS_EC2_METADATA_DISABLED", "true"); err != nil {
		tb.Fatalf("setting AWS_EC2_METADATA_DISABLED: %v", err)
	}
	return aws.Config{
		Region:       Region,
		Credentials:  aws.NewCredentialsCache(credentials.NewStaticCredentialsProvider("AKIDLOCALTEST", "local-test-secret", "")),
		BaseEndpoint: aws.String(endpoint),
	}
}

var nameCounter atomic.Uint64

// UniqueName returns prefix followed by a suffix unique in this process and
// very likely across processes, usable as a DynamoDB table name
// (3–255 characters of A-Z a-z 0-9 _ - .).
func UniqueName(prefix string) string {
	var b [4]byte
	_, _ = rand.Read(b[:])
	return fmt.Sprintf("%s-%d-%s-%d", prefix, os.Getpid(), hex.EncodeToString(b[:]), nameCounter.Add(1))
}

// RepoRoot returns the directory holding go.mod, found by walking up from the
// working directory (a package directory under `go test`).
func RepoRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("no go.mod found above the working directory")
		}
		dir = parent
	}
}

// startDynalite finds node and dynalite and starts the server. missing is
// set when one of them is not installed; err when it failed to start.
func startDynalite() (endpoint, missing string, err error) {
	node, lookErr := exec.LookPath("node")
	if lookErr != nil {
		return "", "node (Node.js) is not on PATH", nil
	}
	root, err := RepoRoot()
	if err != nil {
		return "", "", err
	}
	cli := filepath.Join(root, "tools", "node_modules", "dynalite", "cli.js")
	if _, statErr := os.Stat(cli); statErr != nil {
		return "", cli + " does not exist", nil
	}
	var errs []error
	for attempt := 0; attempt < 5; attempt++ {
		endpoint, err := launch(node, cli)
		if err == nil {
			return endpoint, "", nil
		}
		// Most likely another process took the port between our probe and
		// dynalite's listen: try another one.
		errs = append(errs, err)
	}
	return "", "", errors.Join(errs...)
}

// watchdog runs cli.js in node and exits when its standard input closes, which
// happens when the test binary exits however it exits: the portable half of
// tying dynalite's lifetime to ours (the other half is Pdeathsig on Linux).
const watchdog = `const cli = process.env.DYNALITE_CLI;
process.argv.splice(1, 0, cli);
process.stdin.on('end', () => process.exit(0));
process.stdin.on('error', () => process.exit(0));
process.stdin.resume();
require(cli);`

// launch starts dynalite on a free loopback port and waits until it answers.
func launch(node, cli string) (string, error) {
	port, err := freePort()
	if err != nil {
		return "", err
	}
	endpoint := "http://127.0.0.1:" + strconv.Itoa(port)

	type result struct {
		cmd *exec.Cmd
		err error
	}
	started := make(chan result, 1)
	exited := make(chan struct{})
	var output lockedBuffer
	go func() {
		// Pdeathsig fires when the thread that started the child ends, not
		// the process: keep this goroutine, locked to its thread, waiting on
		// the child for as long as the child lives.
		runtime.LockOSThread()
		cmd := exec.Command(node, "-e", watchdog, "--",
			"--host", "127.0.0.1", "--port", strconv.Itoa(port),
			"--createTableMs", "0", "--deleteTableMs", "0", "--updateTableMs", "0")
		cmd.Env = append(os.Environ(), "DYNALITE_CLI="+cli)
		cmd.Stdout = &output
		cmd.Stderr = &output
		cmd.SysProcAttr = sysProcAttr()
		stdin, err := cmd.StdinPipe()
		if err != nil {
			started <- result{err: err}
			return
		}
		if err := cmd.Start(); err != nil {
			started <- result{err: err}
			return
		}
		// Hold the write end of stdin open until the process exits.
		keepAlive = append(keepAlive, stdin)
		started <- result{cmd: cmd}
		_ = cmd.Wait()
		close(exited)
	}()
	r := <-started
	if r.err != nil {
		return "", fmt.Errorf("running node: %w", r.err)
	}

	deadline := time.Now().Add(30 * time.Second)
	client := &http.Client{Timeout: time.Second, Transport: &http.Transport{Proxy: nil}}
	for time.Now().Before(deadline) {
		select {
		case <-exited:
			return "", fmt.Errorf("dynalite on port %d exited: %s", port, strings.TrimSpace(output.String()))
		default:
		}
		if answers(client, endpoint) {
			return endpoint, nil
		}
		time.Sleep(25 * time.Millisecond)
	}
	_ = r.cmd.Process.Kill()
	<-exited
	return "", fmt.Errorf("dynalite on port %d did not answer within 30s: %s", port, strings.TrimSpace(output.String()))
}

// keepAlive holds the stdin pipes of started servers so that they are never
// closed (nor garbage collected) before the process exits. It is written only
// inside dynaliteOnce.
var keepAlive []io.WriteCloser

// answers reports whether a DynamoDB-like server answers at endpoint.
func answers(client *http.Client, endpoint string) bool {
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, endpoint, strings.NewReader("{}"))
	if err != nil {
		return false
	}
	req.Header.Set("X-Amz-Target", "DynamoDB_20120810.ListTables")
	req.Header.Set("Content-Type", "application/x-amz-json-1.0")
	resp, err := client.Do(req)
	if err != nil {
		return false
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	_ = resp.Body.Close()
	// dynalite answers an unsigned request with 400 MissingAuthenticationToken.
	return resp.StatusCode > 0
}

// freePort returns a loopback port that was free a moment ago.
func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// lockedBuffer collects the server's output for error messages.
type lockedBuffer struct {
	mu sync.Mutex
	b  []byte
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if len(l.b) < 64<<10 {
		l.b = append(l.b, p...)
	}
	return len(p), nil
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return string(l.b)
}

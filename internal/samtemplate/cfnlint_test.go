package samtemplate

import (
	"bytes"
	"context"
	"errors"
	"os"
	"os/exec"
	"slices"
	"strings"
	"testing"
	"time"
)

// cfnLintCommands are the ways to run cfn-lint, in order: its own command,
// then the Python module (cfn-lint 1.x has no `python3 -m cfnlint`: the
// second form runs the same entry point as the command).
var cfnLintCommands = [][]string{
	{"cfn-lint"},
	{"python3", "-m", "cfnlint"},
	{"python3", "-c", "import sys; sys.argv[0] = 'cfn-lint'; from cfnlint.runner import main; sys.exit(main())"},
}

// findCfnLint returns the first of cfnLintCommands that answers --version,
// and that version; nil when none does (a pyenv shim, say, is on PATH for a
// Python that lacks cfn-lint).
func findCfnLint(t *testing.T) ([]string, string) {
	t.Helper()
	for _, c := range cfnLintCommands {
		if _, err := exec.LookPath(c[0]); err != nil {
			continue
		}
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		out, err := exec.CommandContext(ctx, c[0], append(slices.Clone(c[1:]), "--version")...).CombinedOutput()
		cancel()
		if v := strings.TrimSpace(string(out)); err == nil && strings.HasPrefix(v, "cfn-lint ") {
			return c, v
		}
	}
	return nil, ""
}

// template.yaml passes cfn-lint (with the SAM transform) with no finding at
// all: no error, no warning, and no informational finding (the I rules,
// which cfn-lint runs only when asked). A rule that is wrong about this
// template is ignored in the template's own Metadata, with a comment why,
// never here. Without cfn-lint the test skips, except on CI (CI=true),
// whose machine image ships it.
func TestCfnLint(t *testing.T) {
	cmd, version := findCfnLint(t)
	if cmd == nil {
		const msg = "cfn-lint is missing: neither `cfn-lint` nor python3's cfnlint module runs (pip install cfn-lint)"
		if os.Getenv("CI") == "true" {
			t.Fatal(msg)
		}
		t.Skip(msg)
	}
	t.Log(version)

	root := repoRoot(t)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	args := append(slices.Clone(cmd[1:]),
		"--format", "parseable",
		"--include-checks", "I",
		"--non-zero-exit-code", "informational",
		"--", "template.yaml")
	c := exec.CommandContext(ctx, cmd[0], args...)
	c.Dir = root
	var stdout, stderr bytes.Buffer
	c.Stdout, c.Stderr = &stdout, &stderr
	err := c.Run()
	if s := strings.TrimSpace(stderr.String()); s != "" {
		t.Logf("cfn-lint stderr:\n%s", s)
	}
	findings := strings.TrimSpace(stdout.String())
	var exit *exec.ExitError
	switch {
	case err != nil && !errors.As(err, &exit):
		t.Fatalf("%s: %v", strings.Join(cmd, " "), err)
	case err != nil || findings != "":
		t.Errorf("cfn-lint template.yaml (%v): fix each finding, or, for a rule that is wrong here, ignore it in the template's Metadata with a comment why:\n%s", err, findings)
	}
}

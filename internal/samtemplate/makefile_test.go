package samtemplate

import (
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// makeDefinesTarget reports whether the Makefile text has a rule that makes
// target: an explicit rule naming it, a pattern rule (build-%, build-%Function)
// whose pattern matches it with a non-empty stem, or a static pattern rule
// whose literal target list names it and whose pattern matches it. Target
// lists spelled with variables are not expanded, so they never count;
// .PHONY and other special targets define no rule.
func makeDefinesTarget(makefile, target string) bool {
	inDefine := false
	for _, line := range makeLines(makefile) {
		trimmed := strings.TrimSpace(line)
		switch {
		case inDefine:
			if trimmed == "endef" {
				inDefine = false
			}
			continue
		case strings.HasPrefix(trimmed, "define "), trimmed == "define":
			inDefine = true
			continue
		case strings.HasPrefix(line, "\t"), trimmed == "", strings.HasPrefix(trimmed, "#"):
			continue // recipe, blank, comment
		case makeAssignment.MatchString(trimmed):
			continue
		}
		targets, rest, ok := splitRule(trimmed)
		if !ok {
			continue
		}
		// A target-specific variable ("t: export X := y") makes no rule.
		if makeAssignment.MatchString(strings.TrimSpace(rest)) {
			continue
		}
		// Static pattern rule: "targets: target-pattern: prereqs".
		var pattern string
		if p, _, ok := splitRule(strings.TrimSpace(rest)); ok && len(p) == 1 && strings.Contains(p[0], "%") {
			pattern = p[0]
		}
		for _, name := range targets {
			if strings.HasPrefix(name, ".") || strings.Contains(name, "$") {
				continue
			}
			if pattern != "" {
				if name == target && matchPattern(pattern, target) {
					return true
				}
				continue
			}
			if name == target || (strings.Contains(name, "%") && matchPattern(name, target)) {
				return true
			}
		}
	}
	return false
}

// makeAssignment matches a variable assignment, possibly exported or overridden.
var makeAssignment = regexp.MustCompile(`^(?:(?:export|override|private)\s+)*[A-Za-z0-9_.-]+\s*(?:::=|:::=|:=|\?=|\+=|!=|=)`)

// makeLines joins backslash-continued lines.
func makeLines(text string) []string {
	var out []string
	var cur strings.Builder
	for _, line := range strings.Split(text, "\n") {
		line = strings.TrimRight(line, "\r")
		if strings.HasSuffix(line, "\\") {
			cur.WriteString(strings.TrimSuffix(line, "\\") + " ")
			continue
		}
		cur.WriteString(line)
		out = append(out, cur.String())
		cur.Reset()
	}
	return out
}

// splitRule splits "a b: rest" (or "a b:: rest") into its targets and rest.
func splitRule(line string) (targets []string, rest string, ok bool) {
	i := strings.IndexByte(line, ':')
	if i <= 0 {
		return nil, "", false
	}
	rest = line[i+1:]
	if strings.HasPrefix(rest, ":") {
		rest = rest[1:]
	}
	if strings.HasPrefix(rest, "=") {
		return nil, "", false // ":=" is an assignment
	}
	return strings.Fields(line[:i]), rest, true
}

// matchPattern matches a make pattern (one %, a non-empty stem).
func matchPattern(pattern, name string) bool {
	prefix, suffix, ok := strings.Cut(pattern, "%")
	if !ok {
		return pattern == name
	}
	return len(name) > len(prefix)+len(suffix) && strings.HasPrefix(name, prefix) && strings.HasSuffix(name, suffix)
}

func TestMakeDefinesTarget(t *testing.T) {
	cases := []struct {
		name, makefile, target string
		want                   bool
	}{
		{"explicit", "build-ConnectFunction:\n\tgo build\n", "build-ConnectFunction", true},
		{"explicit other", "build-DefaultFunction:\n\tgo build\n", "build-ConnectFunction", false},
		{"pattern", "build-%:\n\tgo build ./functions/$*\n", "build-ConnectFunction", true},
		{"pattern with suffix", "build-%Function:\n\tgo build\n", "build-PublishFunction", true},
		{"pattern other suffix", "build-%Lambda:\n\tgo build\n", "build-PublishFunction", false},
		{"pattern needs a stem", "build-%Function:\n\tgo build\n", "build-Function", false},
		{"static pattern lists it", "build-A build-ConnectFunction: build-%:\n\tgo build\n", "build-ConnectFunction", true},
		{"static pattern does not list it", "build-A build-B: build-%:\n\tgo build\n", "build-ConnectFunction", false},
		{"static pattern mismatch", "build-ConnectFunction: build-%Lambda:\n\tgo build\n", "build-ConnectFunction", false},
		{"phony only", ".PHONY: build-ConnectFunction\n", "build-ConnectFunction", false},
		{"variable target list", "FNS := build-ConnectFunction\n$(FNS):\n\tgo build\n", "build-ConnectFunction", false},
		{"assignment", "build-ConnectFunction := x\n", "build-ConnectFunction", false},
		{"target-specific variable", "build-ConnectFunction: export X := y\n", "build-ConnectFunction", false},
		{"in a recipe", "all:\n\tbuild-ConnectFunction: x\n", "build-ConnectFunction", false},
		{"in a comment", "# build-ConnectFunction:\n", "build-ConnectFunction", false},
		{"in a define", "define X\nbuild-ConnectFunction:\nendef\n", "build-ConnectFunction", false},
		{"continued target list", "build-A \\\n build-ConnectFunction:\n\tgo build\n", "build-ConnectFunction", true},
		{"double colon", "build-ConnectFunction::\n\tgo build\n", "build-ConnectFunction", true},
	}
	for _, c := range cases {
		if got := makeDefinesTarget(c.makefile, c.target); got != c.want {
			t.Errorf("%s: makeDefinesTarget(%q) = %v, want %v", c.name, c.target, got, c.want)
		}
	}
}

// What `sam build` would run for each function, by make itself (dry run):
// a static linux/arm64 binary named bootstrap in ARTIFACTS_DIR, from
// ./functions/<name>, with -tags lambda.norpc.
func TestMakeBuildTargetsDryRun(t *testing.T) {
	makePath, err := exec.LookPath("make")
	if err != nil {
		t.Skip("no make on PATH")
	}
	tm := realTemplate(t)
	root := repoRoot(t)
	artifacts := t.TempDir()
	for _, id := range sortedKeys(tm.Functions) {
		ctx := filepath.Join(filepath.Dir(tm.Path), tm.functionBuild(t, id).contextPath)
		cmd := exec.Command(makePath, "-n", "-s", "build-"+id, "ARTIFACTS_DIR="+artifacts)
		cmd.Dir = ctx
		cmd.Env = append(os.Environ(), "MAKEFLAGS=")
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Errorf("make -n build-%s: %v\n%s", id, err, out)
			continue
		}
		dir := strings.ToLower(strings.TrimSuffix(id, "Function"))
		for _, want := range []string{
			"CGO_ENABLED=0", "GOOS=linux", "GOARCH=arm64", " build ", "-tags lambda.norpc", "-trimpath",
			artifacts + "/bootstrap", "./functions/" + dir,
		} {
			if !strings.Contains(string(out), want) {
				t.Errorf("make -n build-%s does not run %q:\n%s", id, want, out)
			}
		}
		if _, err := os.Stat(filepath.Join(root, "functions", dir)); err != nil {
			t.Logf("functions/%s does not exist yet: `sam build` would fail for %s", dir, id)
		}
	}
}

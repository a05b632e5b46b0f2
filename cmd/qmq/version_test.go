package main

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"runtime/debug"
	"strings"
	"testing"
)

func TestReadVersion(t *testing.T) {
	stamped := func(mainVersion string, settings ...string) *debug.BuildInfo {
		bi := &debug.BuildInfo{GoVersion: "go1.99.1", Main: debug.Module{Path: "github.com/qmq-go/qmq", Version: mainVersion}}
		for i := 0; i+1 < len(settings); i += 2 {
			bi.Settings = append(bi.Settings, debug.BuildSetting{Key: settings[i], Value: settings[i+1]})
		}
		return bi
	}
	const rev = "0123456789abcdef0123456789abcdef01234567"
	const other = "fedcba9876543210fedcba9876543210fedcba98"
	for _, tc := range []struct {
		name                string
		ldVersion, ldCommit string
		bi                  *debug.BuildInfo
		ok                  bool
		want                buildVersion
	}{
		{"make build in a clone: the stamp gives the commit", "v1.2.0-3-g0123456-dirty", rev,
			stamped("v1.2.1-0.20260101000000-0123456789ab+dirty", "vcs.revision", rev, "vcs.modified", "true"), true,
			buildVersion{Version: "v1.2.0-3-g0123456-dirty", Commit: rev, Modified: true, Go: "go1.99.1"}},
		{"the stamp wins over -X commit", "v1.2.0", other,
			stamped("(devel)", "vcs.revision", rev, "vcs.modified", "false"), true,
			buildVersion{Version: "v1.2.0", Commit: rev, Go: "go1.99.1"}},
		{"make build in a worktree: no stamp, -X commit", "0123456-dirty", rev, stamped("(devel)"), true,
			buildVersion{Version: "0123456-dirty", Commit: rev, Modified: true, Go: "go1.99.1"}},
		{"make build, clean tree, no stamp", "v1.2.0", rev, stamped("(devel)"), true,
			buildVersion{Version: "v1.2.0", Commit: rev, Go: "go1.99.1"}},
		{"go build in a clone: pseudo-version and stamp", "", "",
			stamped("v0.0.0-20260101000000-0123456789ab", "vcs.revision", rev, "vcs.modified", "false"), true,
			buildVersion{Version: "v0.0.0-20260101000000-0123456789ab", Commit: rev, Go: "go1.99.1"}},
		{"go install @v1.3.0: module version, no stamp", "", "", stamped("v1.3.0"), true,
			buildVersion{Version: "v1.3.0", Go: "go1.99.1"}},
		{"go build without VCS", "", "", stamped("(devel)"), true,
			buildVersion{Version: "dev", Go: "go1.99.1"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := readVersion(tc.ldVersion, tc.ldCommit, tc.bi, tc.ok); got != tc.want {
				t.Errorf("readVersion = %+v, want %+v", got, tc.want)
			}
		})
	}
	if got := readVersion("", "", nil, false); got.Version != "dev" || got.Commit != "" || got.Go == "" {
		t.Errorf("readVersion without build info = %+v, want version dev, no commit, the running Go", got)
	}
	out := buildVersion{Version: "dev", Go: "go1.99.1"}.String()
	if !strings.HasPrefix(out, "qmq dev\ncommit unknown (") {
		t.Errorf("without a commit the output is\n%s\nwant it to say the commit is unknown and why", out)
	}
}

// repoRoot is the checkout holding this package, or the test is skipped
// when git cannot tell (a source tarball).
func repoRoot(t *testing.T) string {
	t.Helper()
	out, err := exec.Command("git", "rev-parse", "--show-toplevel").Output()
	if err != nil {
		t.Skipf("not in a git checkout (%v): nothing to compare the version with", err)
	}
	return strings.TrimSpace(string(out))
}

func gitOutput(t *testing.T, args ...string) string {
	t.Helper()
	out, err := exec.Command("git", args...).Output()
	if err != nil {
		t.Fatalf("git %s: %v", strings.Join(args, " "), err)
	}
	return strings.TrimSpace(string(out))
}

// runVersion runs `qmq version` and `qmq --version` on bin, checks that
// both print the same, and returns the lines.
func runVersion(t *testing.T, bin string) []string {
	t.Helper()
	var outs [2]string
	for i, arg := range []string{"version", "--version"} {
		out, err := exec.Command(bin, arg).CombinedOutput()
		if err != nil {
			t.Fatalf("qmq %s: %v\n%s", arg, err, out)
		}
		outs[i] = string(out)
	}
	if outs[0] != outs[1] {
		t.Errorf("qmq version printed\n%s\nqmq --version printed\n%s", outs[0], outs[1])
	}
	return strings.Split(strings.TrimSpace(outs[0]), "\n")
}

// TestVersionMakeBuild builds the binary the way users do, with `make build`,
// and expects git describe's version and HEAD's commit.
func TestVersionMakeBuild(t *testing.T) {
	root := repoRoot(t)
	if _, err := exec.LookPath("make"); err != nil {
		t.Skip("make not installed")
	}
	bin := filepath.Join(t.TempDir(), "qmq")
	build := exec.Command("make", "-C", root, "--no-print-directory", "build", "BIN="+bin)
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("make build: %v\n%s", err, out)
	}
	describe := gitOutput(t, "describe", "--tags", "--always", "--dirty")
	head := gitOutput(t, "rev-parse", "HEAD")
	lines := runVersion(t, bin)
	if len(lines) != 3 || lines[0] != "qmq "+describe || !strings.HasPrefix(lines[1], "commit "+head) ||
		strings.HasSuffix(describe, "-dirty") != strings.Contains(lines[1], "uncommitted") {
		t.Fatalf("qmq version printed\n%s\nwant qmq %s, commit %s (uncommitted changes: %v), the Go release",
			strings.Join(lines, "\n"), describe, head, strings.HasSuffix(describe, "-dirty"))
	}
}

// TestVersionGoBuild builds with plain `go build`, which takes the commit from
// Go's VCS stamp and the version from the module's pseudo-version.
func TestVersionGoBuild(t *testing.T) {
	root := repoRoot(t)
	if fi, err := os.Stat(filepath.Join(root, ".git")); err != nil || !fi.IsDir() {
		t.Skip("a git worktree (.git is a file): Go writes no VCS stamp there; TestVersionMakeBuild covers it")
	}
	bin := filepath.Join(t.TempDir(), "qmq")
	// -buildvcs=auto on the command line beats a GOFLAGS=-buildvcs=false.
	build := exec.Command("go", "build", "-buildvcs=auto", "-o", bin, ".")
	var stderr bytes.Buffer
	build.Stderr = &stderr
	if err := build.Run(); err != nil {
		t.Fatalf("go build: %v\n%s", err, stderr.String())
	}
	head := gitOutput(t, "rev-parse", "HEAD")
	lines := runVersion(t, bin)
	if len(lines) != 3 || !strings.Contains(lines[0], head[:12]) || !strings.HasPrefix(lines[1], "commit "+head) {
		t.Fatalf("qmq version printed\n%s\nwant the pseudo-version and commit %s", strings.Join(lines, "\n"), head)
	}
}

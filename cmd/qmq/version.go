package main

import (
	"fmt"
	"runtime"
	"runtime/debug"
	"strings"
)

// version and commit are set by `make build` with
// -ldflags "-X main.version=… -X main.commit=…": version is
// `git describe --tags --always --dirty` (the nearest tag, the commits since
// it and the abbreviated commit, "-dirty" with uncommitted changes), commit
// is `git rev-parse HEAD`. A plain `go build` leaves both empty; then the
// module version and the VCS stamp that Go writes into the binary are used.
var (
	version string
	commit  string
)

// buildVersion is what `qmq version` reports.
type buildVersion struct {
	Version  string // "dev" when nothing better is known
	Commit   string // full hash; "" when unknown
	Modified bool   // built from a tree with uncommitted changes
	Go       string // toolchain, e.g. go1.26.8
}

// readVersion combines the link-time values with the binary's build info
// (ok=false: none). Go's VCS stamp (vcs.revision, vcs.modified) is preferred
// for the commit: it describes exactly the files compiled. It is absent with
// -buildvcs=false and in git worktrees (Go looks for a .git directory; a
// worktree's .git is a file), which is why `make build` passes the commit
// too; then a "-dirty" version says whether the tree was modified.
func readVersion(ldVersion, ldCommit string, bi *debug.BuildInfo, ok bool) buildVersion {
	v := buildVersion{Version: ldVersion, Commit: ldCommit, Go: runtime.Version()}
	if ldCommit != "" {
		v.Modified = strings.HasSuffix(ldVersion, "-dirty")
	}
	if !ok || bi == nil {
		if v.Version == "" {
			v.Version = "dev"
		}
		return v
	}
	if bi.GoVersion != "" {
		v.Go = bi.GoVersion
	}
	if v.Version == "" {
		// `go install …/cmd/qmq@v1.2.3` records v1.2.3; a build in a git
		// clone records a pseudo-version; other builds "(devel)".
		if mv := bi.Main.Version; mv != "" && mv != "(devel)" {
			v.Version = mv
		} else {
			v.Version = "dev"
		}
	}
	settings := map[string]string{}
	for _, s := range bi.Settings {
		settings[s.Key] = s.Value
	}
	if rev := settings["vcs.revision"]; rev != "" {
		v.Commit = rev
		v.Modified = settings["vcs.modified"] == "true"
	}
	return v
}

// String is the output of `qmq version`, one fact per line.
func (v buildVersion) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "qmq %s\n", v.Version)
	switch {
	case v.Commit == "":
		b.WriteString("commit unknown (no VCS stamp: built outside a git clone, in a git worktree or with -buildvcs=false; `make build` records it)\n")
	case v.Modified:
		fmt.Fprintf(&b, "commit %s (with uncommitted changes)\n", v.Commit)
	default:
		fmt.Fprintf(&b, "commit %s\n", v.Commit)
	}
	fmt.Fprintf(&b, "built with %s %s/%s\n", v.Go, runtime.GOOS, runtime.GOARCH)
	return b.String()
}

// currentVersion is this binary's version.
func currentVersion() buildVersion {
	bi, ok := debug.ReadBuildInfo()
	return readVersion(version, commit, bi, ok)
}

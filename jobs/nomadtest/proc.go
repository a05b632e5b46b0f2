package nomadtest

import (
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/qmq-go/qmq/internal/procstat"
)

// The agent's tasks are its descendants: raw_exec tasks are children of
// Nomad's executor processes, which are children of the agent. A process is
// named by its PID and start time, so that a PID reused after its process
// ended is never signalled.

// watchdogEnv makes the test binary the watchdog of an agent: its value is
// "<agent pid>:<agent start time>:<directory to remove>".
const watchdogEnv = "QMQ_NOMADTEST_WATCHDOG"

type proc struct {
	pid   int
	start uint64 // /proc/<pid>/stat field 22, clock ticks since boot
}

func (p proc) String() string { return strconv.Itoa(p.pid) }

func procOf(pid int) (proc, error) {
	st, err := procstat.Read(pid)
	return proc{pid: pid, start: st.Start}, err
}

// alive reports whether p still runs (a zombie has ended).
func (p proc) alive() bool {
	st, err := procstat.Read(p.pid)
	return err == nil && !st.Ended() && (p.start == 0 || st.Start == p.start)
}

// descendants lists the processes below root.
func descendants(root proc) []proc {
	children := map[int][]proc{}
	for _, st := range procstat.All() {
		if st.State == 'Z' {
			continue
		}
		children[st.PPID] = append(children[st.PPID], proc{pid: st.PID, start: st.Start})
	}
	var out []proc
	queue := []int{root.pid}
	for len(queue) > 0 {
		pid := queue[0]
		queue = queue[1:]
		for _, c := range children[pid] {
			out = append(out, c)
			queue = append(queue, c.pid)
		}
	}
	return out
}

// stopTree asks the agent to stop (SIGINT: in dev mode it then destroys
// its allocations), waits up to grace for exited, then kills the agent and
// every process it had started that still runs. It returns the processes
// that survived SIGKILL (none, normally).
func stopTree(root proc, exited func() bool, grace time.Duration) []proc {
	tree := descendants(root)
	if root.alive() {
		_ = syscall.Kill(root.pid, syscall.SIGINT)
	}
	for deadline := time.Now().Add(grace); !exited() && time.Now().Before(deadline); {
		time.Sleep(100 * time.Millisecond)
	}
	if root.alive() {
		tree = append(tree, killTree(root)...)
	}
	for _, p := range tree {
		if p.alive() {
			_ = syscall.Kill(p.pid, syscall.SIGKILL)
		}
	}
	var left []proc
	for deadline := time.Now().Add(5 * time.Second); ; {
		left = left[:0]
		for _, p := range tree {
			if p.alive() {
				left = append(left, p)
			}
		}
		if len(left) == 0 || time.Now().After(deadline) {
			return left
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// killTree stops root and its descendants with SIGSTOP until no new process
// appears (a stopped process cannot fork or restart a task), then kills
// them all. It returns the processes it signalled.
func killTree(root proc) []proc {
	seen := map[int]proc{root.pid: root}
	_ = syscall.Kill(root.pid, syscall.SIGSTOP)
	for range 20 {
		grown := false
		for _, p := range descendants(root) {
			if _, ok := seen[p.pid]; !ok {
				seen[p.pid] = p
				grown = true
			}
			_ = syscall.Kill(p.pid, syscall.SIGSTOP)
		}
		if !grown {
			break
		}
	}
	out := make([]proc, 0, len(seen))
	for _, p := range seen {
		if p.alive() {
			_ = syscall.Kill(p.pid, syscall.SIGKILL)
		}
		out = append(out, p)
	}
	return out
}

// watchdog is the test binary run as the agent's watchdog: when its stdin
// closes, because the test binary stopped the agent or died, it stops
// whatever of the agent is left and removes the agent's directory. It
// keeps a list of the agent's processes meanwhile: if the agent dies
// first, its executors and their tasks are no longer found below it.
func watchdog(arg string) int {
	// Terminal signals are the test binary's business; our job starts
	// when it is gone.
	signal.Ignore(syscall.SIGINT, syscall.SIGTERM, syscall.SIGHUP, syscall.SIGPIPE)
	parts := strings.SplitN(arg, ":", 3)
	if len(parts) != 3 {
		fmt.Fprintf(os.Stderr, "nomadtest watchdog: bad %s=%q\n", watchdogEnv, arg)
		return 2
	}
	pid, err1 := strconv.Atoi(parts[0])
	start, err2 := strconv.ParseUint(parts[1], 10, 64)
	if err := errors.Join(err1, err2); err != nil {
		fmt.Fprintf(os.Stderr, "nomadtest watchdog: bad %s=%q: %v\n", watchdogEnv, arg, err)
		return 2
	}
	root := proc{pid: pid, start: start}
	eof := make(chan struct{})
	go func() {
		_, _ = io.Copy(io.Discard, os.Stdin)
		close(eof)
	}()
	known := map[proc]bool{}
	for waiting := true; waiting; {
		for _, p := range descendants(root) {
			known[p] = true
		}
		select {
		case <-eof:
			waiting = false
		case <-time.After(time.Second):
		}
	}
	var left []proc
	if root.alive() {
		fmt.Fprintf(os.Stderr, "nomadtest watchdog: the test binary is gone and nomad agent %d still runs: stopping it and its tasks\n", pid)
		left = stopTree(root, func() bool { return !root.alive() }, 30*time.Second)
	}
	killed := false
	for p := range known {
		if p.alive() {
			fmt.Fprintf(os.Stderr, "nomadtest watchdog: killing process %d, started by the nomad agent, which is gone\n", p.pid)
			_ = syscall.Kill(p.pid, syscall.SIGKILL)
			killed = true
		}
	}
	if killed {
		time.Sleep(time.Second)
	}
	for p := range known {
		if p.alive() {
			left = append(left, p)
		}
	}
	if strings.HasPrefix(filepath.Base(parts[2]), "qmq-nomadtest-") {
		if err := removeAll(parts[2]); err != nil {
			fmt.Fprintf(os.Stderr, "nomadtest watchdog: %v\n", err)
		}
	}
	if len(left) > 0 {
		fmt.Fprintf(os.Stderr, "nomadtest watchdog: still alive after SIGKILL: %v\n", left)
		return 1
	}
	return 0
}

// removeAll removes dir, first detaching what Nomad mounted below it (the
// tmpfs of each task's secrets and private directories), which an agent
// that did not stop cleanly leaves behind.
func removeAll(dir string) error {
	data, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		return err
	}
	var points []string
	for _, line := range strings.Split(string(data), "\n") {
		f := strings.Fields(line)
		if len(f) > 4 && strings.HasPrefix(f[4], dir+"/") {
			points = append(points, f[4])
		}
	}
	// Deepest first.
	sort.Slice(points, func(i, j int) bool { return len(points[i]) > len(points[j]) })
	var errs []error
	for _, p := range points {
		if err := syscall.Unmount(p, syscall.MNT_DETACH); err != nil {
			errs = append(errs, fmt.Errorf("unmount %s: %w", p, err))
		}
	}
	if err := os.RemoveAll(dir); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

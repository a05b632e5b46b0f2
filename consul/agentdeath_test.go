package consul

import (
	"bufio"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/qmq-go/qmq/internal/procstat"
)

// helperEnv makes this test binary the helper of TestAgentDiesWithTestBinary.
const helperEnv = "QMQ_CONSUL_AGENT_DEATH_HELPER"

// The shared test agent must not outlive a test binary that dies without
// stopping it (kill -9, a timeout's panic): left running, it holds ports and
// a data directory, and the next run's agents pile up beside it.
func TestAgentDiesWithTestBinary(t *testing.T) {
	cmd := exec.Command(os.Args[0], "-test.run=^TestAgentDeathHelper$", "-test.v")
	cmd.Env = append(os.Environ(), helperEnv+"=1")
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer cmd.Process.Kill()
	agentPID := make(chan int, 1)
	var helperOut strings.Builder // what the helper printed, for the failure message
	go func() {
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			helperOut.WriteString(sc.Text() + "\n")
			if pid, ok := strings.CutPrefix(sc.Text(), "agent pid "); ok {
				n, _ := strconv.Atoi(pid)
				agentPID <- n
			}
		}
		close(agentPID)
	}()
	var pid int
	select {
	case pid = <-agentPID:
	case <-time.After(90 * time.Second):
		t.Fatal("the helper test binary did not report its consul agent within 90s")
	}
	if pid <= 0 {
		t.Fatalf("the helper test binary ended without reporting its consul agent; it printed:\n%s", helperOut.String())
	}
	if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	_ = cmd.Wait()
	for deadline := time.Now().Add(10 * time.Second); processRuns(pid); {
		if time.Now().After(deadline) {
			syscall.Kill(pid, syscall.SIGKILL)
			t.Fatalf("consul agent %d still runs 10s after its test binary was killed", pid)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// TestAgentDeathHelper is TestAgentDiesWithTestBinary's helper: it starts
// the shared agent, reports its PID and waits to be killed.
func TestAgentDeathHelper(t *testing.T) {
	if os.Getenv(helperEnv) == "" {
		t.Skip("helper of TestAgentDiesWithTestBinary")
	}
	agent(t)
	// The agent runs through a wrapper that execs setpriv, which execs
	// consul: on a loaded machine the last exec may trail the agent's
	// readiness as seen by the SDK (which also starts short-lived consul
	// children of its own), so look again for a while.
	var pid int
	var err error
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(100 * time.Millisecond) {
		if pid, err = childNamed("consul"); err == nil || time.Now().After(deadline) {
			break
		}
	}
	if err != nil {
		t.Fatal(err)
	}
	fmt.Printf("agent pid %d\n", pid)
	time.Sleep(time.Minute)
	t.Fatal("not killed within a minute")
}

// childNamed finds the child process of this one whose command is name.
func childNamed(name string) (int, error) {
	for _, st := range procstat.All() {
		if st.Comm == name && st.PPID == os.Getpid() {
			return st.PID, nil
		}
	}
	return 0, fmt.Errorf("no child process named %q of process %d", name, os.Getpid())
}

// processRuns reports whether pid exists and has not ended (a zombie has).
func processRuns(pid int) bool {
	st, err := procstat.Read(pid)
	return err == nil && !st.Ended()
}

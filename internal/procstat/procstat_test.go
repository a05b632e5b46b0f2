package procstat

import (
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"
)

func TestReadSelf(t *testing.T) {
	st, err := Read(os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	if st.PID != os.Getpid() || st.PPID != os.Getppid() || st.Ended() || st.Start == 0 {
		t.Fatalf("stat of this process = %+v, want pid %d, parent %d, running, a start time", st, os.Getpid(), os.Getppid())
	}
	if !strings.HasPrefix("procstat.test", st.Comm) || st.Comm == "" {
		t.Fatalf("command name %q is not a prefix of procstat.test", st.Comm)
	}
}

// A child that exited and is not reaped yet is a zombie: Ended, found by All
// as a child of this process under its own name.
func TestChildEndedUnreaped(t *testing.T) {
	cmd := exec.Command("sleep", "0")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer cmd.Wait()
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		var found *Stat
		for _, st := range All() {
			if st.PID == cmd.Process.Pid {
				found = &st
			}
		}
		if found == nil {
			t.Fatalf("All did not list child %d", cmd.Process.Pid)
		}
		if found.PPID != os.Getpid() || found.Comm != "sleep" {
			t.Fatalf("child's stat = %+v, want parent %d and command sleep", *found, os.Getpid())
		}
		if found.Ended() {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("child %d still not ended after 10s: %+v", cmd.Process.Pid, *found)
		}
	}
}

func TestReadMissing(t *testing.T) {
	if _, err := Read(1 << 30); err == nil {
		t.Fatal("Read of a PID that cannot exist succeeded")
	}
}

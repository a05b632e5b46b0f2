package main

import (
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/qmq-go/qmq/internal/testutil"
)

// freeDelayPort returns a port p with p, p+1 and p+2 free (qmq dev's delay
// server listens on --delay-port, + 1 and + 2).
func freeDelayPort(t *testing.T) int {
	t.Helper()
	// qmq dev's delay server takes p (broker.port), p+1 (sync.port) and p+2
	// (delay.http.port): all three must be free.
	for range 50 {
		var held []net.Listener
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		held = append(held, l)
		p := l.Addr().(*net.TCPAddr).Port
		for _, q := range []int{p + 1, p + 2} {
			if l2, err := net.Listen("tcp", "127.0.0.1:"+strconv.Itoa(q)); err == nil {
				held = append(held, l2)
			}
		}
		for _, h := range held {
			h.Close()
		}
		if len(held) == 3 {
			return p
		}
	}
	t.Fatal("no free ports p, p+1, p+2")
	return 0
}

// TestDevDelaySend is the README's delay walkthrough through the real
// binary: qmq dev (with its delay group), qmq consume, then qmq send
// --delay 2s and --at: the messages arrive once due, carrying their
// schedule time, and the delay server's /health counts them.
func TestDevDelaySend(t *testing.T) {
	ports := devPorts(t)
	dp := freeDelayPort(t)
	data := t.TempDir()
	dev := startDev(t, data, ports, fmt.Sprintf("--delay-port=%d", dp))

	got := consumeAsync(t, dev.meta, "later", "g1", 2)
	time.Sleep(2 * time.Second) // let the new group register its cursor before anything is sent
	sentAt := time.Now()
	send(t, dev.meta, "later", "--body", "in two seconds", "--delay", "2s")
	at := sentAt.Add(3 * time.Second).UTC().Format(time.RFC3339Nano)
	send(t, dev.meta, "later", "--body", "at a time", "--at", at)
	msgs := waitConsumed(t, got, 2)
	done := time.Now()
	var lastDue time.Time
	for _, m := range msgs {
		due, err := time.Parse(time.RFC3339Nano, m.ScheduledAt)
		if err != nil {
			t.Fatalf("message %s carries no schedule time (%q): it did not go through the delay server", m.ID, m.ScheduledAt)
		}
		if due.Before(sentAt.Add(2 * time.Second).Truncate(time.Millisecond)) {
			t.Errorf("message %s is due %v, want at least 2 s after sending (%v)", m.ID, due, sentAt)
		}
		if due.After(lastDue) {
			lastDue = due
		}
	}
	// The consumer exits after the last message; its process adds little.
	if late := done.Sub(lastDue); late < 0 || late > 3*time.Second {
		t.Errorf("the consumer finished %v after the last message was due; want between 0 and 3 s", late)
	} else {
		t.Logf("consumer finished %v after the last due time", late.Round(time.Millisecond))
	}

	resp, err := http.Get(fmt.Sprintf("http://127.0.0.1:%d/health", dp+2))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var h struct {
		Status     string `json:"status"`
		Role       string `json:"role"`
		Group      string `json:"group"`
		Dispatched int64  `json:"dispatched"`
		Pending    int64  `json:"pending"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&h); err != nil {
		t.Fatal(err)
	}
	if h.Status != "ok" || h.Role != "DELAY_MASTER" || h.Group != "dev_delay" || h.Dispatched != 2 || h.Pending != 0 {
		t.Errorf("delay /health: %+v; want ok, DELAY_MASTER, dev_delay, 2 dispatched, 0 pending", h)
	}

	// kill -9 with a message pending, restart on the same data: it arrives.
	send(t, dev.meta, "later", "--body", "across a crash", "--delay", "3s")
	_ = dev.cmd.Process.Signal(syscall.SIGKILL)
	_ = dev.cmd.Wait()
	dev = startDev(t, data, ports, fmt.Sprintf("--delay-port=%d", dp))
	msgs = waitConsumed(t, consumeAsync(t, dev.meta, "later", "g1", 1), 1)
	if msgs[0].Body != "across a crash" {
		t.Fatalf("after the crash got %+v", msgs[0])
	}
}

// startProcess runs qmq with args until the test ends (SIGTERM, then
// SIGKILL after 10 s) and returns its command and log.
func startProcess(t *testing.T, name string, args ...string) (*exec.Cmd, *syncBuffer) {
	t.Helper()
	log := &syncBuffer{}
	cmd := exec.Command(qmqBin, args...)
	cmd.Stdout, cmd.Stderr = log, log
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() { _ = cmd.Wait(); close(done) }()
	t.Cleanup(func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			_ = cmd.Process.Kill()
			<-done
		}
		if t.Failed() {
			t.Logf("%s log:\n%s", name, log.String())
		}
	})
	return cmd, log
}

// TestBinaryDelayServer: separate `qmq metaserver`, `qmq broker` and
// `qmq delay` processes, registered with `qmq tools AddBroker` as an
// operator does; a message sent with `qmq send --delay 1s` reaches
// `qmq consume` once due; SIGTERM stops the delay server cleanly
// (OFFLINE, exit 0).
func TestBinaryDelayServer(t *testing.T) {
	dir := t.TempDir()
	writeFile(t, filepath.Join(dir, "valid-api-tokens.properties"), seedToken+"=token1\n")
	writeFile(t, filepath.Join(dir, "metaserver.properties"), "store.root="+filepath.Join(dir, "meta")+"\nmin.group.num=1\n")
	ports := testutil.FreePorts(t, 7)
	metaHTTP, metaTCP := ports[0], ports[1]
	startMetaProcess(t, dir, metaHTTP, metaTCP)
	ms := fmt.Sprintf("--metaserver=127.0.0.1:%d", metaHTTP)
	meta := fmt.Sprintf("http://127.0.0.1:%d/meta/address", metaHTTP)
	hostname, err := os.Hostname()
	if err != nil {
		t.Fatal(err)
	}
	bPort, bSync, dPort, dSync, dHTTP := ports[2], ports[3], ports[4], ports[5], ports[6]
	for _, r := range []struct {
		group      string
		role, port int
		sync       int
	}{{"g1", 0, bPort, bSync}, {"d1", 5, dPort, dSync}} {
		if out, errOut, code := runTool(t, "AddBroker", ms, "--token="+seedToken, "--brokerGroup="+r.group, fmt.Sprintf("--role=%d", r.role),
			"--hostname="+hostname, "--ip=127.0.0.1", fmt.Sprintf("--servePort=%d", r.port), fmt.Sprintf("--syncPort=%d", r.sync)); code != 0 {
			t.Fatalf("AddBroker %s: %s %s", r.group, out, errOut)
		}
	}
	writeFile(t, filepath.Join(dir, "broker.properties"), "meta.server.endpoint="+meta+"\n")
	writeFile(t, filepath.Join(dir, "delay.properties"), "meta.server.endpoint="+meta+"\nstore.root="+filepath.Join(dir, "delay")+"\n")
	startProcess(t, "broker", "broker", "--conf", dir,
		"--set", fmt.Sprintf("broker.port=%d", bPort), "--set", fmt.Sprintf("sync.port=%d", bSync), "--set", "broker.http.port=-1",
		"--set", "broker.advertise.ip=127.0.0.1", "--set", "store.root="+filepath.Join(dir, "broker"),
		"--set", "messagelog.segment.size=16777216", "--set", "actionlog.segment.size=4194304", "--set", "consumerlog.segment.units=10000")
	delayCmd, delayLog := startProcess(t, "delay", "delay", "--conf", dir,
		"--set", fmt.Sprintf("broker.port=%d", dPort), "--set", fmt.Sprintf("sync.port=%d", dSync), "--set", fmt.Sprintf("delay.http.port=%d", dHTTP),
		"--set", "delay.advertise.ip=127.0.0.1", "--set", "per.segment.file.size=16777216")
	deadline := time.Now().Add(20 * time.Second)
	for !strings.Contains(delayLog.String(), "delay server online") {
		if time.Now().After(deadline) {
			t.Fatalf("the delay server did not go online:\n%s", delayLog.String())
		}
		time.Sleep(50 * time.Millisecond)
	}

	got := consumeAsync(t, meta, "later.bin", "g1", 1)
	time.Sleep(2 * time.Second) // let the new group register its cursor before anything is sent
	sentAt := time.Now()
	send(t, meta, "later.bin", "--body", "from the binaries", "--delay", "1s")
	msgs := waitConsumed(t, got, 1)
	if msgs[0].Body != "from the binaries" || msgs[0].ScheduledAt == "" {
		t.Fatalf("consumed %+v", msgs[0])
	}
	if took := time.Since(sentAt); took < time.Second {
		t.Errorf("the message arrived %v after sending, before its 1 s delay", took)
	}

	if err := delayCmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	deadline = time.Now().Add(10 * time.Second)
	for !strings.Contains(delayLog.String(), "delay server stopped") {
		if time.Now().After(deadline) {
			t.Fatalf("the delay server did not stop on SIGTERM:\n%s", delayLog.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
	if l := delayLog.String(); !strings.Contains(l, "delay server offline") {
		t.Errorf("no OFFLINE at shutdown:\n%s", l)
	}
}

// TestBinaryDelayFailsClearly: `qmq delay` without meta.server.endpoint,
// or with an unknown --set key, exits 1 with a sentence, not a stack.
func TestBinaryDelayFailsClearly(t *testing.T) {
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"delay", "--conf", t.TempDir()}, "meta.server.endpoint is required"},
		{[]string{"delay", "--conf", t.TempDir(), "--set", "meta.server.endpoint=x:1", "--set", "segment.scale.minutes=30"}, "segment.scale.minute"},
		{[]string{"delay", "--conf", t.TempDir(), "--set", "meta.server.endpoint=x:1", "--set", "failover.enable=true"}, "failover.enable=true needs wait.slave.wrote=true"},
	} {
		out, err := exec.Command(qmqBin, c.args...).CombinedOutput()
		if err == nil || !strings.Contains(string(out), c.want) || strings.Contains(string(out), "goroutine ") {
			t.Errorf("%v: %v\n%s\nwant a failure naming %q", c.args, err, out, c.want)
		}
	}
}

package main

import (
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"strconv"
	"syscall"
	"testing"
	"time"
)

// freeDelayPort returns a port p with p and p+2 free (qmq dev's delay
// server listens on --delay-port and --delay-port + 2).
func freeDelayPort(t *testing.T) int {
	t.Helper()
	for range 50 {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		p := l.Addr().(*net.TCPAddr).Port
		l2, err := net.Listen("tcp", "127.0.0.1:"+strconv.Itoa(p+2))
		l.Close()
		if err == nil {
			l2.Close()
			return p
		}
	}
	t.Fatal("no free pair of ports p, p+2")
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
		Scheduled  int64  `json:"scheduled"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&h); err != nil {
		t.Fatal(err)
	}
	if h.Status != "ok" || h.Role != "DELAY_MASTER" || h.Group != "dev_delay" || h.Dispatched != 2 || h.Scheduled != 0 {
		t.Errorf("delay /health: %+v; want ok, DELAY_MASTER, dev_delay, 2 dispatched, 0 scheduled", h)
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

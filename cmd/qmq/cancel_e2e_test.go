package main

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestDevCancelDelay is the README's CancelDelay walkthrough through the
// real binary: qmq dev gives its metaserver and delay server the same
// delay.admin.secret, so `qmq tools CancelDelay` withdraws a message sent
// with `qmq send --delay`; the consumer gets the other one, and the
// cancelled one never (restarts after a cancel: services/delay's
// TestCancelDelay).
func TestDevCancelDelay(t *testing.T) {
	ports := devPorts(t)
	dp := freeDelayPort(t)
	data := t.TempDir()
	dev := startDev(t, data, ports, fmt.Sprintf("--delay-port=%d", dp))
	token := devToken(t, data)

	got := consumeAsync(t, dev.meta, "withdrawn", "g1", 1)
	time.Sleep(2 * time.Second) // let the new group register its cursor before anything is sent
	gone := sendID(t, dev.meta, "withdrawn", "--body", "cancelled", "--delay", "4s")
	sendID(t, dev.meta, "withdrawn", "--body", "kept", "--delay", "6s")
	metaHostPort := strings.TrimSuffix(strings.TrimPrefix(dev.meta, "http://"), "/meta/address")
	out, err := exec.Command(qmqBin, "tools", "CancelDelay", "--metaserver="+metaHostPort, "--token="+token, "--subject=withdrawn", "--messageId="+gone).CombinedOutput()
	if err != nil {
		t.Fatalf("qmq tools CancelDelay: %v: %s", err, out)
	}
	var ans struct {
		Status int `json:"status"`
		Data   struct {
			Cancelled   bool   `json:"cancelled"`
			BrokerGroup string `json:"brokerGroup"`
		} `json:"data"`
	}
	if err := json.Unmarshal(out, &ans); err != nil || ans.Status != 0 || !ans.Data.Cancelled || ans.Data.BrokerGroup != "dev_delay" {
		t.Fatalf("CancelDelay printed %s (%v); want cancelled by dev_delay", out, err)
	}
	t.Logf("qmq tools CancelDelay: %s", strings.TrimSpace(string(out)))

	// The consumer stops after one message: it must be the kept one, which
	// is due 2 s after the cancelled one.
	msgs := waitConsumed(t, got, 1)
	if msgs[0].Body != "kept" {
		t.Fatalf("consumed %+v; the cancelled message was delivered", msgs[0])
	}
}

// sendID runs qmq send and returns the id it printed.
func sendID(t *testing.T, meta, subject string, args ...string) string {
	t.Helper()
	out, err := exec.Command(qmqBin, append([]string{"send", "--meta", meta, "--subject", subject}, args...)...).CombinedOutput()
	if err != nil {
		t.Fatalf("qmq send: %v: %s", err, out)
	}
	f := strings.Fields(string(out))
	if len(f) < 2 || f[0] != "sent" {
		t.Fatalf("qmq send printed %q; want \"sent <id> …\"", out)
	}
	return f[1]
}

// devToken reads the admin token qmq dev generated under data.
func devToken(t *testing.T, data string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(data, "conf", "valid-api-tokens.properties"))
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(b), "\n") {
		if k, _, ok := strings.Cut(line, "="); ok && !strings.HasPrefix(line, "#") {
			return k
		}
	}
	t.Fatalf("no token in %s", b)
	return ""
}

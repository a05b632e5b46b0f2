//go:build linux

package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/qmq-go/qmq/internal/testutil"
	"golang.org/x/sys/unix"
)

// syncBuffer is a bytes.Buffer a child process writes while the test reads.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// mountTmpfs mounts a tmpfs of size bytes on a new directory, or skips the
// test where mounting is not permitted (not root, no CAP_SYS_ADMIN).
func mountTmpfs(t *testing.T, size int64) string {
	t.Helper()
	dir := t.TempDir()
	if err := unix.Mount("tmpfs", dir, "tmpfs", 0, fmt.Sprintf("size=%d", size)); err != nil {
		t.Skipf("cannot mount a %d-byte tmpfs for a real full disk (needs root or CAP_SYS_ADMIN): %v", size, err)
	}
	t.Cleanup(func() { _ = unix.Unmount(dir, unix.MNT_DETACH) })
	return dir
}

// TestBinaryDiskFull runs a metaserver and a broker whose store.root is a
// real 64 MiB tmpfs. When the volume cannot hold the next message-log
// segment, the producer fails at once with the broker's reason, /health is
// 503 "degraded", the metaserver lists the group read-only; once space is
// freed the broker takes messages again without a restart.
func TestBinaryDiskFull(t *testing.T) {
	data := mountTmpfs(t, 64<<20)
	dir := t.TempDir()
	writeFile(t, filepath.Join(dir, "valid-api-tokens.properties"), seedToken+"=token1\n")
	writeFile(t, filepath.Join(dir, "metaserver.properties"), "store.root="+filepath.Join(dir, "meta")+"\nmin.group.num=1\n")
	ports := testutil.FreePorts(t, 5)
	metaHTTP, metaTCP := ports[0], ports[1]
	startMetaProcess(t, dir, metaHTTP, metaTCP)
	ms := fmt.Sprintf("--metaserver=127.0.0.1:%d", metaHTTP)
	hostname, err := os.Hostname()
	if err != nil {
		t.Fatal(err)
	}
	port, syncPort, httpPort := ports[2], ports[3], ports[4]
	if out, errOut, code := runTool(t, "AddBroker", ms, "--token="+seedToken, "--brokerGroup=g1", "--role=0", "--hostname="+hostname,
		"--ip=127.0.0.1", fmt.Sprintf("--servePort=%d", port), fmt.Sprintf("--syncPort=%d", syncPort)); code != 0 {
		t.Fatalf("AddBroker: %s %s", out, errOut)
	}
	meta := fmt.Sprintf("http://127.0.0.1:%d/meta/address", metaHTTP)
	writeFile(t, filepath.Join(dir, "broker.properties"), "meta.server.endpoint="+meta+"\n")
	blog := &syncBuffer{}
	broker := exec.Command(qmqBin, "broker", "--conf", dir,
		"--set", fmt.Sprintf("broker.port=%d", port), "--set", fmt.Sprintf("sync.port=%d", syncPort), "--set", fmt.Sprintf("broker.http.port=%d", httpPort),
		"--set", "broker.advertise.ip=127.0.0.1", "--set", "store.root="+data, "--set", "broker.heartbeat.interval.ms=500",
		"--set", "messagelog.segment.size=16777216", "--set", "actionlog.segment.size=4194304", "--set", "consumerlog.segment.units=10000",
		"--set", "disk.free.min.bytes=8388608", "--set", "disk.check.interval.ms=100")
	broker.Stdout, broker.Stderr = blog, blog
	if err := broker.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = broker.Process.Signal(syscall.SIGKILL)
		_ = broker.Wait()
		if t.Failed() {
			t.Logf("broker log:\n%s", blog.String())
		}
	})
	health := func() (int, map[string]any) {
		resp, err := http.Get(fmt.Sprintf("http://127.0.0.1:%d/health", httpPort))
		if err != nil {
			return 0, nil
		}
		defer resp.Body.Close()
		var h map[string]any
		_ = json.NewDecoder(resp.Body).Decode(&h)
		return resp.StatusCode, h
	}
	waitUntil := func(what string, cond func() bool) {
		t.Helper()
		deadline := time.Now().Add(20 * time.Second)
		for !cond() {
			if time.Now().After(deadline) {
				t.Fatalf("timed out waiting for %s", what)
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	groupState := func() string { // g1 is the only group
		out, _, _ := runTool(t, "ListBrokerGroups", ms)
		for _, st := range []string{"RW", "R", "NRW"} {
			if strings.Contains(out, `"brokerState":"`+st+`"`) {
				return st
			}
		}
		return out
	}
	send := func(args ...string) (string, error) {
		cmd := exec.Command(qmqBin, append([]string{"send", "--meta", meta, "--subject", "disk.full"}, args...)...)
		out, err := cmd.CombinedOutput()
		return string(out), err
	}
	waitUntil("the broker to be online and healthy", func() bool {
		code, h := health()
		return code == http.StatusOK && h["online"] == true
	})
	if out, err := send("--body", "first"); err != nil {
		t.Fatalf("first send: %v: %s", err, out)
	}

	// Leave 12 MiB: more than disk.free.min.bytes, less than the next 16 MiB segment.
	var st unix.Statfs_t
	if err := unix.Statfs(data, &st); err != nil {
		t.Fatal(err)
	}
	free := int64(st.Bavail) * int64(st.Bsize)
	filler, err := os.Create(filepath.Join(data, "filler"))
	if err != nil {
		t.Fatal(err)
	}
	if err := unix.Fallocate(int(filler.Fd()), 0, 0, free-12<<20); err != nil {
		t.Fatal(err)
	}
	filler.Close()

	start := time.Now()
	out, err := send("--count", "1000", "--size", "30000") // 30 MB: more than the segment holds
	took := time.Since(start)
	t.Logf("send on a full disk (%s): %v: %s", took.Round(time.Millisecond), err, out)
	if err == nil || !strings.Contains(out, "BROKER_READ_ONLY: disk full on broker g1 (127.0.0.1:") || !strings.Contains(out, "1 tries") ||
		!strings.Contains(out, "needs 16.0 MiB for a new segment (messagelog.segment.size); free space or add a group") {
		t.Fatalf("send on a full disk: %v: %s", err, out)
	}
	code, h := health()
	if code != http.StatusServiceUnavailable || h["status"] != "degraded" || h["state"] != "R" || !strings.Contains(fmt.Sprint(h["diskFull"]), "messagelog.segment.size") {
		t.Fatalf("/health on a full disk: %d %v", code, h)
	}
	waitUntil("the metaserver to list the group read-only", func() bool { return groupState() == "R" })

	// Free the space: the broker recovers by itself.
	if err := os.Remove(filepath.Join(data, "filler")); err != nil {
		t.Fatal(err)
	}
	start = time.Now()
	waitUntil("the broker to take messages again", func() bool {
		code, h := health()
		return code == http.StatusOK && h["status"] == "ok" && h["state"] == "RW"
	})
	recovered := time.Since(start)
	waitUntil("the metaserver to list the group writable", func() bool { return groupState() == "RW" })
	if out, err := send("--count", "100", "--size", "30000"); err != nil {
		t.Fatalf("send after space was freed: %v: %s", err, out)
	}
	t.Logf("recovered %s after the space was freed", recovered.Round(time.Millisecond))
	if n := strings.Count(blog.String(), "refusing messages: disk full"); n != 1 {
		t.Fatalf("%d refusal log lines, want 1", n)
	}
}

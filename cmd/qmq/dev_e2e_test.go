package main

import (
	"bufio"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"io/fs"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// devProcess is a `qmq dev` child process.
type devProcess struct {
	cmd  *exec.Cmd
	meta string
	log  *lockedLog
}

type lockedLog struct {
	ch  chan struct{}
	buf strings.Builder
}

func (l *lockedLog) Write(p []byte) (int, error) {
	l.ch <- struct{}{}
	defer func() { <-l.ch }()
	return l.buf.Write(p)
}

func (l *lockedLog) String() string {
	l.ch <- struct{}{}
	defer func() { <-l.ch }()
	return l.buf.String()
}

// startDev runs qmq dev on ports; extra are more flags. Without a
// --delay-port among them the delay server is turned off: its default port
// (broker port - 80) is not known to be free.
func startDev(t *testing.T, data string, ports [5]int, extra ...string) *devProcess {
	t.Helper()
	args := []string{"dev", "--data", data,
		fmt.Sprintf("--meta-http-port=%d", ports[0]), fmt.Sprintf("--meta-port=%d", ports[1]), fmt.Sprintf("--broker-port=%d", ports[2]),
		fmt.Sprintf("--sync-port=%d", ports[3]), fmt.Sprintf("--broker-http-port=%d", ports[4])}
	if !strings.Contains(strings.Join(extra, " "), "--delay-port") {
		args = append(args, "--delay-port=-1")
	}
	if !strings.Contains(strings.Join(extra, " "), "--backup-http") { // its default, 8082, is not known to be free
		args = append(args, "--backup-http=-1")
	}
	if !strings.Contains(strings.Join(extra, " "), "--console") { // nor is the console's, 8090
		args = append(args, "--console=off")
	}
	cmd := exec.Command(qmqBin, append(args, extra...)...)
	log := &lockedLog{ch: make(chan struct{}, 1)}
	cmd.Stderr = log
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	p := &devProcess{cmd: cmd, meta: fmt.Sprintf("http://127.0.0.1:%d/meta/address", ports[0]), log: log}
	t.Cleanup(func() {
		_ = cmd.Process.Signal(syscall.SIGKILL)
		_ = cmd.Wait()
		if t.Failed() {
			t.Logf("qmq dev log:\n%s", log.String())
		}
	})
	ready := make(chan struct{})
	go func() {
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			if strings.HasPrefix(sc.Text(), "qmq dev is running") {
				close(ready)
			}
		}
	}()
	select {
	case <-ready:
	case <-time.After(30 * time.Second):
		t.Fatalf("qmq dev did not start; log:\n%s", log.String())
	}
	return p
}

// consumeAsync runs `qmq consume --json --count n` and returns a channel with its decoded output.
func consumeAsync(t *testing.T, meta, subject, group string, n int) <-chan []consumedJSON {
	t.Helper()
	cmd := exec.Command(qmqBin, "consume", "--meta", meta, "--subject", subject, "--group", group, "--count", fmt.Sprint(n), "--json")
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	var errBuf strings.Builder
	cmd.Stderr = &errBuf
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	res := make(chan []consumedJSON, 1)
	go func() {
		data, _ := io.ReadAll(out)
		_ = cmd.Wait()
		var msgs []consumedJSON
		dec := json.NewDecoder(strings.NewReader(string(data)))
		for {
			var m consumedJSON
			if dec.Decode(&m) != nil {
				break
			}
			msgs = append(msgs, m)
		}
		res <- msgs
	}()
	t.Cleanup(func() { _ = cmd.Process.Kill() })
	return res
}

func send(t *testing.T, meta, subject string, args ...string) {
	t.Helper()
	cmd := exec.Command(qmqBin, append([]string{"send", "--meta", meta, "--subject", subject}, args...)...)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("qmq send: %v: %s", err, out)
	}
}

func waitConsumed(t *testing.T, ch <-chan []consumedJSON, want int) []consumedJSON {
	t.Helper()
	select {
	case msgs := <-ch:
		if len(msgs) != want {
			t.Fatalf("consumed %d messages, want %d: %+v", len(msgs), want, msgs)
		}
		return msgs
	case <-time.After(30 * time.Second):
		t.Fatalf("consumer did not get %d messages in 30s", want)
	}
	return nil
}

// TestDevSendConsume is the README's walkthrough: qmq dev, then qmq consume
// and qmq send from other terminals; then kill -9 and restart keeps data.
func TestDevSendConsume(t *testing.T) {
	data := t.TempDir()
	ports := devPorts(t)
	dev := startDev(t, data, ports)

	got := consumeAsync(t, dev.meta, "hello", "g1", 3)
	time.Sleep(2 * time.Second) // let the new group register its cursor before anything is sent
	send(t, dev.meta, "hello", "--body", "hi there", "--tag", "t1", "--prop", "k=v")
	send(t, dev.meta, "hello", "--count", "2", "--size", "100")
	msgs := waitConsumed(t, got, 3)
	if msgs[0].Body != "hi there" || msgs[0].Properties["k"] != "v" || len(msgs[0].Tags) != 1 || msgs[0].Tags[0] != "t1" {
		t.Fatalf("first message: %+v", msgs[0])
	}
	// A try-out fits on a laptop: the generated config's small segments keep
	// the data directory (blocks actually allocated) well under QMQ's 1.1 GiB.
	if used := diskUsage(t, data); used > 128<<20 {
		t.Errorf("data directory uses %d MiB of disk after three messages; want at most 128 MiB (qmq dev's small segments)", used>>20)
	}

	// kill -9 and restart on the same data: the group resumes where it was.
	_ = dev.cmd.Process.Signal(syscall.SIGKILL)
	_ = dev.cmd.Wait()
	dev = startDev(t, data, ports)
	send(t, dev.meta, "hello", "--body", "after restart")
	msgs = waitConsumed(t, consumeAsync(t, dev.meta, "hello", "g1", 1), 1)
	if msgs[0].Body != "after restart" {
		t.Fatalf("after restart got %+v", msgs[0])
	}
	// The restart re-registered its broker quietly (AddBroker ifAbsent).
	if l := dev.log.String(); strings.Contains(l, "already exists") || strings.Contains(l, "management action failed") {
		t.Errorf("the restart logged a refused registration:\n%s", l)
	}
}

// diskUsage sums the blocks allocated to the files under dir (du, not ls:
// segments are preallocated or sparse).
func diskUsage(t *testing.T, dir string) int64 {
	t.Helper()
	var total int64
	err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		info, err := d.Info()
		if err != nil {
			return err
		}
		if st, ok := info.Sys().(*syscall.Stat_t); ok {
			total += st.Blocks * 512
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return total
}

// TestDevListensOnLoopback: every port qmq dev opens (metaserver HTTP and
// TCP, broker, sync, broker HTTP) listens on 127.0.0.1 only, read from the
// kernel's socket table; a --bind that is not an IP is refused.
func TestDevListensOnLoopback(t *testing.T) {
	var stderr strings.Builder
	if code := run([]string{"dev", "--bind", "localhost:80"}, io.Discard, &stderr); code != 2 || !strings.Contains(stderr.String(), "is not an IP address") {
		t.Fatalf("--bind localhost:80: exit %d: %s", code, stderr.String())
	}
	ports := devPorts(t)
	startDev(t, t.TempDir(), ports)
	// The broker serves sync.port once the metaserver has named it master,
	// which may come after the banner.
	var listening map[int][]string
	for deadline := time.Now().Add(20 * time.Second); time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
		listening = listeners(t)
		all := true
		for _, p := range ports {
			all = all && len(listening[p]) > 0
		}
		if all {
			break
		}
	}
	for _, p := range ports {
		addrs := listening[p]
		if len(addrs) != 1 || addrs[0] != "127.0.0.1" {
			t.Errorf("port %d listens on %v, want [127.0.0.1]", p, addrs)
		}
	}
}

// listeners maps each listening TCP port to its local addresses, from
// /proc/net/tcp and /proc/net/tcp6.
func listeners(t *testing.T) map[int][]string {
	t.Helper()
	m := map[int][]string{}
	for _, f := range []string{"/proc/net/tcp", "/proc/net/tcp6"} {
		data, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		for _, line := range strings.Split(string(data), "\n")[1:] {
			fields := strings.Fields(line)
			if len(fields) < 4 || fields[3] != "0A" { // 0A: LISTEN
				continue
			}
			hexIP, hexPort, _ := strings.Cut(fields[1], ":")
			port, _ := strconv.ParseInt(hexPort, 16, 32)
			raw, _ := hex.DecodeString(hexIP)
			for i := 0; i+4 <= len(raw); i += 4 { // each 32-bit word is little-endian
				raw[i], raw[i+1], raw[i+2], raw[i+3] = raw[i+3], raw[i+2], raw[i+1], raw[i]
			}
			m[int(port)] = append(m[int(port)], net.IP(raw).String())
		}
	}
	return m
}

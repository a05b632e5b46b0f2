package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/qmq-go/qmq/consul/consultest"
	"github.com/qmq-go/qmq/internal/testutil"
)

// These tests run the real binary as a user would: separate processes, real
// sockets, kill -9 and restart.

var qmqBin string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "qmq-e2e")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	qmqBin = filepath.Join(dir, "qmq")
	build := exec.Command("go", "build", "-o", qmqBin, ".")
	build.Stdout, build.Stderr = os.Stderr, os.Stderr
	if err := build.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "build qmq:", err)
		os.Exit(1)
	}
	code := consultest.Main(m) // m.Run, with a Consul agent for the tests that ask for one
	os.RemoveAll(dir)
	os.Exit(code)
}

const seedToken = "9p4lGl8JoTH9GhemH9QFtfVmmRj!DR@OjIcYyqoDN8MLSY!6Fx6twXoZL0K3tV11"

// devPorts returns five distinct free ports for qmq dev (metaserver HTTP and
// TCP, broker, its sync port and its HTTP port).
func devPorts(t *testing.T) [5]int {
	t.Helper()
	return [5]int(testutil.FreePorts(t, 5))
}

// metaProcess is a `qmq metaserver` child process.
type metaProcess struct {
	cmd      *exec.Cmd
	httpPort int
	log      *bytes.Buffer
}

func startMetaProcess(t *testing.T, confDir string, httpPort, tcpPort int, extra ...string) *metaProcess {
	t.Helper()
	args := append([]string{"metaserver", "--conf", confDir,
		"--set", fmt.Sprintf("meta.server.discover.port=%d", httpPort),
		"--set", fmt.Sprintf("meta.server.port=%d", tcpPort)}, extra...)
	cmd := exec.Command(qmqBin, args...)
	log := &bytes.Buffer{}
	cmd.Stdout, cmd.Stderr = log, log
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	p := &metaProcess{cmd: cmd, httpPort: httpPort, log: log}
	t.Cleanup(func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		done := make(chan struct{})
		go func() { _ = cmd.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			_ = cmd.Process.Kill()
		}
		if t.Failed() {
			t.Logf("metaserver log:\n%s", log.String())
		}
	})
	deadline := time.Now().Add(20 * time.Second)
	for time.Now().Before(deadline) {
		resp, err := http.Get(fmt.Sprintf("http://127.0.0.1:%d/health", httpPort))
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				return p
			}
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Fatalf("metaserver did not become healthy; log:\n%s", log.String())
	return nil
}

func runTool(t *testing.T, args ...string) (string, string, int) {
	t.Helper()
	cmd := exec.Command(qmqBin, append([]string{"tools"}, args...)...)
	var out, errOut bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errOut
	err := cmd.Run()
	code := 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatal(err)
	}
	return strings.TrimSpace(out.String()), strings.TrimSpace(errOut.String()), code
}

func writeFile(t *testing.T, path, body string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(body), 0o644); err != nil {
		t.Fatal(err)
	}
}

func TestBinaryRegistrationSurvivesKill9(t *testing.T) {
	dir := t.TempDir()
	writeFile(t, filepath.Join(dir, "valid-api-tokens.properties"), seedToken+"=token1\n")
	writeFile(t, filepath.Join(dir, "metaserver.properties"), "store.root="+filepath.Join(dir, "data")+"\n")
	ports := testutil.FreePorts(t, 2)
	httpPort, tcpPort := ports[0], ports[1]
	p := startMetaProcess(t, dir, httpPort, tcpPort)
	ms := fmt.Sprintf("--metaserver=127.0.0.1:%d", httpPort)

	out, _, code := runTool(t, "AddBroker", ms, "--token="+seedToken, "--brokerGroup=qmq_group01", "--role=0", "--hostname=qmq-server01", "--ip=172.168.2.27", "--servePort=20881", "--syncPort=20882")
	want := `{"status":0,"message":"","data":{"group":"qmq_group01","role":"MASTER","hostname":"qmq-server01","ip":"172.168.2.27","servePort":20881,"syncPort":20882}}`
	if code != 0 || out != want {
		t.Fatalf("AddBroker: exit %d\n got  %s\n want %s", code, out, want)
	}
	out, errOut, code := runTool(t, "AddBroker", ms, "--token=wrong", "--brokerGroup=g", "--role=1", "--hostname=h", "--ip=10.0.0.1", "--servePort=1", "--syncPort=2")
	if code == 0 || !strings.Contains(out, `"status":-1`) {
		t.Fatalf("wrong token: exit %d, out %s, err %s", code, out, errOut)
	}

	// kill -9, restart on the same data: the registration is still there.
	if err := p.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	_ = p.cmd.Wait()
	startMetaProcess(t, dir, httpPort, tcpPort)
	out, _, code = runTool(t, "ListBrokers", ms)
	if want := `{"status":0,"message":"","data":[{"group":"qmq_group01","role":"MASTER","hostname":"qmq-server01","ip":"172.168.2.27","servePort":20881,"syncPort":20882}]}`; code != 0 || out != want {
		t.Fatalf("ListBrokers after kill -9: exit %d: %s", code, out)
	}
}

func TestBinaryFailsClearlyOnBadConfig(t *testing.T) {
	dir := t.TempDir()
	writeFile(t, filepath.Join(dir, "metaserver.properties"), "min.group.num=two\n")
	cmd := exec.Command(qmqBin, "metaserver", "--conf", dir, "--set", "store.root="+dir)
	out, err := cmd.CombinedOutput()
	if err == nil {
		t.Fatal("metaserver started with an invalid min.group.num")
	}
	for _, want := range []string{"metaserver.properties", "min.group.num", `"two"`} {
		if !strings.Contains(string(out), want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
	if strings.Contains(string(out), "goroutine ") {
		t.Errorf("expected failure printed a stack trace:\n%s", out)
	}
}

func TestToolsUsage(t *testing.T) {
	out, _, code := runTool(t, "AddBroker", "--help")
	if code != 0 || !strings.Contains(out, "--servePort") || !strings.Contains(out, "--syncPort") {
		t.Fatalf("AddBroker --help: exit %d:\n%s", code, out)
	}
	_, errOut, code := runTool(t, "AddBroker", "--metaserver=127.0.0.1:1", "--token=x")
	if code != 2 || !strings.Contains(errOut, "missing required --brokerGroup") {
		t.Fatalf("missing flags: exit %d: %s", code, errOut)
	}
	_, errOut, code = runTool(t, "ListBrokers", fmt.Sprintf("--metaserver=127.0.0.1:%d", testutil.FreePorts(t, 1)[0]))
	if code != 1 || !strings.Contains(errOut, "cannot reach the metaserver") {
		t.Fatalf("unreachable metaserver: exit %d: %s", code, errOut)
	}
}

// TestHTTPPortSurvivesGarbage writes junk to the HTTP port and checks the server still answers.
func TestHTTPPortSurvivesGarbage(t *testing.T) {
	dir := t.TempDir()
	writeFile(t, filepath.Join(dir, "metaserver.properties"), "store.root="+filepath.Join(dir, "data")+"\n")
	ports := testutil.FreePorts(t, 2)
	httpPort, tcpPort := ports[0], ports[1]
	startMetaProcess(t, dir, httpPort, tcpPort)
	for _, junk := range []string{"\x00\x01\x02garbage\r\n\r\n", "POST /management HTTP/1.1\r\nContent-Length: 99999999\r\n\r\nabc"} {
		c, err := net.Dial("tcp", fmt.Sprintf("127.0.0.1:%d", httpPort))
		if err != nil {
			t.Fatal(err)
		}
		_, _ = io.WriteString(c, junk)
		_ = c.SetReadDeadline(time.Now().Add(time.Second))
		_, _ = io.ReadAll(c)
		c.Close()
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, fmt.Sprintf("http://127.0.0.1:%d/meta/address", httpPort), nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if want := fmt.Sprintf("127.0.0.1:%d", tcpPort); string(body) != want {
		t.Fatalf("/meta/address = %q, want %q", body, want)
	}
}

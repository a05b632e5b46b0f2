package main

import (
	"bytes"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/qmq-go/qmq/internal/testutil"
)

// TestConsoleCommand runs `qmq console --conf DIR` as a user would: it
// reads console.properties and the tokens, serves until SIGTERM, keeps
// reads behind the token, and refuses a bad configuration with a sentence.
func TestConsoleCommand(t *testing.T) {
	dir := t.TempDir()
	port := testutil.FreePorts(t, 1)[0]
	write := func(name, body string) {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(body), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	write("console.properties", fmt.Sprintf("console.port=%d\nconsole.metaserver.http=127.0.0.1:1\n", port))
	write("valid-api-tokens.properties", "console-e2e-token-0123456789=ops\n")

	var logs bytes.Buffer
	cmd := exec.Command(qmqBin, "console", "--conf", dir)
	cmd.Stderr = &logs
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	defer func() {
		_ = cmd.Process.Kill()
	}()
	base := fmt.Sprintf("http://127.0.0.1:%d", port)
	testutil.Eventually(t, 20*time.Second, "qmq console answers /health", func() bool {
		resp, err := http.Get(base + "/health")
		if err == nil {
			resp.Body.Close()
		}
		return err == nil && resp.StatusCode == 200
	})
	noRedirect := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err := noRedirect.Get(base + "/cluster")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("GET /cluster without a token (console.read.open unset): %d, want 303 to /login", resp.StatusCode)
	}
	req, _ := http.NewRequest(http.MethodGet, base+"/cluster", nil)
	req.Header.Set("X-Api-Token", "console-e2e-token-0123456789")
	resp, err = http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || !strings.Contains(string(body), "cannot reach the metaserver at") {
		t.Fatalf("GET /cluster with the token and no metaserver: %d; want 200 saying the metaserver cannot be reached\n%s", resp.StatusCode, body)
	}
	_ = cmd.Process.Signal(syscall.SIGTERM)
	select {
	case err := <-exited:
		if err != nil {
			t.Fatalf("qmq console after SIGTERM: %v\n%s", err, logs.String())
		}
	case <-time.After(15 * time.Second):
		t.Fatalf("qmq console did not stop within 15 s of SIGTERM\n%s", logs.String())
	}

	// No token and closed reads: nobody could use it, so it does not start.
	write("valid-api-tokens.properties", "")
	out, err := exec.Command(qmqBin, "console", "--conf", dir).CombinedOutput()
	if err == nil || !strings.Contains(string(out), "nobody could use the console") {
		t.Fatalf("qmq console without tokens: %v\n%s; want a refusal saying why", err, out)
	}
}

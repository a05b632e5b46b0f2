package consolebrowser

import (
	"bufio"
	"context"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/qmq-go/qmq/client"
	"github.com/qmq-go/qmq/internal/testutil"
)

// requireBrowser returns the paths of node and Chromium, or skips (fails
// in CI) naming what is missing and how to install it.
func requireBrowser(t *testing.T) (node, chromium string) {
	t.Helper()
	var missing []string
	node, err := exec.LookPath("node")
	if err != nil {
		missing = append(missing, "node (apt-get install nodejs npm)")
	}
	chromium = os.Getenv("QMQ_CHROMIUM")
	if chromium == "" {
		chromium = "/usr/bin/chromium"
	}
	if _, err := os.Stat(chromium); err != nil {
		missing = append(missing, chromium+" (apt-get install chromium)")
	}
	if _, err := os.Stat(filepath.Join("node_modules", "playwright-core", "package.json")); err != nil {
		missing = append(missing, "playwright-core (npm ci in tests/console)")
	}
	if len(missing) > 0 {
		msg := "the browser tests need " + strings.Join(missing, ", ") + "; .ci/run installs them"
		if os.Getenv("CI") != "" || os.Getenv("QMQ_REQUIRE_BROWSER") != "" {
			t.Fatal(msg)
		}
		t.Skip(msg + " (set QMQ_REQUIRE_BROWSER=1 to fail instead of skipping)")
	}
	return node, chromium
}

// buildQMQ builds the qmq binary once per test binary.
var buildQMQ = sync.OnceValues(func() (string, error) {
	dir, err := os.MkdirTemp("", "qmq-console-test")
	if err != nil {
		return "", err
	}
	bin := filepath.Join(dir, "qmq")
	out, err := exec.Command("go", "build", "-o", bin, "../../cmd/qmq").CombinedOutput()
	if err != nil {
		return "", fmt.Errorf("go build qmq: %v\n%s", err, out)
	}
	return bin, nil
})

// dev is a running `qmq dev`.
type dev struct {
	console, meta, token string
	stdout               string
}

// freeBlock returns a port p with p, p+1 and p+2 free a moment ago (the
// delay server takes three consecutive ports).
func freeBlock(t *testing.T) int {
	t.Helper()
	for range 50 {
		p := testutil.FreePorts(t, 1)[0]
		ok := true
		for i := 1; i <= 2 && ok; i++ {
			l, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", p+i))
			if err != nil {
				ok = false
				continue
			}
			_ = l.Close()
		}
		if ok && p+2 < 65536 {
			return p
		}
	}
	t.Fatal("no block of 3 free ports for the delay server")
	return 0
}

var tokenLine = regexp.MustCompile(`admin token\s+(\S+)`)

// startDev runs qmq dev with every port free and the console on its own.
func startDev(t *testing.T, bin string, extra ...string) *dev {
	t.Helper()
	ports := testutil.FreePorts(t, 6)
	delayPort := freeBlock(t)
	args := append([]string{"dev", "--data", t.TempDir(),
		fmt.Sprintf("--meta-http-port=%d", ports[0]), fmt.Sprintf("--meta-port=%d", ports[1]), fmt.Sprintf("--broker-port=%d", ports[2]),
		fmt.Sprintf("--sync-port=%d", ports[3]), fmt.Sprintf("--broker-http-port=%d", ports[4]), fmt.Sprintf("--delay-port=%d", delayPort),
		fmt.Sprintf("--console=127.0.0.1:%d", ports[5])}, extra...)
	// qmq dev's backup listens on 8082 unless told: give it a free port.
	args = append(args, fmt.Sprintf("--backup-http=%d", freeBlock(t)))
	cmd := exec.Command(bin, args...)
	logFile, err := os.Create(filepath.Join(t.TempDir(), "dev.log"))
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = logFile
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		done := make(chan struct{})
		go func() { _ = cmd.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(15 * time.Second):
			_ = cmd.Process.Kill()
			<-done
		}
		if t.Failed() {
			b, _ := os.ReadFile(logFile.Name())
			t.Logf("qmq dev log:\n%s", b)
		}
	})
	lines := make(chan string, 100)
	go func() {
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			lines <- sc.Text()
		}
		close(lines)
	}()
	d := &dev{meta: fmt.Sprintf("http://127.0.0.1:%d/meta/address", ports[0])}
	deadline := time.After(60 * time.Second)
	for d.console == "" {
		select {
		case l, ok := <-lines:
			if !ok {
				t.Fatalf("qmq dev exited before printing the console's URL; it printed:\n%s", d.stdout)
			}
			d.stdout += l + "\n"
			if m := tokenLine.FindStringSubmatch(l); m != nil {
				d.token = m[1]
			}
			if f := strings.Fields(l); len(f) == 2 && f[0] == "console" {
				d.console = strings.TrimSuffix(f[1], "/")
			}
		case <-deadline:
			t.Fatalf("qmq dev printed no console URL within 60 s:\n%s", d.stdout)
		}
	}
	go func() {
		for range lines { // keep draining so that qmq dev never blocks on stdout
		}
	}()
	testutil.Eventually(t, 30*time.Second, "the console answers /health", func() bool {
		resp, err := http.Get(d.console + "/health")
		if err == nil {
			resp.Body.Close()
		}
		return err == nil && resp.StatusCode == 200
	})
	return d
}

func run(t *testing.T, bin string, args ...string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, bin, args...).CombinedOutput()
	if err != nil {
		t.Fatalf("qmq %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return string(out)
}

// sendAndConsume subscribes group to subject, sends n messages and waits
// until the group consumed them; it returns qmq consume --json's lines.
func sendAndConsume(t *testing.T, bin string, d *dev, subject, group string, n int) []string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	consume := exec.CommandContext(ctx, bin, "consume", "--meta", d.meta, "--subject", subject, "--group", group, "--count", fmt.Sprint(n), "--json")
	var out strings.Builder
	consume.Stdout = &out
	if err := consume.Start(); err != nil {
		t.Fatal(err)
	}
	waitConsumer(t, d, subject, group)
	run(t, bin, "send", "--meta", d.meta, "--subject", subject, "--count", fmt.Sprint(n), "--body", "hello from the browser test")
	if err := consume.Wait(); err != nil {
		t.Fatalf("qmq consume: %v\n%s", err, out.String())
	}
	return strings.Split(strings.TrimSpace(out.String()), "\n")
}

// drive runs drive.mjs's scenario against d.
func drive(t *testing.T, node, chromium string, d *dev, scenario string, env ...string) {
	t.Helper()
	artifacts, err := filepath.Abs(filepath.Join("artifacts", t.Name()))
	if err != nil {
		t.Fatal(err)
	}
	_ = os.RemoveAll(artifacts)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, node, "drive.mjs", scenario)
	cmd.Env = append(os.Environ(), "QMQ_CONSOLE="+d.console, "QMQ_TOKEN="+d.token, "QMQ_ARTIFACTS="+artifacts, "QMQ_CHROMIUM="+chromium)
	cmd.Env = append(cmd.Env, env...)
	out, err := cmd.CombinedOutput()
	t.Logf("browser (%s), screenshots in %s:\n%s", scenario, artifacts, out)
	if err != nil {
		t.Fatalf("the browser scenario %q failed: %v", scenario, err)
	}
}

// TestConsoleInBrowser opens every page of qmq dev's console in Chromium,
// logs in, resets a consumer group's offset and marks a group readonly;
// the delay page shows the two delay messages sent for an hour later
// pending under their subject in dev_delay's table.
func TestConsoleInBrowser(t *testing.T) {
	node, chromium := requireBrowser(t)
	bin, err := buildQMQ()
	if err != nil {
		t.Fatal(err)
	}
	d := startDev(t, bin)
	const subject, group = "browser.orders", "billing"
	sendAndConsume(t, bin, d, subject, group, 5)
	const later = "browser.later"
	run(t, bin, "send", "--meta", d.meta, "--subject", later, "--count", "2", "--delay", "1h", "--body", "due in an hour")
	drive(t, node, chromium, d, "pages", "QMQ_SUBJECT="+subject, "QMQ_GROUP="+group, "QMQ_DELAY_SUBJECT="+later)
}

// TestConsoleBackupInBrowser searches a sent message in qmq dev's backup,
// opens its consume records and resends a dead letter.
func TestConsoleBackupInBrowser(t *testing.T) {
	node, chromium := requireBrowser(t)
	bin, err := buildQMQ()
	if err != nil {
		t.Fatal(err)
	}
	d := startDev(t, bin)
	const subject, group = "browser.backup", "billing"
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	// billing acks "keep" and fails "fail" at once: with qmq_maxRetryNum 0
	// its first failure makes it a dead letter.
	cons, err := client.NewConsumer(ctx, d.meta, subject, group, client.WithPullTimeout(300*time.Millisecond), client.WithAckFlushInterval(100*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	seen := map[string]int{}
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = cons.Run(ctx, func(_ context.Context, m *client.Message) error {
			mu.Lock()
			seen[m.Body()]++
			mu.Unlock()
			if m.Body() == "fail" {
				return fmt.Errorf("failing on purpose")
			}
			return nil
		})
	}()
	defer func() { cancel(); cons.Close(); <-done }()
	waitConsumer(t, d, subject, group)
	p, err := client.NewProducer(ctx, d.meta)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = p.Close(context.Background()) }()
	keep := p.NewMessage(subject).SetBody("keep")
	fail := p.NewMessage(subject).SetBody("fail").SetMaxRetries(0)
	if err := p.Send(ctx, keep, fail); err != nil {
		t.Fatal(err)
	}
	testutil.Eventually(t, 30*time.Second, "billing consumes both messages", func() bool {
		mu.Lock()
		defer mu.Unlock()
		return seen["keep"] > 0 && seen["fail"] > 0
	})
	// The backup follows the group's logs: wait until it lists the message
	// and the dead letter before the browser looks.
	for _, path := range []string{"/messages?subject=" + subject + "&id=" + keep.ID(), "/deadletters?subject=" + subject} {
		testutil.Eventually(t, 60*time.Second, "the console lists "+path, func() bool {
			resp, err := http.Get(d.console + path)
			if err != nil {
				return false
			}
			defer resp.Body.Close()
			var b strings.Builder
			sc := bufio.NewScanner(resp.Body)
			for sc.Scan() {
				b.WriteString(sc.Text())
			}
			for _, absent := range []string{"backup not configured", "no such endpoint /api/"} {
				if strings.Contains(b.String(), absent) {
					t.Fatalf("qmq dev's console cannot search its backup (%q)", absent)
				}
			}
			return strings.Contains(b.String(), `id="results"`) && !strings.Contains(b.String(), "No message found") && !strings.Contains(b.String(), "No dead letter found")
		})
	}
	drive(t, node, chromium, d, "backup", "QMQ_SUBJECT="+subject, "QMQ_GROUP="+group, "QMQ_MESSAGE="+keep.ID())
}

// waitConsumer waits until the metaserver lists group as a consumer of
// subject: a new group starts at the subject's next message.
func waitConsumer(t *testing.T, d *dev, subject, group string) {
	t.Helper()
	testutil.Eventually(t, 30*time.Second, "the metaserver lists consumer group "+group, func() bool {
		resp, err := http.Get(strings.TrimSuffix(d.meta, "/meta/address") + "/subject/consumers?subject=" + subject)
		if err != nil {
			return false
		}
		defer resp.Body.Close()
		var b strings.Builder
		sc := bufio.NewScanner(resp.Body)
		for sc.Scan() {
			b.WriteString(sc.Text())
		}
		return strings.Contains(b.String(), group)
	})
}

// Package consultest starts one real Consul agent per test binary for tests
// that need Consul (registration, DNS SRV, catalog). The agent binary is
// <repo>/.tools/bin/consul, built by `make consul`; without it tests fail
// loudly rather than skip. The agent dies with the test binary, however
// that ends (a panic, a timeout, kill -9): it is started through
// setpriv --pdeathsig.
package consultest

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/consul/sdk/testutil"
)

// One Consul agent serves the whole test binary: starting one takes seconds.
var (
	consulBin   string // <repo>/.tools/bin/consul
	binErr      error  // why consulBin could not be located
	agentOnce   sync.Once
	agentSrv    *testutil.TestServer
	agentErr    error
	agentLog    lockedBuffer // agent stdout+stderr and testutil chatter
	agentTB     *agentT
	agentStart  time.Duration
	agentFailed bool
)

// Main wraps a test binary's m.Run: it puts <repo>/.tools/bin first on PATH
// (testutil runs "consul" from PATH), runs the tests, stops the shared agent
// and prints its output if anything failed. Call it from TestMain:
//
//	func TestMain(m *testing.M) { os.Exit(consultest.Main(m)) }
func Main(m *testing.M) int {
	if root, err := RepoRoot(); err != nil {
		binErr = err
	} else {
		dir := filepath.Join(root, ".tools", "bin")
		consulBin = filepath.Join(dir, "consul")
		if wrapper, err := deathSignalWrapper(consulBin); err != nil {
			fmt.Fprintf(os.Stderr, "consultest: %v; the consul test agent will outlive this test binary if it dies\n", err)
		} else {
			defer os.RemoveAll(wrapper)
			dir = wrapper
		}
		// testutil runs "consul" from PATH.
		os.Setenv("PATH", dir+string(os.PathListSeparator)+os.Getenv("PATH"))
	}

	code := m.Run()

	if agentSrv != nil {
		// consul exits 1 on SIGINT when skip_leave_on_interrupt is set
		// (testutil's default); that is not a failure.
		var ee *exec.ExitError
		if err := agentSrv.Stop(); err != nil && !(errors.As(err, &ee) && ee.ExitCode() == 1) {
			fmt.Fprintf(os.Stderr, "stopping consul test agent: %v\n", err)
		}
	}
	if agentTB != nil {
		agentTB.cleanup()
	}
	if (code != 0 || agentFailed) && agentLog.String() != "" {
		fmt.Fprintf(os.Stderr, "---- consul test agent output ----\n%s---- end consul agent output ----\n", agentLog.String())
	}
	return code
}

// deathSignalWrapper writes a directory holding a "consul" that runs bin
// with SIGKILL as its parent-death signal, so that the agent does not
// outlive the test binary that started it. (The signal comes when the
// thread that started it exits; Go keeps its threads for the life of the
// process, as long as no goroutine ends locked to one.)
func deathSignalWrapper(bin string) (string, error) {
	setpriv, err := exec.LookPath("setpriv")
	if err != nil {
		return "", fmt.Errorf("setpriv not found (install util-linux): %w", err)
	}
	dir, err := os.MkdirTemp("", "qmq-consultest-bin")
	if err != nil {
		return "", err
	}
	script := fmt.Sprintf("#!/bin/sh\nexec '%s' --pdeathsig KILL -- '%s' \"$@\"\n", setpriv, bin)
	if err := os.WriteFile(filepath.Join(dir, "consul"), []byte(script), 0o755); err != nil {
		os.RemoveAll(dir)
		return "", err
	}
	return dir, nil
}

// RepoRoot walks up from the working directory to the directory holding
// go.mod: where <repo>/.tools/bin holds the agents the Makefile builds.
func RepoRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("go.mod not found above the test's working directory")
		}
		dir = parent
	}
}

// Agent returns the shared Consul agent, starting it on first use (a dev-mode
// server with a leader, DNS and HTTP on free ports, logging at warn). It fails
// the test (never skips) when the binary is missing or the agent won't start.
func Agent(t testing.TB) *testutil.TestServer {
	t.Helper()
	if binErr != nil {
		t.Fatalf("cannot locate consul binary: %v; run `make consul`", binErr)
	}
	if fi, err := os.Stat(consulBin); err != nil || fi.IsDir() {
		t.Fatalf("consul binary not found at %s; run `make consul`", consulBin)
	}
	agentOnce.Do(func() {
		start := time.Now()
		agentTB = &agentT{}
		agentSrv, agentErr = startAgent(agentTB)
		agentStart = time.Since(start)
		if agentErr != nil {
			agentFailed = true
		}
	})
	if agentErr != nil {
		t.Fatalf("starting consul agent (%s): %v\nagent output:\n%s", consulBin, agentErr, agentLog.String())
	}
	return agentSrv
}

func startAgent(tb *agentT) (srv *testutil.TestServer, err error) {
	defer func() {
		if r := recover(); r != nil {
			if f, ok := r.(agentFatal); ok {
				srv, err = nil, errors.New(string(f))
				return
			}
			panic(r)
		}
	}()
	srv, err = testutil.NewTestServerConfigT(tb, func(c *testutil.TestServerConfig) {
		c.LogLevel = "warn"
		c.Stdout = &agentLog
		c.Stderr = &agentLog
		c.Connect = nil // no CA bootstrap: faster start, not needed here
	})
	if err != nil {
		return nil, err
	}
	// The catalog accepts registrations only once a leader is elected.
	if err := waitLeader(srv, 30*time.Second); err != nil {
		srv.Stop()
		return nil, err
	}
	return srv, nil
}

func waitLeader(srv *testutil.TestServer, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for {
		resp, err := srv.HTTPClient.Get("http://" + srv.HTTPAddr + "/v1/status/leader")
		if err == nil {
			var b bytes.Buffer
			b.ReadFrom(resp.Body)
			resp.Body.Close()
			if resp.StatusCode == 200 && len(bytes.Trim(b.Bytes(), "\"\n ")) > 0 {
				return nil
			}
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("no consul leader after %s (last error: %v)", timeout, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// agentT is the testutil.TestingTB the shared agent lives under: its
// lifetime is the test binary, not any one test.
type agentT struct {
	mu       sync.Mutex
	cleanups []func()
	failed   bool
}

type agentFatal string

func (a *agentT) Cleanup(f func())          { a.mu.Lock(); a.cleanups = append(a.cleanups, f); a.mu.Unlock() }
func (a *agentT) Error(args ...any)         { a.fail(fmt.Sprint(args...)) }
func (a *agentT) Errorf(f string, v ...any) { a.fail(fmt.Sprintf(f, v...)) }
func (a *agentT) Fail()                     { a.fail("failed") }
func (a *agentT) FailNow()                  { a.fail("failed"); panic(agentFatal("FailNow")) }
func (a *agentT) Failed() bool              { a.mu.Lock(); defer a.mu.Unlock(); return a.failed }
func (a *agentT) Fatal(args ...any) {
	a.fail(fmt.Sprint(args...))
	panic(agentFatal(fmt.Sprint(args...)))
}
func (a *agentT) Fatalf(f string, v ...any) {
	a.fail(fmt.Sprintf(f, v...))
	panic(agentFatal(fmt.Sprintf(f, v...)))
}
func (a *agentT) Helper()                  {}
func (a *agentT) Log(args ...any)          { fmt.Fprintln(&agentLog, args...) }
func (a *agentT) Logf(f string, v ...any)  { fmt.Fprintf(&agentLog, f+"\n", v...) }
func (a *agentT) Name() string             { return "qmq-consul-agent" }
func (a *agentT) Setenv(key, value string) { os.Setenv(key, value) }
func (a *agentT) TempDir() string {
	d, err := os.MkdirTemp("", "qmq-consul-agent")
	if err != nil {
		a.Fatal(err)
	}
	a.Cleanup(func() { os.RemoveAll(d) })
	return d
}

func (a *agentT) fail(msg string) {
	a.mu.Lock()
	a.failed = true
	a.mu.Unlock()
	fmt.Fprintln(&agentLog, "agent setup error:", msg)
}

func (a *agentT) cleanup() {
	a.mu.Lock()
	fs := a.cleanups
	a.cleanups = nil
	a.mu.Unlock()
	for i := len(fs) - 1; i >= 0; i-- {
		fs[i]()
	}
}

type lockedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// StartupTime is how long the shared agent took to start (zero before Agent is called).
func StartupTime() time.Duration { return agentStart }

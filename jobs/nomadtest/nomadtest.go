package nomadtest

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
	"sort"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/hashicorp/consul/sdk/testutil"
	"github.com/hashicorp/nomad/api"

	"github.com/qmq-go/qmq/consul/consultest"
)

// One Nomad agent serves the whole test binary: starting one takes seconds.
var (
	nomadBin    string   // <repo>/.tools/bin/nomad
	binErr      error    // why nomadBin could not be located
	volumeNames []string // host volumes the agent declares (Main's arguments)
	agentOnce   sync.Once
	agentSrv    *Server
	agentErr    error
	agentLog    logFile // the agent's stdout and stderr
	agentFailed bool
)

// Main wraps a test binary's m.Run: it runs the tests with the shared
// Consul agent of consultest, then stops the Nomad agent and every process
// it started, and prints the agent's output if anything failed. volumes
// are the host volumes the agent declares (see Server.VolumePath). Call it
// first thing in TestMain, since the test binary also runs as the watchdog
// (see the package doc):
//
//	func TestMain(m *testing.M) { os.Exit(nomadtest.Main(m, "vol-a", "vol-b")) }
func Main(m *testing.M, volumes ...string) int {
	if v, ok := os.LookupEnv(watchdogEnv); ok {
		return watchdog(v)
	}
	volumeNames = volumes
	if root, err := consultest.RepoRoot(); err != nil {
		binErr = err
	} else {
		nomadBin = filepath.Join(root, ".tools", "bin", "nomad")
	}

	code := consultest.Main(m)

	if agentSrv != nil {
		if err := agentSrv.stop(); err != nil {
			fmt.Fprintf(os.Stderr, "stopping the nomad test agent: %v\n", err)
			agentFailed = true
			if code == 0 {
				code = 1
			}
		}
	}
	if (code != 0 || agentFailed) && agentLog.String() != "" {
		fmt.Fprintf(os.Stderr, "---- nomad test agent output ----\n%s---- end nomad agent output ----\n", agentLog.String())
	}
	return code
}

// Server is the shared Nomad dev agent.
type Server struct {
	HTTPAddr string               // http://127.0.0.1:<port>
	Client   *api.Client          // an API client of the agent
	Consul   *testutil.TestServer // the Consul agent Nomad uses
	NodeID   string               // the agent's client node

	dir     string            // temporary directory: config, data_dir, volumes
	volumes map[string]string // host volume name -> path
	cmd     *exec.Cmd
	root    proc          // the agent process
	exited  chan struct{} // closed once cmd.Wait has returned
	waitErr error         // cmd.Wait's answer, set before exited is closed

	watchdog   *exec.Cmd
	watchdogIn io.WriteCloser
	watchdogWG sync.WaitGroup
}

// Agent returns the shared Nomad agent, starting it on first use (a dev
// agent on free ports, with the consultest Consul agent). It fails the test
// (never skips) when the binary is missing or the agent won't start.
func Agent(t testing.TB) *Server {
	t.Helper()
	if binErr != nil {
		t.Fatalf("cannot locate the nomad binary: %v; run `make nomad`", binErr)
	}
	if nomadBin == "" {
		t.Fatal("nomadtest.Main did not run: the test binary needs func TestMain(m *testing.M) { os.Exit(nomadtest.Main(m, volumes...)) }")
	}
	if fi, err := os.Stat(nomadBin); err != nil || fi.IsDir() {
		t.Fatalf("nomad binary not found at %s; run `make nomad`", nomadBin)
	}
	consul := consultest.Agent(t)
	agentOnce.Do(func() {
		agentSrv, agentErr = start(consul)
		if agentErr != nil {
			agentFailed = true
		}
	})
	if agentErr != nil {
		t.Fatalf("starting the nomad agent (%s): %v\nagent output:\n%s", nomadBin, agentErr, agentLog.String())
	}
	return agentSrv
}

// VolumePath is the directory of the host volume name (one of Main's
// volumes).
func (s *Server) VolumePath(t testing.TB, name string) string {
	t.Helper()
	p, ok := s.volumes[name]
	if !ok {
		t.Fatalf("host volume %q is not declared; pass it to nomadtest.Main (declared: %v)", name, volumeNames)
	}
	return p
}

// TaskLogs returns what a task of an allocation wrote to stdout and stderr,
// read from the agent's data directory.
func (s *Server) TaskLogs(allocID, task string) string {
	var b strings.Builder
	for _, stream := range []string{"stdout", "stderr"} {
		files, _ := filepath.Glob(filepath.Join(s.dir, "data", "alloc", allocID, "alloc", "logs", task+"."+stream+".*"))
		sort.Strings(files)
		for _, f := range files {
			data, err := os.ReadFile(f)
			if err != nil || len(data) == 0 {
				continue
			}
			fmt.Fprintf(&b, "---- %s ----\n%s", filepath.Base(f), data)
			if !bytes.HasSuffix(data, []byte("\n")) {
				b.WriteByte('\n')
			}
		}
	}
	return b.String()
}

// StopJob stops a job as `nomad job stop -purge` does and waits until its
// allocations have stopped on the client.
func (s *Server) StopJob(ctx context.Context, jobID string) error {
	q := (&api.QueryOptions{}).WithContext(ctx)
	allocs, _, err := s.Client.Jobs().Allocations(jobID, true, q)
	if err != nil {
		return fmt.Errorf("list allocations of job %s: %w", jobID, err)
	}
	if _, _, err := s.Client.Jobs().Deregister(jobID, false, (&api.WriteOptions{}).WithContext(ctx)); err != nil {
		return fmt.Errorf("stop job %s: %w", jobID, err)
	}
	for _, a := range allocs {
		for {
			info, _, err := s.Client.Allocations().Info(a.ID, q)
			if err == nil && info.ClientTerminalStatus() {
				break
			}
			select {
			case <-ctx.Done():
				return fmt.Errorf("allocation %s (%s) of job %s still running: %w", a.ID, a.TaskGroup, jobID, ctx.Err())
			case <-time.After(200 * time.Millisecond):
			}
		}
	}
	if _, _, err := s.Client.Jobs().Deregister(jobID, true, (&api.WriteOptions{}).WithContext(ctx)); err != nil {
		return fmt.Errorf("purge job %s: %w", jobID, err)
	}
	return nil
}

func start(consul *testutil.TestServer) (*Server, error) {
	dir, err := os.MkdirTemp("", "qmq-nomadtest-")
	if err != nil {
		return nil, err
	}
	s := &Server{Consul: consul, dir: dir, volumes: map[string]string{}, exited: make(chan struct{})}
	for _, v := range volumeNames {
		p := filepath.Join(dir, "volumes", v)
		if err := os.MkdirAll(p, 0o755); err != nil {
			os.RemoveAll(dir)
			return nil, err
		}
		s.volumes[v] = p
	}
	ports, err := freePorts(3)
	if err != nil {
		os.RemoveAll(dir)
		return nil, err
	}
	cfgPath := filepath.Join(dir, "agent.hcl")
	if err := os.WriteFile(cfgPath, []byte(agentConfig(dir, ports, s.volumes, consul.HTTPAddr)), 0o644); err != nil {
		os.RemoveAll(dir)
		return nil, err
	}
	s.HTTPAddr = fmt.Sprintf("http://127.0.0.1:%d", ports[0])
	// No overall timeout on the agent's calls would let a hung agent hang the
	// test until go test's -timeout; the tests make no long blocking queries.
	s.Client, err = api.NewClient(&api.Config{Address: s.HTTPAddr, HttpClient: &http.Client{Timeout: 30 * time.Second}})
	if err != nil {
		os.RemoveAll(dir)
		return nil, err
	}

	s.cmd = exec.Command(nomadBin, "agent", "-dev", "-config", cfgPath)
	// Output to a file, not a pipe to this process: if this process dies,
	// the agent writing to a pipe nobody reads would die of SIGPIPE at once,
	// leaving its tasks and mounts behind instead of stopping them.
	out, err := os.Create(filepath.Join(dir, "agent.log"))
	if err != nil {
		os.RemoveAll(dir)
		return nil, err
	}
	defer out.Close()
	agentLog.set(out.Name())
	s.cmd.Stdout, s.cmd.Stderr = out, out
	// Its own process group: a Ctrl-C of go test reaches the watchdog's
	// orderly stop, not the agent first.
	s.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	// The agent must not talk to a developer's Nomad or Consul.
	s.cmd.Env = append(os.Environ(), "NOMAD_ADDR="+s.HTTPAddr, "CONSUL_HTTP_ADDR="+consul.HTTPAddr)
	if err := s.cmd.Start(); err != nil {
		agentLog.keep()
		os.RemoveAll(dir)
		return nil, fmt.Errorf("start %s: %w", nomadBin, err)
	}
	go func() {
		s.waitErr = s.cmd.Wait()
		close(s.exited)
	}()
	if s.root, err = procOf(s.cmd.Process.Pid); err != nil {
		s.root = proc{pid: s.cmd.Process.Pid}
	}
	if err := s.startWatchdog(); err != nil {
		s.stop()
		return nil, err
	}
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	if err := s.waitReady(ctx); err != nil {
		s.stop()
		return nil, err
	}
	return s, nil
}

func agentConfig(dir string, ports []int, volumes map[string]string, consulAddr string) string {
	var vols strings.Builder
	names := make([]string, 0, len(volumes))
	for n := range volumes {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		fmt.Fprintf(&vols, "  host_volume %q {\n    path      = %q\n    read_only = false\n  }\n", n, volumes[n])
	}
	return fmt.Sprintf(`# Written by jobs/nomadtest for one test binary.
data_dir             = %q
bind_addr            = "127.0.0.1"
log_level            = "INFO"
disable_update_check = true

ports {
  http = %d
  rpc  = %d
  serf = %d
}

client {
  enabled = true
  # No cloud metadata lookups: the env_aws fingerprinter of the nomad that make nomad builds
  # fails the client's start ("failed to setup IMDS client"), and the others only take time.
  options = {
    "fingerprint.denylist" = "env_aws,env_gce,env_azure,env_digitalocean"
  }
%s}

plugin "raw_exec" {
  config {
    enabled = true
  }
}

consul {
  address = %q
}
`, filepath.Join(dir, "data"), ports[0], ports[1], ports[2], vols.String(), consulAddr)
}

// waitReady waits for a leader and for the client node to be ready with a
// healthy raw_exec driver.
func (s *Server) waitReady(ctx context.Context) error {
	last := "no answer from the agent yet"
	for {
		select {
		case <-s.exited:
			return fmt.Errorf("the nomad agent exited (%v) before it was ready; last state: %s", s.waitErr, last)
		case <-ctx.Done():
			return fmt.Errorf("the nomad agent at %s was not ready: %s", s.HTTPAddr, last)
		case <-time.After(200 * time.Millisecond):
		}
		leader, err := s.Client.Status().Leader()
		if err != nil || leader == "" {
			last = fmt.Sprintf("no leader (%v)", err)
			continue
		}
		nodes, _, err := s.Client.Nodes().List(nil)
		if err != nil || len(nodes) == 0 {
			last = fmt.Sprintf("no client node registered (%v)", err)
			continue
		}
		n := nodes[0]
		if n.Status != api.NodeStatusReady {
			last = fmt.Sprintf("client node %s is %s", n.Name, n.Status)
			continue
		}
		node, _, err := s.Client.Nodes().Info(n.ID, nil)
		if err != nil {
			last = fmt.Sprintf("client node %s: %v", n.Name, err)
			continue
		}
		d := node.Drivers["raw_exec"]
		if d == nil || !d.Detected || !d.Healthy {
			last = fmt.Sprintf("client node %s: raw_exec driver not healthy (%+v)", n.Name, d)
			continue
		}
		s.NodeID = n.ID
		return nil
	}
}

// stop stops the agent (in dev mode it destroys its allocations, stopping
// their tasks), then kills whatever of its process tree is left, and
// removes its directory.
func (s *Server) stop() error {
	exited := func() bool {
		select {
		case <-s.exited:
			return true
		default:
			return false
		}
	}
	left := stopTree(s.root, exited, 45*time.Second)
	<-s.exited
	agentLog.keep() // the watchdog removes the directory too; Main may still print the log
	if s.watchdogIn != nil {
		s.watchdogIn.Close() // the watchdog finds the agent gone and exits
		done := make(chan struct{})
		go func() { s.watchdogWG.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			_ = s.watchdog.Process.Kill()
		}
	}
	if err := removeAll(s.dir); err != nil && len(left) == 0 {
		return err
	}
	if len(left) > 0 {
		return fmt.Errorf("processes of the agent still alive after SIGKILL: %v", left)
	}
	return nil
}

func (s *Server) startWatchdog() error {
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), fmt.Sprintf("%s=%d:%d:%s", watchdogEnv, s.root.pid, s.root.start, s.dir))
	in, err := cmd.StdinPipe()
	if err != nil {
		return err
	}
	// Not our stdout: writing to it after the test binary is gone would kill
	// the watchdog with SIGPIPE.
	logf, err := os.Create(filepath.Join(s.dir, "watchdog.log"))
	if err != nil {
		return err
	}
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		logf.Close()
		return fmt.Errorf("start the watchdog of the nomad agent: %w", err)
	}
	logf.Close()
	s.watchdog, s.watchdogIn = cmd, in
	s.watchdogWG.Add(1)
	go func() { defer s.watchdogWG.Done(); _ = cmd.Wait() }()
	return nil
}

func freePorts(n int) ([]int, error) {
	var ports []int
	for range n {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, err
		}
		defer l.Close()
		ports = append(ports, l.Addr().(*net.TCPAddr).Port)
	}
	return ports, nil
}

// logFile is the agent's output file, read back when it is printed.
type logFile struct {
	mu   sync.Mutex
	path string
	kept string // the contents, once the file is gone
}

func (l *logFile) set(path string) {
	l.mu.Lock()
	l.path = path
	l.mu.Unlock()
}

// keep reads the file into memory before its directory is removed.
func (l *logFile) keep() {
	l.mu.Lock()
	defer l.mu.Unlock()
	if b, err := os.ReadFile(l.path); err == nil {
		l.kept = string(b)
	}
	l.path = ""
}

func (l *logFile) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.path == "" {
		return l.kept
	}
	b, _ := os.ReadFile(l.path)
	return string(b)
}

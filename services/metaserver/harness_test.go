package metaserver

import (
	"bytes"
	"context"
	"database/sql"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/go-sql-driver/mysql"
	"github.com/hashicorp/go-hclog"

	"github.com/qmq-go/qmq/client/meta"
	"github.com/qmq-go/qmq/cmd/qmq/tools"
	"github.com/qmq-go/qmq/conf"
	"github.com/qmq-go/qmq/internal/testlog"
	"github.com/qmq-go/qmq/schema"
)

const testToken = "9p4lGl8JoTH9GhemH9QFtfVmmRj!DR@OjIcYyqoDN8MLSY!6Fx6twXoZL0K3tV11"

// harness is one metaserver running in-process on free ports, with its own
// directory (config files, when started from files, and the embedded
// store's data/), logging into the test's output.
type harness struct {
	t      *testing.T
	srv    *Server
	dir    string
	cancel context.CancelFunc
	done   chan error
	logs   *testlog.Buffer
}

func newSyncBuffer() *testlog.Buffer { return &testlog.Buffer{} }

// testSettings are DefaultSettings on free ports, refreshing every second,
// with the embedded store under dir/data.
func testSettings(dir string) Settings {
	s := DefaultSettings()
	s.DiscoverPort, s.ServerPort = 0, 0
	s.RefreshPeriod = time.Second
	s.StoreRoot = filepath.Join(dir, "data")
	return s
}

// testDynamic is DefaultDynamic with testToken and client logging on.
func testDynamic() *Dynamic {
	d := DefaultDynamic()
	d.Tokens[testToken] = "token1"
	d.LogDefault = true
	return d
}

// startServer starts a metaserver built in code from testSettings and
// testDynamic, changed by edit (nil: unchanged), and stops it when the test
// ends.
func startServer(t *testing.T, edit func(*Settings, *Dynamic)) *harness {
	t.Helper()
	dir := t.TempDir()
	s, d := testSettings(dir), testDynamic()
	if edit != nil {
		edit(&s, d)
	}
	return runServer(t, dir, s, Options{Dynamic: d})
}

// useMySQL is an edit for startServer: the store is database db of the
// MariaDB at addr, given as QMQ's datasource.properties gives it.
func useMySQL(addr, db string) func(*Settings, *Dynamic) {
	return func(s *Settings, _ *Dynamic) {
		s.JDBCURL = fmt.Sprintf("jdbc:mysql://%s/%s?useSSL=false&characterEncoding=utf8", addr, db)
		s.JDBCUser = "root"
	}
}

// writeConf writes QMQ config files into dir; base files come first and extra ones override them.
func writeConf(t *testing.T, dir string, files map[string]string) {
	t.Helper()
	base := map[string]string{
		FileMetaserver: "meta.server.discover.port=0\nmeta.server.port=0\nrefresh.period.seconds=1\n",
		FileTokens:     testToken + "=token1\n",
		FileClientLog:  "default=true\n",
	}
	for k, v := range files {
		base[k] = v
	}
	for name, body := range base {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

// startServerFiles starts a metaserver from QMQ config files (writeConf's,
// with --set overrides sets) as `qmq metaserver --conf` does, re-reading
// them every 100 ms, and stops it when the test ends.
func startServerFiles(t *testing.T, files map[string]string, sets ...string) *harness {
	t.Helper()
	dir := t.TempDir()
	writeConf(t, dir, files)
	o, err := conf.ParseSet(append([]string{"store.root=" + filepath.Join(dir, "data")}, sets...))
	if err != nil {
		t.Fatal(err)
	}
	s, opts, err := LoadDir(dir, conf.Lookup{Overrides: o, Env: noEnvTest}, nil)
	if err != nil {
		t.Fatalf("load %s: %v", dir, err)
	}
	opts.ConfigPollInterval = 100 * time.Millisecond
	return runServer(t, dir, s, opts)
}

// runServer starts New(s, opts) with the test's logger.
func runServer(t *testing.T, dir string, s Settings, opts Options) *harness {
	t.Helper()
	logs := newSyncBuffer()
	opts.Logger = hclog.New(&hclog.LoggerOptions{Name: "metaserver", Output: io.MultiWriter(logs, testlog.Writer(t)), Level: hclog.Debug})
	ctx, cancel := context.WithCancel(context.Background())
	srv, err := New(ctx, s, opts)
	if err != nil {
		cancel()
		t.Fatalf("start metaserver: %v", err)
	}
	h := &harness{t: t, srv: srv, dir: dir, cancel: cancel, done: make(chan error, 1), logs: logs}
	go func() { h.done <- srv.Run(ctx) }()
	t.Cleanup(h.stop)
	return h
}

func (h *harness) stop() {
	if h.cancel == nil {
		return
	}
	h.cancel()
	h.cancel = nil
	select {
	case <-h.done:
	case <-time.After(15 * time.Second):
		h.t.Errorf("metaserver did not stop within 15s")
	}
}

// httpAddr and tcpAddr are loopback addresses of the server's ports (it listens on all interfaces).
func (h *harness) httpAddr() string {
	return net.JoinHostPort("127.0.0.1", strconv.Itoa(h.srv.HTTPAddr().(*net.TCPAddr).Port))
}

func (h *harness) tcpAddr() string {
	return net.JoinHostPort("127.0.0.1", strconv.Itoa(h.srv.TCPAddr().(*net.TCPAddr).Port))
}

// tools runs `qmq tools` in-process against this metaserver.
func (h *harness) tools(args ...string) (string, int) {
	h.t.Helper()
	var out, errOut bytes.Buffer
	full := append([]string{args[0], "--metaserver=" + h.httpAddr()}, args[1:]...)
	code := tools.Main(full, &out, &errOut)
	if errOut.Len() > 0 {
		h.t.Logf("qmq tools %s stderr: %s", args[0], errOut.String())
	}
	return strings.TrimSpace(out.String()), code
}

func (h *harness) mustTool(args ...string) string {
	h.t.Helper()
	out, code := h.tools(args...)
	if code != 0 {
		h.t.Fatalf("qmq tools %v: exit %d: %s", args, code, out)
	}
	return out
}

func (h *harness) addBroker(group string, role int, hostname, ip string, servePort, syncPort int) {
	h.t.Helper()
	h.mustTool("AddBroker", "--token="+testToken, "--brokerGroup="+group, fmt.Sprintf("--role=%d", role),
		"--hostname="+hostname, "--ip="+ip, fmt.Sprintf("--servePort=%d", servePort), fmt.Sprintf("--syncPort=%d", syncPort))
}

func (h *harness) metaClient() *meta.Client {
	h.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	addr, err := meta.Locate(ctx, "http://"+h.httpAddr()+"/meta/address")
	if err != nil {
		h.t.Fatal(err)
	}
	c, err := meta.Dial(ctx, addr)
	if err != nil {
		h.t.Fatal(err)
	}
	h.t.Cleanup(func() { c.Close() })
	return c
}

func (h *harness) get(path string) (int, string) {
	h.t.Helper()
	resp, err := http.Get("http://" + h.httpAddr() + path)
	if err != nil {
		h.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, strings.TrimSpace(string(b))
}

// mysqlServerDSN is the MariaDB the tests use; CI starts it (see .ci/run).
func mysqlServerDSN() string {
	if v := os.Getenv("QMQ_TEST_MYSQL_DSN"); v != "" {
		return v
	}
	return "root@tcp(127.0.0.1:3306)/"
}

// newMySQLDatabase creates an empty database with schema/init.sql applied and
// returns its name and the server address. It fails the test (never skips)
// when MariaDB is not reachable.
func newMySQLDatabase(t *testing.T) (name, addr string) {
	t.Helper()
	cfg, err := mysql.ParseDSN(mysqlServerDSN())
	if err != nil {
		t.Fatal(err)
	}
	cfg.MultiStatements = true
	db, err := sql.Open("mysql", cfg.FormatDSN())
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := db.PingContext(ctx); err != nil {
		t.Fatalf("MariaDB at %s is not reachable: %v; start it: start-stop-daemon --start --oknodo --background --exec /usr/sbin/mariadbd", cfg.Addr, err)
	}
	name = fmt.Sprintf("qmq_meta_test_%d", time.Now().UnixNano()%1e12)
	if _, err := db.ExecContext(ctx, "CREATE DATABASE "+name); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		db, err := sql.Open("mysql", cfg.FormatDSN())
		if err == nil {
			_, _ = db.Exec("DROP DATABASE " + name)
			db.Close()
		}
	})
	if _, err := db.ExecContext(ctx, "USE "+name+";\n"+schema.MySQL); err != nil {
		t.Fatalf("apply schema/init.sql: %v", err)
	}
	return name, cfg.Addr
}

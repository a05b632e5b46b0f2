package main

import (
	"database/sql"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/go-sql-driver/mysql"

	"github.com/qmq-go/qmq/consul/consultest"
	"github.com/qmq-go/qmq/internal/testmysql"
	"github.com/qmq-go/qmq/internal/testutil"
	"github.com/qmq-go/qmq/schema"
)

// watchdogProcess is a `qmq watchdog` child process.
type watchdogProcess struct {
	cmd  *exec.Cmd
	http int
	log  *lockedLog
}

// startWatchdog runs qmq watchdog with conf dir dir and the overrides sets.
func startWatchdog(t *testing.T, dir string, httpPort int, sets ...string) *watchdogProcess {
	t.Helper()
	args := []string{"watchdog", "--conf", dir, "--set", fmt.Sprintf("watchdog.http.port=%d", httpPort), "--set", "watchdog.bind.host=127.0.0.1"}
	for _, s := range sets {
		args = append(args, "--set", s)
	}
	cmd := exec.Command(qmqBin, args...)
	log := &lockedLog{ch: make(chan struct{}, 1)}
	cmd.Stderr, cmd.Stdout = log, log
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	w := &watchdogProcess{cmd: cmd, http: httpPort, log: log}
	t.Cleanup(func() {
		_ = cmd.Process.Signal(syscall.SIGKILL)
		_ = cmd.Wait()
		if t.Failed() {
			t.Logf("qmq watchdog :%d log:\n%s", httpPort, log.String())
		}
	})
	return w
}

// role is what /health says: "leader", "follower", or "" when it does not answer.
func (w *watchdogProcess) role() string {
	c := http.Client{Timeout: 2 * time.Second}
	resp, err := c.Get(fmt.Sprintf("http://127.0.0.1:%d/health", w.http))
	if err != nil {
		return ""
	}
	defer resp.Body.Close()
	var h struct {
		Role string `json:"role"`
	}
	_ = json.NewDecoder(resp.Body).Decode(&h)
	return h.Role
}

// TestWatchdogKill9Takeover is the README's watchdog flow through the real
// binary: qmq dev, a client database registered with qmq tools AddDb, two
// qmq watchdog processes; rows left as QMQ's Java client writes them are
// resent and consumed; the leader killed with kill -9, the other takes
// over after the lease and sends the rest, none twice.
func TestWatchdogKill9Takeover(t *testing.T) {
	testWatchdogKill9Takeover(t, 10*time.Second)
}

// TestWatchdogKill9TakeoverConsul is the same with consul.address set: the
// watchdogs elect on a Consul lock (a real agent) and the survivor leads
// once the killed leader's check has gone critical (3 s after its last
// pass) and the lock-delay (2 s) has run.
func TestWatchdogKill9TakeoverConsul(t *testing.T) {
	agent := consultest.Agent(t)
	testWatchdogKill9Takeover(t, 8*time.Second, "consul.address="+agent.HTTPAddr, "election.consul.key.prefix=qmq-test/"+t.Name()+"/")
}

func testWatchdogKill9Takeover(t *testing.T, limit time.Duration, sets ...string) {
	ports := devPorts(t)
	data := t.TempDir()
	dev := startDev(t, data, ports)

	// The client database: a database of the test's own stands in for
	// qmq_produce (watchdog.table below), since the server is shared.
	name, dsn := testmysql.Database(t, "qmqwdbin_")
	cfg, _ := mysql.ParseDSN(dsn)
	db, err := sql.Open("mysql", dsn)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	for _, stmt := range strings.Split(strings.ReplaceAll(schema.ClientMySQL, "qmq_produce", name), ";\n") {
		var code []string
		for _, line := range strings.Split(stmt, "\n") {
			if l := strings.TrimSpace(line); l != "" && !strings.HasPrefix(l, "--") {
				code = append(code, line)
			}
		}
		if len(code) > 0 {
			if _, err := db.Exec(strings.Join(code, "\n")); err != nil {
				t.Fatal(err)
			}
		}
	}
	tokenFile, err := os.ReadFile(filepath.Join(data, "conf", "valid-api-tokens.properties"))
	if err != nil {
		t.Fatal(err)
	}
	var token string
	for _, line := range strings.Split(string(tokenFile), "\n") {
		if k, _, ok := strings.Cut(line, "="); ok && !strings.HasPrefix(line, "#") {
			token = k
		}
	}
	host, port, _ := strings.Cut(cfg.Addr, ":")
	out, _, code := runTool(t, "AddDb", fmt.Sprintf("--metaserver=127.0.0.1:%d", ports[0]), "--token="+token,
		"--host="+host, "--port="+port, "--username="+cfg.User, "--password="+cfg.Passwd)
	if code != 0 || !strings.Contains(out, "register success") {
		t.Fatalf("AddDb: %d %s", code, out)
	}

	conf := t.TempDir()
	writeFile(t, filepath.Join(conf, "watchdog.properties"), fmt.Sprintf(
		"appCode=qmq-watchdog-e2e\nnamespace=default\nmeta.server.endpoint=%s\ncheckInterval=1000\nrefreshInterval=1000\nstore.root=%s\nwatchdog.table=%s.qmq_msg_queue\n",
		dev.meta, filepath.Join(data, "meta"), name))
	hp := testutil.FreePorts(t, 2)
	ws := []*watchdogProcess{startWatchdog(t, conf, hp[0], sets...), startWatchdog(t, conf, hp[1], sets...)}
	leader := func() (*watchdogProcess, *watchdogProcess) {
		for i, w := range ws {
			if w.role() == "leader" {
				return w, ws[1-i]
			}
		}
		return nil, nil
	}
	testutil.Eventually(t, 20*time.Second, "one watchdog leads", func() bool { l, _ := leader(); return l != nil })

	const subject, n = "order.paid", 40
	got := consumeAsync(t, dev.meta, subject, "wd", n)
	time.Sleep(2 * time.Second) // let the new group register its cursor before anything is sent
	insert := func(from, to int) {
		for i := from; i < to; i++ {
			content := fmt.Sprintf(`{"messageId":"261207.120000.10.0.0.1.9.%d","subject":%q,"tags":["vip"],"storeAtFailed":false,"durable":true,`+
				`"attrs":{"qmq_createTime":"%d","qmq_appCode":"shop","order":"%d"}}`, i, subject, time.Now().UnixMilli(), i)
			if _, err := db.Exec("INSERT INTO "+name+".qmq_msg_queue (content, create_time) VALUES (?, NOW())", content); err != nil {
				t.Fatal(err)
			}
		}
	}
	insert(0, n/2)
	testutil.Eventually(t, 30*time.Second, "the first rows are resent and deleted", func() bool {
		var c int
		_ = db.QueryRow("SELECT COUNT(*) FROM " + name + ".qmq_msg_queue").Scan(&c)
		return c == 0
	})
	old, other := leader()
	if old == nil {
		t.Fatal("no leader")
	}
	if c := strings.Count(other.log.String(), "resent rows left by applications"); c != 0 {
		t.Errorf("the follower resent rows (%d log lines)", c)
	}
	_ = old.cmd.Process.Signal(syscall.SIGKILL)
	killed := time.Now()
	insert(n/2, n)
	testutil.Eventually(t, 20*time.Second, "the other watchdog leads", func() bool { return other.role() == "leader" })
	took := time.Since(killed)
	t.Logf("takeover %v after kill -9 of the leader", took.Round(time.Millisecond))
	if took > limit {
		t.Errorf("takeover took %v, want within %v", took, limit)
	}
	msgs := waitConsumed(t, got, n)
	ids := map[string]bool{}
	for _, m := range msgs {
		ids[m.ID] = true
		if m.Properties["qmq_appCode"] != "shop" || len(m.Tags) != 1 || m.Tags[0] != "vip" || m.Properties["order"] == "" {
			t.Errorf("message %s lost its properties or tags: %+v", m.ID, m)
		}
	}
	if len(ids) != n {
		t.Errorf("%d distinct messages of %d consumed: some arrived twice", len(ids), n)
	}
}

// TestDevWatchdog: qmq dev --watchdog runs a watchdog that leads the
// default namespace against the dev metaserver's database and serves
// /health on --watchdog-http-port.
func TestDevWatchdog(t *testing.T) {
	ports := devPorts(t)
	wp := testutil.FreePorts(t, 1)[0]
	dev := startDev(t, t.TempDir(), ports, "--watchdog", fmt.Sprintf("--watchdog-http-port=%d", wp))
	w := &watchdogProcess{http: wp}
	testutil.Eventually(t, 15*time.Second, "the dev watchdog leads", func() bool { return w.role() == "leader" })
	if !strings.Contains(dev.log.String(), "leader of the namespace") {
		t.Errorf("the dev log does not say the watchdog leads:\n%s", dev.log.String())
	}
}

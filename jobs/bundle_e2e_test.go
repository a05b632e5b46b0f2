package jobs_test

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	consulapi "github.com/hashicorp/consul/api"

	// The MySQL driver, for sql.Open("mysql") (testmysql's DSNs).
	_ "github.com/go-sql-driver/mysql"

	"github.com/qmq-go/qmq/client"
	"github.com/qmq-go/qmq/client/tx"
	"github.com/qmq-go/qmq/consul"
	"github.com/qmq-go/qmq/internal/testmysql"
	"github.com/qmq-go/qmq/internal/testutil"
	"github.com/qmq-go/qmq/jobs"
	"github.com/qmq-go/qmq/jobs/nomadtest"
	"github.com/qmq-go/qmq/schema"
)

// TestNomadBundle runs the whole bundle as README "The whole bundle on
// Nomad" does, on the one-node test agent (raw_exec, distinct_hosts off, a
// port set per server): the metaserver, two broker pairs, a delay pair,
// two watchdogs scanning a MariaDB client database registered with `qmq
// tools AddDb --metaserver=consul://qmq-metaserver`, a backup per broker
// group and the console, which finds the metaserver, the backups and the
// watchdogs in the Consul catalog. Every service must be in Consul with
// passing checks. Real-time, delayed and transactional messages (one sent
// by client/tx after its commit, one row left behind for the watchdog)
// sent through consul://qmq-metaserver are consumed; the backups list the
// real-time ones and the console's pages show the cluster and a message.
// Then, while producing real-time and delayed messages, the master of the
// first broker pair and the delay master are killed with SIGKILL through
// Nomad: their slaves take over, and every acknowledged message is consumed
// (duplicates are counted and logged, not failed: delivery is at least
// once).
func TestNomadBundle(t *testing.T) {
	n := nomadtest.Agent(t)
	qmq := buildQMQ(t)
	noQMQLeftBehind(t, qmq)
	for _, v := range []string{volMeta, volA, volB, volC, volD, volDelayA, volDelayB, volBackup, volBackup2} {
		emptyDir(t, n.VolumePath(t, v))
	}
	ctx, cancel := context.WithTimeout(context.Background(), 6*time.Minute)
	defer cancel()
	began := time.Now()

	dns := "127.0.0.1:" + strconv.Itoa(n.Consul.Config.Ports.DNS)
	endpoint := "consul://qmq-metaserver?dns=" + dns
	ports := testutil.FreePorts(t, 23)
	metaHTTP := ports[0]
	// Twelve servers share the test machine's two cores: small reservations, so that Nomad
	// places them all on the one node (the defaults ask for 1000 MHz a broker).
	small := func(cpu, memory int) jobs.Vars { return jobs.Vars{"cpu": cpu, "memory": memory} }

	runJob(ctx, t, n, jobs.Metaserver, withVars(metaTestVars(n, t, qmq, ports[0], ports[1]),
		withVars(jobs.Vars{"delay_admin_secret": testDelayAdminSecret}, small(200, 256))))
	resolver := &consul.Resolver{DNSAddr: dns, HTTPAddr: n.Consul.HTTPAddr}
	testutil.EventuallyState(t, 60*time.Second, "the metaserver in Consul DNS with a passing check", func() (bool, string) {
		eps, err := resolver.Resolve(ctx, "qmq-metaserver")
		return err == nil && len(eps) == 1 && eps[0].Port == metaHTTP, fmt.Sprint(eps, err)
	})

	// The application's database, registered for the watchdogs by qmq tools through Consul.
	dbName, db := bundleClientDB(t)
	addDB(t, qmq, n, endpoint)

	// Everything else at once: the prestart tasks register the servers, and the backups and the
	// console wait (restarting) for what they need.
	// Names of this run's own: Nomad lists the allocations of a purged job under its ID until it
	// collects them, and allocOf wants one per group (go test -count=2).
	bundleRuns++
	run := fmt.Sprintf("bundle%d", bundleRuns)
	g1 := brokerPair{group: run + "_g1", a: member{name: "g1a", port: ports[2], http: ports[4]}, b: member{name: "g1b", port: ports[5], http: ports[7]}}
	g2 := brokerPair{group: run + "_g2", a: member{name: "g2a", port: ports[8], http: ports[10]}, b: member{name: "g2b", port: ports[11], http: ports[13]}}
	g1Job := runJob(ctx, t, n, jobs.Broker, withVars(brokerTestVars(n, t, qmq, endpoint, [6]int(ports[2:8])),
		withVars(jobs.Vars{"broker_group": g1.group}, small(200, 256))))
	runJob(ctx, t, n, jobs.Broker, withVars(brokerTestVars(n, t, qmq, endpoint, [6]int(ports[8:14])), withVars(jobs.Vars{
		"broker_group": g2.group, "volume_a": volC, "volume_b": volD,
		"store_root_a": n.VolumePath(t, volC), "store_root_b": n.VolumePath(t, volD),
	}, small(200, 256))))
	delayGroup := run + "_delay"
	delayHTTPA, delayHTTPB := ports[16], ports[19]
	delayJob := runJob(ctx, t, n, jobs.Delay, withVars(delayTestVars(n, t, qmq, endpoint, [3]int(ports[14:17])), withVars(jobs.Vars{
		"delay_group": delayGroup, "with_slave": true, "sync_secret": testSyncSecret,
		"broker_port_b": ports[17], "sync_port_b": ports[18], "http_port_b": ports[19],
	}, small(200, 256))))
	backupHTTP := map[string]int{g1.group: ports[20], g2.group: ports[21]}
	runJob(ctx, t, n, jobs.Backup, withVars(backupTestVars(n, t, qmq, endpoint, ports[20]),
		withVars(jobs.Vars{"broker_group": g1.group}, small(100, 256))))
	runJob(ctx, t, n, jobs.Backup, withVars(backupTestVars(n, t, qmq, endpoint, ports[21]), withVars(jobs.Vars{
		"broker_group": g2.group, "volume": volBackup2, "store_root": n.VolumePath(t, volBackup2),
	}, small(100, 256))))
	runJob(ctx, t, n, jobs.Watchdog, withVars(jobs.Vars{
		"qmq_binary": qmq, "driver": "raw_exec", "consul_address": n.Consul.HTTPAddr, "meta_endpoint": endpoint,
		"volume": volMeta, "store_root": n.VolumePath(t, volMeta),
		"watchdog_config": map[string]string{"checkInterval": "1000", "refreshInterval": "1000", "watchdog.table": dbName + ".qmq_msg_queue"},
	}, small(100, 128)))
	consoleHTTP := ports[22]
	// No broker_http_ports: the console finds every broker's and delay server's HTTP port in
	// the http_port meta of their Consul registrations.
	runJob(ctx, t, n, jobs.Console, withVars(jobs.Vars{
		"qmq_binary": qmq, "driver": "raw_exec", "http_port": consoleHTTP, "consul_address": n.Consul.HTTPAddr,
		"admin_token": testToken,
	}, small(100, 128)))

	for _, g := range []brokerPair{g1, g2} {
		testutil.EventuallyState(t, 120*time.Second, g.group+" up: a master online with its slave, b caught up", func() (bool, string) {
			ha, errA := g.a.health()
			hb, errB := g.b.health()
			return errA == nil && errB == nil && ha.masterReady() && hb.slaveCaughtUp(), fmt.Sprintf("a %s (%v); b %s (%v)", ha, errA, hb, errB)
		})
	}
	testutil.EventuallyState(t, 90*time.Second, "the delay pair up: a DELAY_MASTER online, b its DELAY_SLAVE", func() (bool, string) {
		ha, errA := delayHealth(delayHTTPA)
		hb, errB := delayHealth(delayHTTPB)
		return errA == nil && errB == nil && ha.Online && ha.Role == "DELAY_MASTER" && hb.Role == "DELAY_SLAVE",
			fmt.Sprintf("a %+v (%v); b %+v (%v)", ha, errA, hb, errB)
	})
	cc, err := consulapi.NewClient(&consulapi.Config{Address: n.Consul.HTTPAddr})
	if err != nil {
		t.Fatal(err)
	}
	// Each service with at least this many instances, every check passing. Brokers and delay
	// servers register whatever their role (tagged role:…).
	want := map[string]int{"qmq-metaserver": 1, "qmq-broker": 4, "qmq-delay": 2, "qmq-backup": 2, "qmq-watchdog": 2, "qmq-console": 1}
	// Only this test's servers, by their ports (the watchdogs' are Nomad's): registrations an
	// earlier test left to Consul's deregister_critical_service_after are not this bundle's.
	ours := map[int]bool{}
	for _, p := range append(ports[0:1], ports[2:]...) {
		ours[p] = true
	}
	var registered string
	testutil.EventuallyState(t, 90*time.Second, "every service registered in Consul with passing checks", func() (bool, string) {
		ok, state := consulServices(cc, want, ours)
		registered = state
		return ok, state
	})
	t.Logf("the whole bundle up %v after the first job run; Consul: %s", time.Since(began).Round(time.Millisecond), registered)

	rt := startCounting(t, endpoint, "bundle.rt", "bundle-rt")
	dl := startCounting(t, endpoint, "bundle.delay", "bundle-delay")
	txc := startCounting(t, endpoint, "bundle.tx", "bundle-tx")
	time.Sleep(time.Second) // the consumer groups start at the next message
	p, err := client.NewProducer(ctx, endpoint, client.WithAppCode("bundle"), client.WithSendTimeout(2*time.Second), client.WithRouteRefresh(300*time.Millisecond))
	if err != nil {
		t.Fatalf("producer through %s: %v", endpoint, err)
	}
	defer p.Close(context.Background())

	// Transactional: one sent by the Sender after the commit, one row left behind as by an
	// application that died after its commit, which the leading watchdog resends.
	sender, err := tx.New(db, p, tx.WithTable(dbName+".qmq_msg_queue"))
	if err != nil {
		t.Fatal(err)
	}
	defer sender.Close(context.Background())
	sent := p.NewMessage("bundle.tx").SetProperty("how", "sender")
	if err := sender.Run(ctx, nil, func(ctx context.Context, dbtx *tx.Tx) error { return dbtx.Send(ctx, sent) }); err != nil {
		t.Fatalf("transactional send: %v", err)
	}
	left := p.NewMessage("bundle.tx").SetProperty("how", "watchdog")
	if _, err := db.ExecContext(ctx, "INSERT INTO "+dbName+".qmq_msg_queue (content, create_time) VALUES (?, NOW())", tx.Encode(left)); err != nil {
		t.Fatal(err)
	}
	// Delayed and real-time.
	var delayed, realtime []*client.Message
	for i := range 5 {
		delayed = append(delayed, p.NewMessage("bundle.delay").SetDelay(3*time.Second).SetBody(fmt.Sprint(i)))
	}
	testutil.EventuallyState(t, 30*time.Second, "the delayed messages acknowledged (the delay slave has them)", func() (bool, string) {
		err := p.Send(ctx, delayed...)
		return err == nil, fmt.Sprint(err)
	})
	delaySent := time.Now()
	for i := range 20 {
		m := p.NewMessage("bundle.rt").SetBody(fmt.Sprint(i))
		if err := p.Send(ctx, m); err != nil {
			t.Fatalf("real-time send %d: %v", i, err)
		}
		realtime = append(realtime, m)
	}
	rt.wait(t, ids(realtime), 30*time.Second)
	txc.wait(t, []string{sent.ID(), left.ID()}, 60*time.Second)
	dl.wait(t, ids(delayed), 30*time.Second)
	if d := time.Since(delaySent); d < 3*time.Second-500*time.Millisecond {
		t.Errorf("the 3 s delayed messages were all consumed %v after they were sent", d)
	}
	testutil.EventuallyState(t, 30*time.Second, "the watchdog's row deleted once resent", func() (bool, string) {
		var c int
		err := db.QueryRowContext(ctx, "SELECT COUNT(*) FROM "+dbName+".qmq_msg_queue").Scan(&c)
		return err == nil && c == 0, fmt.Sprint(c, err)
	})

	// The backups: each lists what its group stored; together, every real-time message.
	var stored map[string]string // message ID -> the group whose backup lists it
	testutil.EventuallyState(t, 60*time.Second, "every real-time message listed by its group's backup", func() (bool, string) {
		found := map[string]string{}
		stored = found
		for group, port := range backupHTTP {
			list, err := backupList(port, "bundle.rt")
			if err != nil {
				return false, err.Error()
			}
			for id, g := range list {
				if g != group {
					return false, fmt.Sprintf("backup of %s lists %s as stored by %s", group, id, g)
				}
				found[id] = g
			}
		}
		n, _ := missingFrom(found, ids(realtime))
		return n == 0, fmt.Sprintf("%d of %d missing", n, len(realtime))
	})

	// The console's pages, with the admin token. Every server's HTTP address (from Consul, no
	// broker_http_ports) is on the cluster page, and its /health was read there; the delay page
	// shows the delay group's pending messages per subject, read from its master's /subjects.
	consoleBase := fmt.Sprintf("http://127.0.0.1:%d", consoleHTTP)
	httpAddrs := []string{"<td>" + g1.group + "</td>", "<td>" + g2.group + "</td>", "<td>" + delayGroup + "</td>"}
	for _, p := range []int{g1.a.http, g1.b.http, g2.a.http, g2.b.http, delayHTTPA, delayHTTPB} {
		httpAddrs = append(httpAddrs, "127.0.0.1:"+strconv.Itoa(p))
	}
	for _, c := range []struct {
		path   string
		want   []string
		absent []string
	}{
		{"/cluster", httpAddrs, []string{"HTTP port unknown", "not reachable"}},
		{"/subjects", []string{"bundle.rt", "bundle.delay", "bundle.tx"}, nil},
		{"/delay", []string{"<td>" + delayGroup + "</td>", `<table class="delay-subjects" data-group="` + delayGroup + `">`}, []string{"HTTP port unknown"}},
		// Both watchdogs (from Consul), one of them leading and serving the client database.
		{"/watchdog", []string{" · leader · ", "127.0.0.1:" + testmysqlPort(t)}, nil},
	} {
		testutil.EventuallyState(t, 30*time.Second, fmt.Sprintf("console %s shows %q", c.path, c.want), func() (bool, string) {
			body, code, err := getToken(consoleBase+c.path, testToken)
			if err != nil || code != 200 {
				return false, fmt.Sprintf("%d %v %.300s", code, err, body)
			}
			for _, w := range c.want {
				if !strings.Contains(string(body), w) {
					return false, fmt.Sprintf("no %q in %.4000s", w, body)
				}
			}
			for _, w := range c.absent {
				if strings.Contains(string(body), w) {
					return false, fmt.Sprintf("%q in %.4000s", w, body)
				}
			}
			if c.path == "/watchdog" && strings.Count(string(body), "<section><h2>") != 2 {
				return false, fmt.Sprintf("%d watchdogs shown, want 2: %.2000s", strings.Count(string(body), "<section><h2>"), body)
			}
			return true, ""
		})
	}
	// Messages found through the backups (Consul gave the console both): each backup holds one
	// broker group, and the console asks them all, so a message of each group is shown with its
	// detail link.
	perGroup := map[string]string{}
	for _, m := range realtime {
		if g := stored[m.ID()]; perGroup[g] == "" {
			perGroup[g] = m.ID()
		}
	}
	var shown []string
	testutil.EventuallyState(t, 30*time.Second, fmt.Sprintf("console /messages finds a message of %s and of %s", g1.group, g2.group), func() (bool, string) {
		shown = nil
		var state []string
		for _, g := range []string{g1.group, g2.group} {
			id := perGroup[g]
			body, code, err := getToken(consoleBase+"/messages?subject=bundle.rt&id="+url.QueryEscape(id), testToken)
			if err != nil || code != 200 {
				return false, fmt.Sprintf("%s: %d %v %.300s", id, code, err, body)
			}
			if strings.Contains(string(body), "<td>"+id+"</td><td>"+g+"</td>") && strings.Contains(string(body), "/messages/detail?") {
				shown = append(shown, g)
			}
			state = append(state, fmt.Sprintf("%s (%s) shown: %v", id, g, strings.Contains(string(body), "<td>"+id+"</td>")))
		}
		return len(shown) == 2, strings.Join(state, "; ")
	})
	if _, code, err := getToken(consoleBase+"/cluster", ""); err != nil || code != http.StatusSeeOther {
		t.Errorf("console /cluster without a token: %d %v; want a redirect to /login", code, err)
	}
	t.Logf("real-time, delayed and transactional messages consumed, found in the backups and the console %v after the first job run",
		time.Since(began).Round(time.Millisecond))

	// Failover while producing: real-time and delayed sends, one at a time.
	pctx, stopProducing := context.WithCancel(ctx)
	defer stopProducing()
	rtSends, dlSends := &sends{}, &sends{}
	var wg sync.WaitGroup
	wg.Add(2)
	// Paced: the twelve servers, the producer and the consumers share the machine's two cores.
	go func() { defer wg.Done(); producePaced(pctx, p, rtSends, "bundle.rt", 0, 5*time.Millisecond) }()
	go func() {
		defer wg.Done()
		producePaced(pctx, p, dlSends, "bundle.delay", 2*time.Second, 50*time.Millisecond)
	}()
	testutil.EventuallyState(t, 30*time.Second, "50 real-time and 10 delayed acknowledged sends", func() (bool, string) {
		return rtSends.count() >= 50 && dlSends.count() >= 10, fmt.Sprint(rtSends.count(), dlSends.count())
	})
	beforeRT, beforeDL := rtSends.count(), dlSends.count()
	brokerA, delayA := allocOf(t, n, *g1Job.ID, "a"), allocOf(t, n, *delayJob.ID, "a")
	if err := n.Client.Allocations().Signal(brokerA, nil, "broker", "SIGKILL"); err != nil {
		t.Fatalf("SIGKILL the broker task of allocation %s: %v", brokerA.ID, err)
	}
	if err := n.Client.Allocations().Signal(delayA, nil, "delay", "SIGKILL"); err != nil {
		t.Fatalf("SIGKILL the delay task of allocation %s: %v", delayA.ID, err)
	}
	killed := time.Now()
	rtSends.markKill(killed)
	dlSends.markKill(killed)
	var brokerTook, delayTook time.Duration
	testutil.EventuallyState(t, 60*time.Second, g1.group+"'s b promoted to master, the delay pair's b to DELAY_MASTER", func() (bool, string) {
		hb, errB := g1.b.health()
		hd, errD := delayHealth(delayHTTPB)
		if brokerTook == 0 && errB == nil && hb.Role == "MASTER" && hb.Online {
			brokerTook = time.Since(killed)
		}
		if delayTook == 0 && errD == nil && hd.Role == "DELAY_MASTER" && hd.Online {
			delayTook = time.Since(killed)
		}
		return brokerTook > 0 && delayTook > 0, fmt.Sprintf("%s: %s (%v); delay b: %+v (%v)", g1.b.name, hb, errB, hd, errD)
	})
	// g2 takes the real-time sends at once; the delay pair acknowledges again once Nomad has
	// restarted a (restart_delay) as b's slave (wait.slave.wrote).
	testutil.EventuallyState(t, 90*time.Second, "100 more real-time and 10 more delayed acknowledged sends after the kills", func() (bool, string) {
		return rtSends.count() >= beforeRT+100 && dlSends.count() >= beforeDL+10, fmt.Sprint(rtSends.count()-beforeRT, dlSends.count()-beforeDL)
	})
	stopProducing()
	wg.Wait()
	rtIDs := append(ids(realtime), rtSends.ids()...)
	dlIDs := append(ids(delayed), dlSends.ids()...)
	rt.wait(t, rtIDs, 60*time.Second)
	dl.wait(t, dlIDs, 60*time.Second)
	_, after := consulServices(cc, want, ours)
	t.Logf("Consul after the kills: %s", after)
	t.Logf("SIGKILL of %s's master and of the delay master: the broker slave took over after %v, the delay slave after %v; sends acknowledged again: real-time %v, delayed %v after the kills",
		g1.group, brokerTook.Round(time.Millisecond), delayTook.Round(time.Millisecond), rtSends.firstAckAfterKill().Sub(killed).Round(time.Millisecond), dlSends.firstAckAfterKill().Sub(killed).Round(time.Millisecond))
	t.Logf("every acknowledged message consumed: real-time %d (%d consumed twice or more), delayed %d (%d), transactional 2 (%d); the whole test %v",
		len(rtIDs), rt.duplicates(rtIDs), len(dlIDs), dl.duplicates(dlIDs), txc.duplicates([]string{sent.ID(), left.ID()}), time.Since(began).Round(time.Millisecond))
}

// bundleRuns counts TestNomadBundle's runs in this test binary.
var bundleRuns int

// brokerPair is one broker job's a and b.
type brokerPair struct {
	group string
	a, b  member
}

// bundleClientDB creates the application's database with QMQ's message
// table (schema/init_client.sql in a database of the test's own, since
// the server is shared).
func bundleClientDB(t *testing.T) (string, *sql.DB) {
	t.Helper()
	name, dsn := testmysql.Database(t, "qmqbundle_")
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
				t.Fatalf("create the client table in %s: %v", name, err)
			}
		}
	}
	return name, db
}

// addDB registers the test server for the watchdogs as an operator would:
// qmq tools AddDb, finding the metaserver through Consul DNS, the token in
// QMQ_TOOLS_TOKEN.
func addDB(t *testing.T, qmq string, n *nomadtest.Server, endpoint string) {
	t.Helper()
	cfg := testmysql.ServerConfig(t)
	host, port, _ := strings.Cut(cfg.Addr, ":")
	if cfg.Net != "tcp" || port == "" {
		t.Fatalf("the watchdogs reach the client database over TCP; the test server is %s %s", cfg.Net, cfg.Addr)
	}
	cmd := exec.Command(qmq, "tools", "AddDb", "--metaserver="+endpoint, "--host="+host, "--port="+port,
		"--username="+cfg.User, "--password="+cfg.Passwd)
	cmd.Env = append(os.Environ(), "QMQ_TOOLS_TOKEN="+testToken, "CONSUL_HTTP_ADDR="+n.Consul.HTTPAddr)
	out, err := cmd.CombinedOutput()
	if err != nil || !strings.Contains(string(out), "register success") {
		t.Fatalf("qmq tools AddDb --metaserver=%s: %v\n%s", endpoint, err, out)
	}
}

// testmysqlPort is the test MariaDB's port, as the watchdogs' client
// database URLs show it.
func testmysqlPort(t *testing.T) string {
	_, port, _ := strings.Cut(testmysql.ServerConfig(t).Addr, ":")
	return port
}

// consulServices checks that each service of want has at least that many
// instances in the catalog, every check of each passing; state describes
// them. Instances on ports not in ours are left out, but for qmq-watchdog
// (dynamic ports).
func consulServices(c *consulapi.Client, want map[string]int, ours map[int]bool) (bool, string) {
	names := make([]string, 0, len(want))
	for name := range want {
		names = append(names, name)
	}
	sort.Strings(names)
	ok := true
	var state []string
	for _, name := range names {
		entries, _, err := c.Health().Service(name, "", false, nil)
		if err != nil {
			return false, fmt.Sprintf("%s: %v", name, err)
		}
		var bad []string
		kept := entries[:0]
		for _, e := range entries {
			if name == "qmq-watchdog" || ours[e.Service.Port] {
				kept = append(kept, e)
			}
		}
		entries = kept
		for _, e := range entries {
			if s := e.Checks.AggregatedStatus(); s != consulapi.HealthPassing {
				bad = append(bad, fmt.Sprintf("%s:%d %s", e.Service.Address, e.Service.Port, s))
			}
		}
		if len(entries) < want[name] || len(bad) > 0 {
			ok = false
		}
		state = append(state, fmt.Sprintf("%s %d (want %d) %v", name, len(entries), want[name], bad))
	}
	return ok, strings.Join(state, ", ")
}

// counting is a consumer group that counts how often it got each message.
type counting struct {
	mu   sync.Mutex
	seen map[string]int
}

// startCounting subscribes group to subject until the test ends, polling
// briskly (as consumetest) so that a failover's new master is seen soon.
func startCounting(t *testing.T, endpoint, subject, group string) *counting {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	cons, err := client.NewConsumer(ctx, endpoint, subject, group, client.WithPullTimeout(300*time.Millisecond),
		client.WithRouteRefresh(500*time.Millisecond), client.WithAckFlushInterval(100*time.Millisecond), client.WithPullBatch(200))
	if err != nil {
		cancel()
		t.Fatalf("consumer group %s for %s through %s: %v", group, subject, endpoint, err)
	}
	c := &counting{seen: map[string]int{}}
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = cons.Run(ctx, func(_ context.Context, m *client.Message) error {
			c.mu.Lock()
			c.seen[m.ID()]++
			c.mu.Unlock()
			return nil
		})
	}()
	t.Cleanup(func() { cancel(); cons.Close(); <-done })
	return c
}

func (c *counting) wait(t *testing.T, want []string, timeout time.Duration) {
	t.Helper()
	testutil.EventuallyState(t, timeout, fmt.Sprintf("all %d acknowledged messages consumed", len(want)), func() (bool, string) {
		c.mu.Lock()
		defer c.mu.Unlock()
		n, some := 0, []string{}
		for _, id := range want {
			if c.seen[id] == 0 {
				n++
				if len(some) < 5 {
					some = append(some, id)
				}
			}
		}
		return n == 0, fmt.Sprintf("%d missing, e.g. %v", n, some)
	})
}

// duplicates is how many of ids were consumed more than once.
func (c *counting) duplicates(ids []string) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	d := 0
	for _, id := range ids {
		if c.seen[id] > 1 {
			d++
		}
	}
	return d
}

// producePaced sends a message every pace, one at a time, until ctx ends,
// recording the acknowledged ones in s; delay > 0: messages due that much
// later.
func producePaced(ctx context.Context, p *client.Producer, s *sends, subject string, delay, pace time.Duration) {
	for ctx.Err() == nil {
		m := p.NewMessage(subject)
		if delay > 0 {
			m.SetDelay(delay)
		}
		err := p.Send(ctx, m)
		s.mu.Lock()
		if err == nil {
			s.acked = append(s.acked, m.ID())
			if !s.killedAt.IsZero() && s.firstAfter.IsZero() {
				s.firstAfter = time.Now()
			}
		}
		s.mu.Unlock()
		select {
		case <-ctx.Done():
		case <-time.After(pace):
		}
	}
}

func ids(msgs []*client.Message) []string {
	out := make([]string, len(msgs))
	for i, m := range msgs {
		out[i] = m.ID()
	}
	return out
}

func missingFrom(found map[string]string, want []string) (int, []string) {
	n, some := 0, []string{}
	for _, id := range want {
		if _, ok := found[id]; !ok {
			n++
			if len(some) < 5 {
				some = append(some, id)
			}
		}
	}
	return n, some
}

// backupList is the backup's /api/message for subject: message ID →
// the broker group that stored it.
func backupList(port int, subject string) (map[string]string, error) {
	q, _ := json.Marshal(map[string]any{"subject": subject, "len": 1000})
	body, code, err := get(fmt.Sprintf("http://127.0.0.1:%d/api/message?backupQuery=%s", port, url.QueryEscape(string(q))))
	if err != nil || code != 200 {
		return nil, fmt.Errorf("backup :%d /api/message: %d %v %.300s", port, code, err, body)
	}
	var list struct {
		List []struct {
			MessageID   string `json:"messageId"`
			BrokerGroup string `json:"brokerGroup"`
		} `json:"list"`
	}
	if err := json.Unmarshal(body, &list); err != nil {
		return nil, fmt.Errorf("backup :%d /api/message: %w: %.300s", port, err, body)
	}
	out := map[string]string{}
	for _, m := range list.List {
		out[m.MessageID] = m.BrokerGroup
	}
	return out, nil
}

// getToken GETs u with the admin token (none if empty), not following
// redirects.
func getToken(u, token string) ([]byte, int, error) {
	req, err := http.NewRequest(http.MethodGet, u, nil)
	if err != nil {
		return nil, 0, err
	}
	if token != "" {
		req.Header.Set("X-Api-Token", token)
	}
	c := http.Client{Timeout: 5 * time.Second, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err := c.Do(req)
	if err != nil {
		return nil, 0, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return b, resp.StatusCode, err
}

package jobs_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/nomad/api"

	"github.com/qmq-go/qmq/client"
	"github.com/qmq-go/qmq/client/admin"
	"github.com/qmq-go/qmq/consul"
	"github.com/qmq-go/qmq/internal/consumetest"
	"github.com/qmq-go/qmq/internal/testutil"
	"github.com/qmq-go/qmq/jobs"
	"github.com/qmq-go/qmq/jobs/nomadtest"
)

// TestNomadBrokerPairFailover runs the jobs as an operator would, on one
// node (raw_exec, distinct_hosts off, a port set per broker): the
// metaserver job, found through Consul, then the broker job. Once the pair
// is up (master online, slave caught up) a producer sends, through
// consul://qmq-metaserver, while a consumer reads; the master's task is
// killed with SIGKILL through Nomad. The slave must take over (the
// metaserver's broker table shows the roles swapped), Nomad must restart
// the old master in place, where it rejoins as the slave and catches up,
// the producer must succeed again, and every acknowledged message must be
// consumed.
func TestNomadBrokerPairFailover(t *testing.T) {
	n := nomadtest.Agent(t)
	qmq := buildQMQ(t)
	noQMQLeftBehind(t, qmq) // registered first: checked after the jobs are stopped
	for _, v := range []string{volMeta, volA, volB} {
		emptyDir(t, n.VolumePath(t, v))
	}
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()

	dns := "127.0.0.1:" + strconv.Itoa(n.Consul.Config.Ports.DNS)
	endpoint := "consul://qmq-metaserver?dns=" + dns
	ports := testutil.FreePorts(t, 8)
	metaHTTP := ports[0]

	// The token goes the way the specs recommend: in the jobs' Nomad
	// variables, not in the jobs (nor on a command line).
	metaVars := metaTestVars(n, t, qmq, ports[0], ports[1])
	brokerVars := brokerTestVars(n, t, qmq, endpoint, [6]int(ports[2:8]))
	delete(metaVars, "admin_token")
	delete(brokerVars, "admin_token")
	delete(brokerVars, "sync_secret")
	for _, path := range []string{"nomad/jobs/qmq-metaserver", "nomad/jobs/qmq-broker-" + brokerVars["broker_group"].(string)} {
		items := api.VariableItems{"admin_token": testToken}
		if path != "nomad/jobs/qmq-metaserver" {
			items["sync_secret"] = testSyncSecret
		}
		if _, _, err := n.Client.Variables().Create(&api.Variable{Path: path, Items: items}, nil); err != nil {
			t.Fatalf("put the token in Nomad variable %s: %v", path, err)
		}
		t.Cleanup(func() { _, _ = n.Client.Variables().Delete(path, nil) })
	}

	start := time.Now()
	runJob(ctx, t, n, jobs.Metaserver, metaVars)
	resolver := &consul.Resolver{DNSAddr: dns, HTTPAddr: n.Consul.HTTPAddr}
	testutil.EventuallyState(t, 60*time.Second, "the metaserver in Consul DNS with a passing check", func() (bool, string) {
		eps, err := resolver.Resolve(ctx, "qmq-metaserver")
		if err != nil {
			return false, err.Error()
		}
		return len(eps) == 1 && eps[0].Port == metaHTTP, fmt.Sprint(eps)
	})

	brokerJob := runJob(ctx, t, n, jobs.Broker, brokerVars)
	a := member{name: "a", port: ports[2], http: ports[4]}
	b := member{name: "b", port: ports[5], http: ports[7]}
	testutil.EventuallyState(t, 90*time.Second, "the pair up: a master online with its slave, b caught up", func() (bool, string) {
		ha, errA := a.health()
		hb, errB := b.health()
		return errA == nil && errB == nil && ha.masterReady() && hb.slaveCaughtUp(), fmt.Sprintf("a %s (%v); b %s (%v)", ha, errA, hb, errB)
	})
	t.Logf("metaserver and broker pair up %v after the first job run", time.Since(start).Round(time.Millisecond))
	wantRoles(t, metaHTTP, map[int]string{a.port: "MASTER", b.port: "SLAVE"})

	subject := "nomad.failover"
	consumed := startConsumer(t, endpoint, subject)
	time.Sleep(time.Second) // the consumer group starts at the next message
	pctx, stopProducing := context.WithCancel(ctx)
	defer stopProducing()
	p, err := client.NewProducer(pctx, endpoint, client.WithSendTimeout(2*time.Second), client.WithRouteRefresh(300*time.Millisecond))
	if err != nil {
		t.Fatalf("producer through %s: %v", endpoint, err)
	}
	defer p.Close(context.Background())
	res := &sends{}
	var wg sync.WaitGroup
	wg.Add(1)
	go func() { defer wg.Done(); res.produce(pctx, p, subject) }()
	testutil.EventuallyState(t, 30*time.Second, "100 acknowledged sends", func() (bool, string) { return res.count() >= 100, fmt.Sprint(res.count()) })

	// kill -9 of the master, through Nomad.
	allocA := allocOf(t, n, *brokerJob.ID, "a")
	before := res.count()
	if err := n.Client.Allocations().Signal(allocA, nil, "broker", "SIGKILL"); err != nil {
		t.Fatalf("SIGKILL the broker task of allocation %s: %v", allocA.ID, err)
	}
	killed := time.Now()
	res.markKill(killed)

	testutil.EventuallyState(t, 60*time.Second, "b promoted to master", func() (bool, string) {
		h, err := b.health()
		return err == nil && h.Role == "MASTER" && h.Online, fmt.Sprintf("%s (%v)", h, err)
	})
	promoted := time.Since(killed)
	wantRoles(t, metaHTTP, map[int]string{a.port: "SLAVE", b.port: "MASTER"})

	// Nomad restarts the old master in place; it rejoins as the slave.
	testutil.EventuallyState(t, 90*time.Second, "a back as b's slave, caught up", func() (bool, string) {
		h, err := a.health()
		return err == nil && h.slaveCaughtUp(), fmt.Sprintf("%s (%v)", h, err)
	})
	rejoined := time.Since(killed)
	restarted := allocOf(t, n, *brokerJob.ID, "a")
	if restarted.ID != allocA.ID || restarted.TaskStates["broker"] == nil || restarted.TaskStates["broker"].Restarts < 1 {
		t.Errorf("a should be restarted in place: allocation %s (was %s), task states %v", restarted.ID, allocA.ID, restarted.TaskStates)
	}
	// With wait.slave.wrote=true the new master acknowledges sends once it
	// has a slave again (until then it answers BROKER_BUSY, and producers
	// with other groups use those): this pair is the producer's only group.
	testutil.EventuallyState(t, 30*time.Second, "50 more acknowledged sends after the kill", func() (bool, string) {
		return res.count() >= before+50, fmt.Sprint(res.count() - before)
	})
	resumed := res.firstAckAfterKill().Sub(killed)
	testutil.EventuallyState(t, 30*time.Second, "b's master sees its slave caught up", func() (bool, string) {
		h, err := b.health()
		return err == nil && h.masterReady(), fmt.Sprintf("%s (%v)", h, err)
	})

	stopProducing()
	wg.Wait()
	acked := res.ids()
	consumed(acked, 60*time.Second)
	t.Logf("%d acknowledged sends (%d before the kill), all consumed; after the kill: b took over at %v, a rejoined as its slave at %v, sends were acknowledged again at %v",
		len(acked), before, promoted.Round(time.Millisecond), rejoined.Round(time.Millisecond), resumed.Round(time.Millisecond))
}

// buildQMQ builds the qmq binary the jobs run.
func buildQMQ(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "qmq")
	cmd := exec.Command("go", "build", "-o", bin, "./cmd/qmq")
	cmd.Dir = ".." // the repository root
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build ./cmd/qmq: %v\n%s", err, out)
	}
	return bin
}

// runJob runs spec with vars; when the test ends it prints the job's task
// logs if the test failed, and stops and purges the job.
func runJob(ctx context.Context, t *testing.T, n *nomadtest.Server, spec jobs.Spec, vars jobs.Vars) *api.Job {
	t.Helper()
	job, resp, err := spec.Run(ctx, n.Client, vars)
	if err != nil {
		t.Fatal(err)
	}
	if resp.Warnings != "" {
		t.Errorf("job %s registered with warnings: %s", *job.ID, resp.Warnings)
	}
	id := *job.ID
	t.Cleanup(func() {
		if t.Failed() {
			logJob(t, n, id)
		}
		sctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
		defer cancel()
		if err := n.StopJob(sctx, id); err != nil {
			t.Errorf("stop job %s: %v", id, err)
		}
	})
	return job
}

// logJob prints each task's state, events and output.
func logJob(t *testing.T, n *nomadtest.Server, jobID string) {
	allocs, _, err := n.Client.Jobs().Allocations(jobID, true, nil)
	if err != nil {
		t.Logf("job %s: cannot list allocations: %v", jobID, err)
		return
	}
	for _, a := range allocs {
		for task, st := range a.TaskStates {
			var events []string
			for _, e := range st.Events {
				events = append(events, fmt.Sprintf("%s %s: %s", time.Unix(0, e.Time).Format("15:04:05.000"), e.Type, e.DisplayMessage))
			}
			t.Logf("---- job %s group %s task %s (allocation %s): %s, %d restarts\n%s\n%s", jobID, a.TaskGroup, task, a.ID, st.State, st.Restarts,
				strings.Join(events, "\n"), n.TaskLogs(a.ID, task))
		}
	}
}

// allocOf is the one allocation of group in job.
func allocOf(t *testing.T, n *nomadtest.Server, jobID, group string) *api.Allocation {
	t.Helper()
	stubs, _, err := n.Client.Jobs().Allocations(jobID, true, nil)
	if err != nil {
		t.Fatal(err)
	}
	var found []*api.AllocationListStub
	for _, s := range stubs {
		if s.TaskGroup == group {
			found = append(found, s)
		}
	}
	if len(found) != 1 {
		t.Fatalf("job %s group %s: %d allocations, want 1 (a broker is never rescheduled)", jobID, group, len(found))
	}
	a, _, err := n.Client.Allocations().Info(found[0].ID, nil)
	if err != nil {
		t.Fatal(err)
	}
	return a
}

// member is one broker of the pair.
type member struct {
	name string
	port int // broker.port
	http int // broker.http.port
}

// brokerHealth is the broker's /health.
type brokerHealth struct {
	Status          string `json:"status"`
	Role            string `json:"role"`
	Online          bool   `json:"online"`
	Slave           string `json:"slave"`
	SlaveLagBytes   *int64 `json:"slaveLagBytes"`
	Master          string `json:"master"`
	MasterConnected *bool  `json:"masterConnected"`
	BehindBytes     *int64 `json:"behindBytes"`
}

func (h brokerHealth) masterReady() bool {
	return h.Role == "MASTER" && h.Online && h.Slave != "" && h.SlaveLagBytes != nil && *h.SlaveLagBytes == 0
}

func (h brokerHealth) slaveCaughtUp() bool {
	return h.Role == "SLAVE" && h.MasterConnected != nil && *h.MasterConnected && h.BehindBytes != nil && *h.BehindBytes == 0
}

func (h brokerHealth) String() string {
	b, _ := json.Marshal(h)
	return string(b)
}

func (m member) health() (brokerHealth, error) {
	c := http.Client{Timeout: 2 * time.Second}
	resp, err := c.Get(fmt.Sprintf("http://127.0.0.1:%d/health", m.http))
	if err != nil {
		return brokerHealth{}, err
	}
	defer resp.Body.Close()
	var h brokerHealth
	if err := json.NewDecoder(resp.Body).Decode(&h); err != nil {
		return brokerHealth{}, fmt.Errorf("broker %s /health: %w", m.name, err)
	}
	return h, nil
}

// wantRoles checks the metaserver's broker table (ListBrokers) by
// servePort; every broker must be registered under this host's name.
func wantRoles(t *testing.T, metaHTTP int, want map[int]string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	rows, err := admin.New("127.0.0.1:"+strconv.Itoa(metaHTTP), "").ListBrokers(ctx, "nomad_g1")
	if err != nil {
		t.Fatal(err)
	}
	host, _ := os.Hostname()
	got := map[int]string{}
	for _, b := range rows {
		got[b.ServePort] = b.Role
		if b.Hostname != host {
			t.Errorf("broker %d registered as host %q; the broker presents os.Hostname() %q", b.ServePort, b.Hostname, host)
		}
	}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("ListBrokers roles by servePort %v, want %v: %+v", got, want, rows)
	}
}

// sends records a producer's acknowledged messages.
type sends struct {
	mu         sync.Mutex
	acked      []string
	killedAt   time.Time
	firstAfter time.Time
}

// produce sends one message at a time until ctx ends.
func (s *sends) produce(ctx context.Context, p *client.Producer, subject string) {
	for ctx.Err() == nil {
		m := p.NewMessage(subject)
		err := p.Send(ctx, m)
		s.mu.Lock()
		if err == nil {
			s.acked = append(s.acked, m.ID())
			if !s.killedAt.IsZero() && s.firstAfter.IsZero() {
				s.firstAfter = time.Now()
			}
		}
		s.mu.Unlock()
		if err != nil {
			select {
			case <-ctx.Done():
			case <-time.After(20 * time.Millisecond):
			}
		}
	}
}

func (s *sends) count() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.acked)
}

func (s *sends) markKill(at time.Time) {
	s.mu.Lock()
	s.killedAt = at
	s.mu.Unlock()
}

func (s *sends) firstAckAfterKill() time.Time {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.firstAfter
}

func (s *sends) ids() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]string(nil), s.acked...)
}

// startConsumer subscribes a new consumer group; the returned func waits
// until every given id has been consumed.
func startConsumer(t *testing.T, endpoint, subject string) func(ids []string, timeout time.Duration) {
	t.Helper()
	r := consumetest.Start(t, endpoint, subject, "nomad-fo")
	return func(ids []string, timeout time.Duration) {
		t.Helper()
		testutil.EventuallyState(t, timeout, fmt.Sprintf("all %d acknowledged messages consumed", len(ids)), func() (bool, string) {
			n, some := r.Missing(ids)
			return n == 0, fmt.Sprintf("%d missing, e.g. %v", n, some)
		})
	}
}

// noQMQLeftBehind checks, when the test ends, that no process of the qmq
// binary still runs.
func noQMQLeftBehind(t *testing.T, bin string) {
	t.Cleanup(func() {
		entries, err := os.ReadDir("/proc")
		if err != nil {
			t.Errorf("read /proc: %v", err)
			return
		}
		for _, e := range entries {
			if _, err := strconv.Atoi(e.Name()); err != nil {
				continue
			}
			if exe, err := os.Readlink(filepath.Join("/proc", e.Name(), "exe")); err == nil && exe == bin {
				cmdline, _ := os.ReadFile(filepath.Join("/proc", e.Name(), "cmdline"))
				t.Errorf("qmq process %s still runs after its job was stopped: %s", e.Name(), bytes.ReplaceAll(cmdline, []byte{0}, []byte{' '}))
			}
		}
	})
}

func emptyDir(t *testing.T, dir string) {
	t.Helper()
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		if err := os.RemoveAll(filepath.Join(dir, e.Name())); err != nil {
			t.Fatal(err)
		}
	}
}

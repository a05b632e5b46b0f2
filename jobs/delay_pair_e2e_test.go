package jobs_test

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/qmq-go/qmq/client"
	"github.com/qmq-go/qmq/internal/consumetest"
	"github.com/qmq-go/qmq/internal/testutil"
	"github.com/qmq-go/qmq/jobs"
	"github.com/qmq-go/qmq/jobs/nomadtest"
)

// TestNomadDelayPairFailover runs the delay job with with_slave=true on
// the one test node (distinct_hosts off, a host volume and ports per
// member; both identify themselves by the node's hostname and their own
// broker.port), beside the metaserver and a broker job. With the pair up
// (a DELAY_MASTER online, b DELAY_SLAVE), delay messages due 20 s later
// are sent through consul://qmq-metaserver (wait.slave.wrote: acknowledged
// once b has them); then a's delay task is killed with SIGKILL through
// Nomad. b must take over (failover.enable, set by the job with
// with_slave), be restarted by Nomad as DELAY_MASTER, and deliver every
// pending message; Nomad restarts a in place, where it rejoins as b's
// slave.
func TestNomadDelayPairFailover(t *testing.T) {
	n := nomadtest.Agent(t)
	qmq := buildQMQ(t)
	noQMQLeftBehind(t, qmq)
	for _, v := range []string{volMeta, volA, volB, volDelayA, volDelayB} {
		emptyDir(t, n.VolumePath(t, v))
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()

	dns := "127.0.0.1:" + strconv.Itoa(n.Consul.Config.Ports.DNS)
	endpoint := "consul://qmq-metaserver?dns=" + dns
	ports := testutil.FreePorts(t, 14)
	metaVars := withVars(metaTestVars(n, t, qmq, ports[0], ports[1]), jobs.Vars{"delay_admin_secret": testDelayAdminSecret})
	runJob(ctx, t, n, jobs.Metaserver, metaVars)
	runJob(ctx, t, n, jobs.Broker, withVars(brokerTestVars(n, t, qmq, endpoint, [6]int(ports[2:8])), jobs.Vars{"broker_group": "nomad_delay_pair_rt"}))
	rt := member{name: "a", port: ports[2], http: ports[4]}
	testutil.EventuallyState(t, 90*time.Second, "the broker pair's master online with its slave", func() (bool, string) {
		h, err := rt.health()
		return err == nil && h.masterReady(), fmt.Sprintf("%s (%v)", h, err)
	})

	start := time.Now()
	delayVars := withVars(delayTestVars(n, t, qmq, endpoint, [3]int(ports[8:11])), jobs.Vars{
		"delay_group":   "nomad_delay_pair",
		"with_slave":    true,
		"broker_port_b": ports[11],
		"sync_port_b":   ports[12],
		"http_port_b":   ports[13],
		"sync_secret":   testSyncSecret,
	})
	delayJob := runJob(ctx, t, n, jobs.Delay, delayVars)
	httpA, httpB := ports[10], ports[13]
	testutil.EventuallyState(t, 90*time.Second, "a online as DELAY_MASTER, b its DELAY_SLAVE", func() (bool, string) {
		ha, errA := delayHealth(httpA)
		hb, errB := delayHealth(httpB)
		return errA == nil && errB == nil && ha.Online && ha.Role == "DELAY_MASTER" && hb.Role == "DELAY_SLAVE",
			fmt.Sprintf("a %+v (%v); b %+v (%v)", ha, errA, hb, errB)
	})
	t.Logf("delay pair up %v after its job run", time.Since(start).Round(time.Millisecond))

	const subject = "nomad.delay.pair"
	rec := consumetest.Start(t, endpoint, subject, "nomad-delay-pair")
	time.Sleep(time.Second) // the consumer group starts at the next message
	p, err := client.NewProducer(ctx, endpoint, client.WithSendTimeout(5*time.Second))
	if err != nil {
		t.Fatalf("producer through %s: %v", endpoint, err)
	}
	defer p.Close(context.Background())
	const delay = 20 * time.Second
	var ids []string
	var msgs []*client.Message
	for range 20 {
		m := p.NewMessage(subject).SetDelay(delay)
		msgs = append(msgs, m)
		ids = append(ids, m.ID())
	}
	// The slave may still be connecting: BROKER_BUSY until it has them.
	testutil.EventuallyState(t, 30*time.Second, "the delay messages acknowledged (the slave has them)", func() (bool, string) {
		err := p.Send(ctx, msgs...)
		return err == nil, fmt.Sprint(err)
	})
	sent := time.Now()

	allocA := allocOf(t, n, *delayJob.ID, "a")
	if err := n.Client.Allocations().Signal(allocA, nil, "delay", "SIGKILL"); err != nil {
		t.Fatalf("SIGKILL the delay task of allocation %s: %v", allocA.ID, err)
	}
	killed := time.Now()
	testutil.EventuallyState(t, 90*time.Second, "b online as DELAY_MASTER", func() (bool, string) {
		h, err := delayHealth(httpB)
		return err == nil && h.Online && h.Role == "DELAY_MASTER", fmt.Sprintf("%+v (%v)", h, err)
	})
	promoted := time.Since(killed)
	testutil.EventuallyState(t, 90*time.Second, "every pending delay message consumed", func() (bool, string) {
		missing, _ := rec.Missing(ids)
		return missing == 0, fmt.Sprintf("%d of %d missing", missing, len(ids))
	})
	delivered := time.Since(sent)
	if delivered < delay-time.Second {
		t.Errorf("the %v delay messages arrived %v after they were sent", delay, delivered)
	}
	testutil.EventuallyState(t, 90*time.Second, "a back as b's DELAY_SLAVE", func() (bool, string) {
		h, err := delayHealth(httpA)
		return err == nil && h.Role == "DELAY_SLAVE", fmt.Sprintf("%+v (%v)", h, err)
	})
	rejoined := time.Since(killed)
	restarted := allocOf(t, n, *delayJob.ID, "a")
	if restarted.ID != allocA.ID {
		t.Errorf("a should be restarted in place: allocation %s, was %s", restarted.ID, allocA.ID)
	}
	// How a rejoined: with its store (its logs end within the takeover
	// point) or after cutting the tail the kill left unreplicated.
	logs := n.TaskLogs(allocA.ID, "delay")
	for _, l := range strings.Split(logs, "\n") {
		if strings.Contains(l, "rejoins as slave") || strings.Contains(l, "cut the tail") || strings.Contains(l, "delete its store.root") {
			t.Logf("a: %s", l)
		}
	}
	if strings.Contains(logs, "delete its store.root") {
		t.Errorf("a refused to rejoin after a lease takeover")
	}
	t.Logf("%d delay messages (due %v after sending) all consumed %v after sending; SIGKILL of a: b online as DELAY_MASTER after %v, a back as its slave after %v",
		len(ids), delay, delivered.Round(time.Millisecond), promoted.Round(time.Millisecond), rejoined.Round(time.Millisecond))
}

package jobs_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"
	"testing"
	"time"

	"github.com/qmq-go/qmq/client"
	"github.com/qmq-go/qmq/client/admin"
	"github.com/qmq-go/qmq/internal/consumetest"
	"github.com/qmq-go/qmq/internal/testutil"
	"github.com/qmq-go/qmq/jobs"
	"github.com/qmq-go/qmq/jobs/nomadtest"
)

// TestNomadDelayGroup runs the delay job on the test agent as an operator
// would, beside the metaserver and broker jobs (one node, raw_exec): the
// job's prestart task registers the delay server (AddBroker --role=5), it
// goes online as DELAY_MASTER, and a message sent with a delay through
// consul://qmq-metaserver reaches a consumer once due, while another one,
// withdrawn with CancelDelay (the metaserver and the delay job share
// delay.admin.secret), never does.
func TestNomadDelayGroup(t *testing.T) {
	n := nomadtest.Agent(t)
	qmq := buildQMQ(t)
	noQMQLeftBehind(t, qmq)
	for _, v := range []string{volMeta, volA, volB, volDelayA} {
		emptyDir(t, n.VolumePath(t, v))
	}
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()

	dns := "127.0.0.1:" + strconv.Itoa(n.Consul.Config.Ports.DNS)
	endpoint := "consul://qmq-metaserver?dns=" + dns
	ports := testutil.FreePorts(t, 11)
	metaVars := withVars(metaTestVars(n, t, qmq, ports[0], ports[1]), jobs.Vars{"delay_admin_secret": testDelayAdminSecret})
	runJob(ctx, t, n, jobs.Metaserver, metaVars)
	// A broker group of its own: allocations of a purged job stay listed
	// under its ID until Nomad collects them, and TestNomadBrokerPairFailover
	// counts those of qmq-broker-nomad_g1.
	runJob(ctx, t, n, jobs.Broker, withVars(brokerTestVars(n, t, qmq, endpoint, [6]int(ports[2:8])), jobs.Vars{"broker_group": "nomad_delay_rt"}))
	a := member{name: "a", port: ports[2], http: ports[4]}
	testutil.EventuallyState(t, 90*time.Second, "the broker pair's master online with its slave", func() (bool, string) {
		h, err := a.health()
		return err == nil && h.masterReady(), fmt.Sprintf("%s (%v)", h, err)
	})

	start := time.Now()
	runJob(ctx, t, n, jobs.Delay, delayTestVars(n, t, qmq, endpoint, [3]int(ports[8:11])))
	delayHTTP := ports[10]
	testutil.EventuallyState(t, 90*time.Second, "the delay server online as DELAY_MASTER", func() (bool, string) {
		h, err := delayHealth(delayHTTP)
		return err == nil && h.Online && h.Role == "DELAY_MASTER", fmt.Sprintf("%+v (%v)", h, err)
	})
	t.Logf("delay server online %v after its job run", time.Since(start).Round(time.Millisecond))

	const subject = "nomad.delay"
	rec := consumetest.Start(t, endpoint, subject, "nomad-delay")
	time.Sleep(time.Second) // the consumer group starts at the next message
	p, err := client.NewProducer(ctx, endpoint, client.WithSendTimeout(5*time.Second))
	if err != nil {
		t.Fatalf("producer through %s: %v", endpoint, err)
	}
	defer p.Close(context.Background())
	kept := p.NewMessage(subject).SetDelay(3 * time.Second)
	gone := p.NewMessage(subject).SetDelay(5 * time.Second)
	if err := p.Send(ctx, kept, gone); err != nil {
		t.Fatalf("send delay messages: %v", err)
	}
	sent := time.Now()
	res, err := admin.New("127.0.0.1:"+strconv.Itoa(ports[0]), testToken).CancelDelay(ctx, subject, gone.ID())
	if err != nil || !res.Cancelled || res.BrokerGroup != "nomad_delay1" {
		t.Fatalf("CancelDelay %s: %+v %v; want cancelled by nomad_delay1", gone.ID(), res, err)
	}
	testutil.EventuallyState(t, 30*time.Second, "the delay message consumed", func() (bool, string) {
		missing, _ := rec.Missing([]string{kept.ID()})
		return missing == 0, fmt.Sprint(missing)
	})
	if early := time.Since(sent); early < 3*time.Second-500*time.Millisecond {
		t.Errorf("the 3 s delay message arrived %v after it was sent", early)
	}
	time.Sleep(time.Until(sent.Add(5*time.Second + 2*time.Second)))
	if missing, _ := rec.Missing([]string{gone.ID()}); missing != 1 {
		t.Errorf("the cancelled message %s was delivered", gone.ID())
	}
}

// delayHealthReport is the part of the delay server's /health the test reads.
type delayHealthReport struct {
	Status string `json:"status"`
	Group  string `json:"group"`
	Role   string `json:"role"`
	Online bool   `json:"online"`
}

func delayHealth(port int) (delayHealthReport, error) {
	c := http.Client{Timeout: 2 * time.Second}
	resp, err := c.Get(fmt.Sprintf("http://127.0.0.1:%d/health", port))
	if err != nil {
		return delayHealthReport{}, err
	}
	defer resp.Body.Close()
	var h delayHealthReport
	if err := json.NewDecoder(resp.Body).Decode(&h); err != nil {
		return delayHealthReport{}, fmt.Errorf("delay server /health: %w", err)
	}
	return h, nil
}

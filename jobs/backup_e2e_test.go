package jobs_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"testing"
	"time"

	"github.com/qmq-go/qmq/client"
	"github.com/qmq-go/qmq/internal/testutil"
	"github.com/qmq-go/qmq/jobs"
	"github.com/qmq-go/qmq/jobs/nomadtest"
)

// TestNomadBackup runs the backup job on the test agent beside the
// metaserver and broker-pair jobs (one node, raw_exec): its prestart task
// registers it (role 4), it follows the pair's slave with the group's sync
// secret, and messages sent through consul://qmq-metaserver are listed by
// its /api/message.
func TestNomadBackup(t *testing.T) {
	n := nomadtest.Agent(t)
	qmq := buildQMQ(t)
	noQMQLeftBehind(t, qmq)
	for _, v := range []string{volMeta, volA, volB, volBackup} {
		emptyDir(t, n.VolumePath(t, v))
	}
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	endpoint := "consul://qmq-metaserver?dns=127.0.0.1:" + strconv.Itoa(n.Consul.Config.Ports.DNS)
	ports := testutil.FreePorts(t, 9)
	runJob(ctx, t, n, jobs.Metaserver, metaTestVars(n, t, qmq, ports[0], ports[1]))
	// A broker group of its own (allocations of purged jobs stay listed under their IDs a while).
	runJob(ctx, t, n, jobs.Broker, withVars(brokerTestVars(n, t, qmq, endpoint, [6]int(ports[2:8])), jobs.Vars{"broker_group": "nomad_backup_g"}))
	a := member{name: "a", port: ports[2], http: ports[4]}
	testutil.EventuallyState(t, 90*time.Second, "the broker pair's master online with its slave", func() (bool, string) {
		h, err := a.health()
		return err == nil && h.masterReady(), fmt.Sprintf("%s (%v)", h, err)
	})
	httpPort := ports[8]
	runJob(ctx, t, n, jobs.Backup, backupTestVars(n, t, qmq, endpoint, httpPort))
	testutil.EventuallyState(t, 90*time.Second, "the backup following the slave", func() (bool, string) {
		body, code, err := get(fmt.Sprintf("http://127.0.0.1:%d/health", httpPort))
		return err == nil && code == 200, fmt.Sprintf("%d %s %v", code, body, err)
	})

	p, err := client.NewProducer(ctx, endpoint, client.WithSendTimeout(5*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close(context.Background())
	const subject = "nomad.backup"
	var ids []string
	for i := range 5 {
		m := p.NewMessage(subject).SetBody(fmt.Sprint(i))
		if err := p.Send(ctx, m); err != nil {
			t.Fatal(err)
		}
		ids = append(ids, m.ID())
	}
	q, _ := json.Marshal(map[string]any{"subject": subject, "len": 100})
	testutil.EventuallyState(t, 60*time.Second, "every message listed by the backup", func() (bool, string) {
		body, code, err := get(fmt.Sprintf("http://127.0.0.1:%d/api/message?backupQuery=%s", httpPort, url.QueryEscape(string(q))))
		if err != nil || code != 200 {
			return false, fmt.Sprintf("%d %s %v", code, body, err)
		}
		var list struct {
			List []struct {
				MessageID   string `json:"messageId"`
				BrokerGroup string `json:"brokerGroup"`
			} `json:"list"`
		}
		if err := json.Unmarshal(body, &list); err != nil {
			return false, err.Error()
		}
		have := map[string]bool{}
		for _, m := range list.List {
			have[m.MessageID] = m.BrokerGroup == "nomad_backup_g"
		}
		for _, id := range ids {
			if !have[id] {
				return false, string(body)
			}
		}
		return true, ""
	})
}

// backupTestVars are the backup job's variables on the one-node test agent.
func backupTestVars(n *nomadtest.Server, t *testing.T, qmq, metaEndpoint string, httpPort int) jobs.Vars {
	return jobs.Vars{
		"qmq_binary":     qmq,
		"driver":         "raw_exec",
		"admin_token":    testToken,
		"sync_secret":    testSyncSecret,
		"broker_group":   "nomad_backup_g",
		"volume":         volBackup,
		"store_root":     n.VolumePath(t, volBackup),
		"http_port":      httpPort,
		"consul_address": n.Consul.HTTPAddr,
		"meta_endpoint":  metaEndpoint,
	}
}

func get(u string) ([]byte, int, error) {
	c := http.Client{Timeout: 2 * time.Second}
	resp, err := c.Get(u)
	if err != nil {
		return nil, 0, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return b, resp.StatusCode, err
}

package main

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/qmq-go/qmq/backup"
	"github.com/qmq-go/qmq/backup/pebblestore"
	"github.com/qmq-go/qmq/client"
	"github.com/qmq-go/qmq/client/admin"
	"github.com/qmq-go/qmq/internal/testutil"
	"github.com/qmq-go/qmq/tests/framework"
)

// backupHealth is the part of the backup's /health the tests read.
type backupHealth struct {
	Status        string   `json:"status"`
	Reasons       []string `json:"reasons"`
	Slave         string   `json:"slave"`
	MessageOffset int64    `json:"messageOffset"`
	ActionOffset  int64    `json:"actionOffset"`
	Lag           struct {
		MessageBytes int64 `json:"messageBytes"`
		ActionBytes  int64 `json:"actionBytes"`
	} `json:"lag"`
}

func readBackupHealth(httpPort int) (backupHealth, error) {
	var h backupHealth
	resp, err := http.Get(fmt.Sprintf("http://127.0.0.1:%d/health", httpPort))
	if err != nil {
		return h, err
	}
	defer resp.Body.Close()
	return h, json.NewDecoder(resp.Body).Decode(&h)
}

// TestBinaryBackupSurvivesKill9: a group (master and slave, in process)
// takes a stream of messages that a consumer group consumes, while a real
// `qmq backup` process follows the slave; it is killed with SIGKILL in the
// middle and started again. Once it has caught up, its Pebble store holds
// every message exactly once, and each message exactly one pull and one
// ack of the group: nothing missing, nothing doubled.
func TestBinaryBackupSurvivesKill9(t *testing.T) {
	if testing.Short() {
		t.Skip("end to end")
	}
	c := framework.StartCluster(t, framework.ClusterOptions{Slaves: true})
	hostname, err := os.Hostname()
	if err != nil {
		t.Fatal(err)
	}
	ports := testutil.FreePorts(t, 3)
	rowPort, rowSync, httpPort := ports[0], ports[1], ports[2]
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, _, err := c.Admin().AddBroker(ctx, admin.BrokerSpec{Group: "g1", Role: admin.RoleBackup, Hostname: hostname, IP: "127.0.0.1",
		ServePort: rowPort, SyncPort: rowSync}); err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	root := filepath.Join(dir, "backup")
	writeFile(t, filepath.Join(dir, "backup.properties"), fmt.Sprintf(
		"meta.server.endpoint=%s\nbroker.port=%d\nbackup.server.http.port=%d\nbackup.bind.host=127.0.0.1\nstore.root=%s\n"+
			"sync.offset.flush.interval=50\nbackup.meta.refresh.ms=200\nbackup.sync.retry.ms=200\n", c.Endpoint(), rowPort, httpPort, root))
	start := func() (*exec.Cmd, *syncBuffer) {
		cmd, log := startProcess(t, "backup", "backup", "--conf", dir)
		testutil.EventuallyState(t, 30*time.Second, "the backup following the slave", func() (bool, string) {
			h, err := readBackupHealth(httpPort)
			return err == nil && h.Status == "ok", fmt.Sprintf("%+v %v", h, err)
		})
		return cmd, log
	}
	cmd, _ := start()

	const subject, group, n = "backup.kill9", "kill9-workers", 1500
	cons, err := client.NewConsumer(context.Background(), c.Endpoint(), subject, group, client.WithLogger(hclog.NewNullLogger()),
		client.WithAckFlushInterval(20*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	var consumed atomic.Int64
	cctx, stopConsumer := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Go(func() {
		_ = cons.Run(cctx, func(ctx context.Context, m *client.Message) error {
			if m.Property("probe") == "" {
				consumed.Add(1)
			}
			return nil
		})
	})
	defer func() { stopConsumer(); wg.Wait(); cons.Close() }()
	p, err := client.NewProducer(context.Background(), c.Endpoint(), client.WithLogger(hclog.NewNullLogger()))
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close(context.Background())
	time.Sleep(time.Second) // the new group's cursor registered before anything is sent
	sent := map[string]bool{}
	for i := range n {
		m := p.NewMessage(subject).SetBody(fmt.Sprintf("message %d", i))
		if err := p.Send(context.Background(), m); err != nil {
			t.Fatal(err)
		}
		sent[m.ID()] = true
		if i == n/3 {
			if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
				t.Fatal(err)
			}
		}
		if i == n/2 {
			var log *syncBuffer
			cmd, log = start()
			if l := log.String(); !strings.Contains(l, "resuming from the checkpoint") {
				t.Fatalf("the restarted backup did not resume from its checkpoint:\n%s", l)
			}
		}
		if i%50 == 0 {
			time.Sleep(20 * time.Millisecond) // spread the sends, so the kill lands mid-stream
		}
	}
	testutil.EventuallyState(t, 60*time.Second, "every message consumed", func() (bool, string) {
		return consumed.Load() >= n, fmt.Sprintf("%d of %d", consumed.Load(), n)
	})
	g := c.Group("g1")
	testutil.EventuallyState(t, 60*time.Second, "the backup caught up with the slave", func() (bool, string) {
		h, err := readBackupHealth(httpPort)
		sh, serr := g.Slave.Health()
		ok := err == nil && serr == nil && h.Status == "ok" && h.MessageOffset == sh.MessageLogEnd && h.ActionOffset == sh.ActionLogEnd
		return ok, fmt.Sprintf("backup %+v; slave %+v", h, sh)
	})
	time.Sleep(300 * time.Millisecond) // a checkpoint after the last write
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	_, _ = cmd.Process.Wait()

	ps := pebblestore.DefaultSettings()
	ps.Dir = filepath.Join(root, "pebble")
	st, err := pebblestore.Open(ps)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	q := backup.MessageQuery{Subject: subject, Len: backup.MaxPageLen, CreateTimeBegin: time.Now().Add(-time.Hour), CreateTimeEnd: time.Now().Add(time.Hour)}
	seen := map[string]int{}
	var msgs []backup.Message
	for {
		page, err := st.FindMessages(context.Background(), q)
		if err != nil {
			t.Fatal(err)
		}
		msgs = append(msgs, page.Messages...)
		if page.Next == "" {
			break
		}
		q.Start = page.Next
	}
	for _, m := range msgs {
		seen[m.MessageID]++
	}
	missing, doubled := 0, 0
	for id := range sent {
		switch seen[id] {
		case 0:
			missing++
		case 1:
		default:
			doubled++
		}
	}
	if missing > 0 || doubled > 0 || len(msgs) < n {
		t.Fatalf("after kill -9 and restart: %d of %d messages missing, %d doubled (%d entries)", missing, n, doubled, len(msgs))
	}
	badRecords := 0
	for _, m := range msgs {
		if !sent[m.MessageID] {
			continue // a probe
		}
		recs, err := st.FindRecords(context.Background(), backup.RecordQuery{Subject: subject, MessageID: m.MessageID, BrokerGroup: m.BrokerGroup, Sequence: m.Sequence})
		if err != nil {
			t.Fatal(err)
		}
		pulls, acks := 0, 0
		for _, r := range recs {
			if r.ConsumerGroup != group {
				continue
			}
			if r.Action == backup.ActionPull {
				pulls++
			} else if r.Action == backup.ActionAck {
				acks++
			}
		}
		if pulls != 1 || acks != 1 {
			if badRecords < 5 {
				t.Errorf("message %s (seq %d): %d pulls and %d acks of %s, want 1 and 1: %+v", m.MessageID, m.Sequence, pulls, acks, group, recs)
			}
			badRecords++
		}
	}
	if badRecords > 0 {
		t.Fatalf("%d of %d messages lack their pull or ack, or have them twice", badRecords, n)
	}
}

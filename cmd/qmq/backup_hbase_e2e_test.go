package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/qmq-go/qmq/backup/hbasestore"
	"github.com/qmq-go/qmq/backup/hbasetest"
	"github.com/qmq-go/qmq/client"
	"github.com/qmq-go/qmq/client/admin"
	"github.com/qmq-go/qmq/internal/testutil"
	"github.com/qmq-go/qmq/tests/framework"
)

// listedIDs asks a backup's /api/message for subject's message ids.
func listedIDs(httpPort int, subject string) (map[string]bool, error) {
	q, _ := json.Marshal(map[string]any{"subject": subject, "len": 1000})
	resp, err := http.Get(fmt.Sprintf("http://127.0.0.1:%d/api/message?backupQuery=%s", httpPort, url.QueryEscape(string(q))))
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 200 {
		return nil, fmt.Errorf("%d %s", resp.StatusCode, body)
	}
	var list struct {
		List []struct {
			MessageID string `json:"messageId"`
		} `json:"list"`
	}
	if err := json.Unmarshal(body, &list); err != nil {
		return nil, err
	}
	out := map[string]bool{}
	for _, m := range list.List {
		out[m.MessageID] = true
	}
	return out, nil
}

// TestBinaryBackupHBaseDown: `qmq backup` with store.type=hbase writes
// through the REST gateway; while the gateway is down it holds its
// checkpoint, retries and says so in /health; when the gateway is back,
// every message sent meanwhile is there.
func TestBinaryBackupHBaseDown(t *testing.T) {
	if testing.Short() {
		t.Skip("end to end")
	}
	c := framework.StartCluster(t, framework.ClusterOptions{Slaves: true})
	hb := hbasetest.Start(t)
	hs := hbasestore.DefaultSettings()
	hs.RestURL = hb.URL()
	if _, err := hbasestore.CreateTablesAt(context.Background(), hs); err != nil {
		t.Fatal(err)
	}
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
	writeFile(t, filepath.Join(dir, "backup.properties"), fmt.Sprintf(
		"meta.server.endpoint=%s\nbroker.port=%d\nbackup.server.http.port=%d\nbackup.bind.host=127.0.0.1\nstore.root=%s\nstore.type=hbase\n"+
			"sync.offset.flush.interval=50\nbackup.meta.refresh.ms=200\nbackup.sync.retry.ms=200\nbackup.store.retry.max.ms=500\n",
		c.Endpoint(), rowPort, httpPort, filepath.Join(dir, "backup")))
	writeFile(t, filepath.Join(dir, "hbase.properties"), "backup.hbase.rest.url="+hb.URL()+"\nbackup.hbase.timeout.ms=1000\n")
	startProcess(t, "backup", "backup", "--conf", dir)
	testutil.EventuallyState(t, 30*time.Second, "the backup following the slave", func() (bool, string) {
		h, err := readBackupHealth(httpPort)
		return err == nil && h.Status == "ok", fmt.Sprintf("%+v %v", h, err)
	})

	p, err := client.NewProducer(context.Background(), c.Endpoint(), client.WithLogger(hclog.NewNullLogger()))
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close(context.Background())
	const subject = "backup.hbase"
	sendN := func(n int) []string {
		var ids []string
		for i := range n {
			m := p.NewMessage(subject).SetBody(fmt.Sprint(i))
			if err := p.Send(context.Background(), m); err != nil {
				t.Fatal(err)
			}
			ids = append(ids, m.ID())
		}
		return ids
	}
	waitListed := func(ids []string) {
		t.Helper()
		testutil.EventuallyState(t, 30*time.Second, "every message listed", func() (bool, string) {
			got, err := listedIDs(httpPort, subject)
			if err != nil {
				return false, err.Error()
			}
			n := 0
			for _, id := range ids {
				if got[id] {
					n++
				}
			}
			return n == len(ids), fmt.Sprintf("%d of %d", n, len(ids))
		})
	}
	first := sendN(10)
	waitListed(first)

	hb.Down()
	held := sendN(20)
	testutil.EventuallyState(t, 20*time.Second, "/health degraded naming the store", func() (bool, string) {
		h, err := readBackupHealth(httpPort)
		return err == nil && h.Status == "degraded" && strings.Contains(strings.Join(h.Reasons, ";"), "store"), fmt.Sprintf("%+v %v", h, err)
	})
	before, _ := readBackupHealth(httpPort)
	time.Sleep(time.Second)
	after, _ := readBackupHealth(httpPort)
	if after.MessageOffset != before.MessageOffset {
		t.Fatalf("the offset moved from %d to %d while HBase was down", before.MessageOffset, after.MessageOffset)
	}
	if err := hb.Up(); err != nil {
		t.Fatal(err)
	}
	waitListed(append(first, held...))
	testutil.EventuallyState(t, 20*time.Second, "/health ok again", func() (bool, string) {
		h, err := readBackupHealth(httpPort)
		return err == nil && h.Status == "ok", fmt.Sprintf("%+v %v", h, err)
	})
}

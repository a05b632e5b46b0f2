package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/qmq-go/qmq/backup"
	"github.com/qmq-go/qmq/backup/hbasetest"
	"github.com/qmq-go/qmq/backup/pebblestore"
	"github.com/qmq-go/qmq/backup/query"
	"github.com/qmq-go/qmq/internal/testutil"
	"github.com/qmq-go/qmq/protocol"
)

// queryBackup serves the query API over a Pebble store holding 30
// messages of order.changed (one a minute, the newest 1 minute old), a dead
// letter and two records.
func queryBackup(t *testing.T) string {
	t.Helper()
	s := pebblestore.DefaultSettings()
	s.Dir = t.TempDir()
	st, err := pebblestore.Open(s)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	now := time.Now()
	var msgs []backup.Message
	for i := range 30 {
		msgs = append(msgs, backup.Message{Subject: "order.changed", MessageID: fmt.Sprintf("m%02d", i), BrokerGroup: "bg1", Sequence: int64(i), CreateTime: now.Add(-time.Duration(30-i) * time.Minute)})
	}
	dead, err := protocol.AppendMessage(nil, &protocol.Message{CreateTime: now.Add(-time.Hour).UnixMilli(), Subject: "order.changed", MessageID: "d1"})
	if err != nil {
		t.Fatal(err)
	}
	// d1 and m03 are both sequence 3 of bg1 (numbered in different logs).
	msgs = append(msgs, backup.Message{Subject: "order.changed", MessageID: "d1", BrokerGroup: "bg1", Sequence: 3, CreateTime: now.Add(-time.Hour), Kind: backup.KindDead, ConsumerGroup: "billing",
		Content: dead[8:]})
	// m05's retry copy for billing: sequence 0 of %RETRY%order.changed%billing.
	retried, err := protocol.AppendMessage(nil, &protocol.Message{CreateTime: now.Add(-25 * time.Minute).UnixMilli(), Subject: "%RETRY%order.changed%billing", MessageID: "m05"})
	if err != nil {
		t.Fatal(err)
	}
	msgs = append(msgs, backup.Message{Subject: "order.changed", MessageID: "m05", BrokerGroup: "bg1", Sequence: 0, CreateTime: now.Add(-25 * time.Minute), Kind: backup.KindRetry, ConsumerGroup: "billing",
		Content: retried[8:], LogOffset: 4096, Located: true})
	ctx := context.Background()
	if err := st.PutMessages(ctx, msgs); err != nil {
		t.Fatal(err)
	}
	if err := st.PutRecords(ctx, []backup.Record{
		{Subject: "order.changed", BrokerGroup: "bg1", Sequence: 5, ConsumerGroup: "billing", ConsumerID: "host-a", Action: backup.ActionPull, Timestamp: now.Add(-time.Minute)},
		{Subject: "order.changed", BrokerGroup: "bg1", Sequence: 5, ConsumerGroup: "billing", ConsumerID: "host-a", Action: backup.ActionAck, Timestamp: now},
		{Subject: "%RETRY%order.changed%billing", BrokerGroup: "bg1", Sequence: 0, ConsumerGroup: "billing", ConsumerID: "host-b", Action: backup.ActionPull, Timestamp: now},
	}); err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(query.NewHandler(st, query.Options{}))
	t.Cleanup(srv.Close)
	return strings.TrimPrefix(srv.URL, "http://")
}

func runQ(args ...string) (code int, stdout, stderr string) {
	var o, e bytes.Buffer
	code = runQuery(args, &o, &e)
	return code, o.String(), e.String()
}

func TestQueryCommands(t *testing.T) {
	addr := queryBackup(t)

	code, out, errOut := runQ("message", "--backup", addr, "--subject", "order.changed", "--len", "5")
	if code != 0 {
		t.Fatalf("message: %d %s", code, errOut)
	}
	var l query.MessageList
	if err := json.Unmarshal([]byte(out), &l); err != nil || len(l.List) != 5 || l.Next == nil || l.List[0].MessageID != "m29" {
		t.Fatalf("message JSON %s: %v", out, err)
	}
	code, out, errOut = runQ("message", "--backup", "http://"+addr, "--subject", "order.changed", "--since", "10m30s", "--all", "--len", "3")
	if code != 0 || json.Unmarshal([]byte(out), &l) != nil || len(l.List) != 10 || l.Next != nil {
		t.Fatalf("message --since 10m30s --all: %d %s %s", code, out, errOut)
	}
	code, out, _ = runQ("message", "--backup", addr, "--subject", "order.changed", "--id", "m07", "--table")
	if code != 0 || !strings.Contains(out, "MESSAGE ID") || !strings.Contains(out, "m07") || strings.Count(out, "\n") != 2 {
		t.Fatalf("message --id --table:\n%s", out)
	}
	code, out, _ = runQ("dead", "--backup", addr, "--subject", "order.changed", "--group", "billing", "--table")
	if code != 0 || !strings.Contains(out, "d1") || !strings.Contains(out, "billing") {
		t.Fatalf("dead --table:\n%s", out)
	}
	code, out, _ = runQ("records", "--backup", addr, "--subject", "order.changed", "--broker-group", "bg1", "--sequence", "5", "--table")
	if code != 0 || !strings.Contains(out, "pull") || !strings.Contains(out, "ack") || !strings.Contains(out, "host-a") {
		t.Fatalf("records --table:\n%s", out)
	}
	code, out, _ = runQ("detail", "--backup", addr, "--subject", "order.changed", "--broker-group", "bg1", "--sequence", "3", "--group", "billing", "--table")
	if code != 0 || !strings.Contains(out, "d1") || !strings.Contains(out, "billing") {
		t.Fatalf("detail --group billing --table:\n%s", out)
	}
	// A retry copy: its records name its broker group and sequence, which
	// with its group name its detail.
	code, out, _ = runQ("records", "--backup", addr, "--subject", "order.changed", "--id", "m05", "--retry", "--table")
	if code != 0 || !strings.Contains(out, "BROKER GROUP") || !strings.Contains(out, "host-b") || !strings.Contains(out, "bg1") {
		t.Fatalf("records --retry --table:\n%s", out)
	}
	code, out, _ = runQ("retry", "--backup", addr, "--subject", "order.changed", "--id", "m05", "--table")
	if code != 0 || !strings.Contains(out, "CONSUMER GROUP") || !strings.Contains(out, "billing") || strings.Count(out, "\n") != 2 {
		t.Fatalf("retry --table:\n%s", out)
	}
	code, out, errOut = runQ("detail", "--backup", addr, "--subject", "order.changed", "--broker-group", "bg1", "--sequence", "0", "--group", "billing", "--retry", "--table")
	if code != 0 || !strings.Contains(out, "m05") || !strings.Contains(out, "billing") || !strings.Contains(out, "%RETRY%order.changed%billing") {
		t.Fatalf("detail --group billing --retry --table: %d\n%s%s", code, out, errOut)
	}
	code, out, _ = runQ("records", "--backup", addr, "--subject", "order.changed", "--id", "d1", "--dead")
	var rl query.RecordList
	if code != 0 || json.Unmarshal([]byte(out), &rl) != nil || len(rl.Records) != 1 || rl.Records[0].Action != -2 {
		t.Fatalf("records --dead: %s", out)
	}
}

func TestQueryErrors(t *testing.T) {
	addr := queryBackup(t)
	free := testutil.FreePorts(t, 1)[0]
	cases := []struct {
		args []string
		code int
		want string
	}{
		{[]string{"message", "--backup", fmt.Sprintf("127.0.0.1:%d", free), "--subject", "s"}, 1, "cannot reach the backup"},
		{[]string{"message", "--backup", addr}, 2, "--subject is required"},
		{[]string{"message", "--backup", addr, "--subject", "order.changed", "--since", "last tuesday"}, 2, "--since"},
		{[]string{"message", "--backup", addr, "--subject", "no.such.subject"}, 1, "field subject"},
		{[]string{"message", "--backup", addr, "--subject", "order.changed", "--len", "5000"}, 1, "field len"},
		{[]string{"message", "--backup", addr, "--subject", "order.changed", "--since", "1h", "--until", "2h"}, 1, "field msgCreateTimeBegin"},
		{[]string{"records", "--backup", addr, "--subject", "order.changed"}, 2, "--broker-group"},
		{[]string{"records", "--backup", addr, "--subject", "order.changed", "--retry"}, 2, "--id"},
		{[]string{"detail", "--backup", addr, "--subject", "order.changed", "--broker-group", "bg1", "--sequence", "0", "--retry"}, 2, "--group"},
		{[]string{"retry", "--backup", addr, "--subject", "order.changed"}, 2, "--id"},
		{[]string{"frobnicate"}, 2, "unknown command"},
		{[]string{"create-hbase-tables"}, 2, "--rest is required"},
	}
	for _, c := range cases {
		code, _, errOut := runQ(c.args...)
		if code != c.code || !strings.Contains(errOut, c.want) {
			t.Errorf("qmq query %s: exit %d, %q; want exit %d mentioning %q", strings.Join(c.args, " "), code, errOut, c.code, c.want)
		}
	}
}

func TestQueryCreateHBaseTables(t *testing.T) {
	gw := hbasetest.Start(t)
	code, out, errOut := runQ("create-hbase-tables", "--rest", gw.URL(), "--retention-days", "3")
	if code != 0 || !strings.Contains(out, "qmq_backup_dead_content") {
		t.Fatalf("create: %d %s %s", code, out, errOut)
	}
	if f := gw.Family("qmq_backup", "m"); f["TTL"] != "259200" {
		t.Fatalf("qmq_backup TTL %v", f)
	}
	if code, out, _ = runQ("create-hbase-tables", "--rest", gw.URL()); code != 0 || !strings.Contains(out, "nothing created") {
		t.Fatalf("second run: %d %s", code, out)
	}
	gw.Down()
	if code, _, errOut = runQ("create-hbase-tables", "--rest", gw.URL(), "--timeout", "1s"); code != 1 || !strings.Contains(errOut, "unavailable") {
		t.Fatalf("gateway down: %d %s", code, errOut)
	}
}

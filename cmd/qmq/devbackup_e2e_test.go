package main

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/qmq-go/qmq/backup"
	"github.com/qmq-go/qmq/backup/pebblestore"
	"github.com/qmq-go/qmq/client"
	"github.com/qmq-go/qmq/internal/testutil"
)

// TestDevBackup: `qmq dev` runs a backup of its group; messages sent and
// consumed through it are indexed with their broker group and sequence,
// each consumer group's pull and ack recorded, and a handler that always
// fails produces a dead letter with its content.
func TestDevBackup(t *testing.T) {
	if testing.Short() {
		t.Skip("end to end")
	}
	data := filepath.Join(t.TempDir(), "dev")
	backupHTTP := testutil.FreePorts(t, 1)[0]
	dev := startDev(t, data, devPorts(t), fmt.Sprintf("--backup-http=%d", backupHTTP))
	testutil.EventuallyState(t, 30*time.Second, "the dev backup following its group", func() (bool, string) {
		h, err := readBackupHealth(backupHTTP)
		return err == nil && h.Status == "ok", fmt.Sprintf("%+v %v", h, err)
	})

	const subject = "dev.backup"
	var mu sync.Mutex
	got := map[string]map[string]bool{"ok": {}, "failing": {}}
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	for _, group := range []string{"ok", "failing"} {
		opts := []client.ConsumerOption{client.WithLogger(hclog.NewNullLogger()), client.WithAckFlushInterval(20 * time.Millisecond)}
		if group == "failing" {
			opts = append(opts, client.WithMaxRetries(1)) // the first failure makes the dead letter
		}
		cons, err := client.NewConsumer(context.Background(), dev.meta, subject, group, opts...)
		if err != nil {
			t.Fatal(err)
		}
		defer cons.Close()
		wg.Go(func() {
			_ = cons.Run(ctx, func(ctx context.Context, m *client.Message) error {
				mu.Lock()
				got[group][m.ID()] = true
				mu.Unlock()
				if group == "failing" {
					return errors.New("this handler always fails")
				}
				return nil
			})
		})
	}
	defer func() { cancel(); wg.Wait() }()
	p, err := client.NewProducer(context.Background(), dev.meta, client.WithLogger(hclog.NewNullLogger()))
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close(context.Background())
	time.Sleep(2 * time.Second) // both groups' cursors registered before anything is sent
	var ids []string
	for i := range 5 {
		m := p.NewMessage(subject).SetBody(fmt.Sprintf("hello %d", i))
		if err := p.Send(context.Background(), m); err != nil {
			t.Fatal(err)
		}
		ids = append(ids, m.ID())
	}
	testutil.EventuallyState(t, 30*time.Second, "both groups consumed every message", func() (bool, string) {
		mu.Lock()
		defer mu.Unlock()
		return len(got["ok"]) >= len(ids) && len(got["failing"]) >= len(ids), fmt.Sprintf("ok %d, failing %d", len(got["ok"]), len(got["failing"]))
	})
	time.Sleep(time.Second) // acks flushed, dead letters sent
	testutil.EventuallyState(t, 30*time.Second, "the backup caught up", func() (bool, string) {
		h, err := readBackupHealth(backupHTTP)
		return err == nil && h.Status == "ok" && h.Lag.MessageBytes == 0 && h.Lag.ActionBytes == 0, fmt.Sprintf("%+v %v", h, err)
	})
	time.Sleep(300 * time.Millisecond)
	_ = dev.cmd.Process.Signal(syscall.SIGTERM)
	_ = dev.cmd.Wait()

	ps := pebblestore.DefaultSettings()
	ps.Dir = filepath.Join(data, "backup", "pebble")
	st, err := pebblestore.Open(ps)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	window := backup.MessageQuery{Subject: subject, Len: 100, CreateTimeBegin: time.Now().Add(-time.Hour), CreateTimeEnd: time.Now().Add(time.Hour)}
	page, err := st.FindMessages(context.Background(), window)
	if err != nil {
		t.Fatal(err)
	}
	indexed := map[string]backup.Message{}
	for _, m := range page.Messages {
		indexed[m.MessageID] = m
	}
	for _, id := range ids {
		m, ok := indexed[id]
		if !ok || m.BrokerGroup != devGroup {
			t.Fatalf("message %s: indexed %v as %+v; want it in broker group %s", id, ok, m, devGroup)
		}
		recs, err := st.FindRecords(context.Background(), backup.RecordQuery{Subject: subject, MessageID: id, BrokerGroup: m.BrokerGroup, Sequence: m.Sequence})
		if err != nil {
			t.Fatal(err)
		}
		have := map[string]int{}
		for _, r := range recs {
			have[fmt.Sprintf("%s/%d", r.ConsumerGroup, r.Action)]++
		}
		for _, want := range []string{"ok/0", "ok/1", "failing/0", "failing/1"} {
			if have[want] != 1 {
				t.Errorf("message %s: records %v; want one of each of ok and failing's pull (0) and ack (1)", id, have)
				break
			}
		}
	}
	dead, err := st.FindDeadLetters(context.Background(), backup.MessageQuery{Subject: subject, ConsumerGroup: "failing", Len: 100,
		CreateTimeBegin: window.CreateTimeBegin, CreateTimeEnd: window.CreateTimeEnd})
	if err != nil {
		t.Fatal(err)
	}
	if len(dead.Messages) != len(ids) {
		t.Fatalf("%d dead letters of group failing, want %d: %+v", len(dead.Messages), len(ids), dead.Messages)
	}
}

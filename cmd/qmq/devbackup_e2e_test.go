package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/qmq-go/qmq/client"
	"github.com/qmq-go/qmq/internal/testutil"
)

// TestDevBackup: `qmq dev` runs a backup of its group; messages sent and
// consumed through it are listed by /api/message with their broker group
// and sequence, /api/message/records shows each consumer group's pull and
// ack, a handler that always fails produces dead letters that
// /api/message/dead lists and the resend endpoint sends back from their
// stored content.
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
	api := func(path, param string, q any, out any) {
		t.Helper()
		b, _ := json.Marshal(q)
		u := fmt.Sprintf("http://127.0.0.1:%d%s?%s=%s", backupHTTP, path, param, url.QueryEscape(string(b)))
		resp, err := http.Get(u)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		if resp.StatusCode != 200 {
			t.Fatalf("GET %s: %d %s", u, resp.StatusCode, body)
		}
		if err := json.Unmarshal(body, out); err != nil {
			t.Fatalf("GET %s: %v: %s", u, err, body)
		}
	}
	type meta struct {
		BrokerGroup   string `json:"brokerGroup"`
		Sequence      int64  `json:"sequence"`
		MessageID     string `json:"messageId"`
		ConsumerGroup string `json:"consumerGroup"`
	}
	var list struct {
		List []meta `json:"list"`
	}
	api("/api/message", "backupQuery", map[string]any{"subject": subject, "len": 100}, &list)
	indexed := map[string]meta{}
	for _, m := range list.List {
		indexed[m.MessageID] = m
	}
	for _, id := range ids {
		m, ok := indexed[id]
		if !ok || m.BrokerGroup != devGroup {
			t.Fatalf("message %s: listed %v as %+v; want it in broker group %s (list %+v)", id, ok, m, devGroup, list.List)
		}
		var recs struct {
			Records []struct {
				ConsumerGroup string `json:"consumerGroup"`
				Action        int    `json:"action"`
			} `json:"records"`
		}
		api("/api/message/records", "recordQuery", map[string]any{"subject": subject, "messageId": id, "brokerGroup": m.BrokerGroup, "sequence": m.Sequence, "recordCode": 0}, &recs)
		have := map[string]int{}
		for _, r := range recs.Records {
			have[fmt.Sprintf("%s/%d", r.ConsumerGroup, r.Action)]++
		}
		for _, want := range []string{"ok/0", "ok/1", "failing/0", "failing/1"} {
			if have[want] != 1 {
				t.Errorf("message %s: records %v; want one each of ok's and failing's pull (0) and ack (1)", id, have)
				break
			}
		}
	}
	var dead struct {
		List []meta `json:"list"`
	}
	api("/api/message/dead", "backupQuery", map[string]any{"subject": subject, "consumerGroup": "failing", "len": 100}, &dead)
	if len(dead.List) != len(ids) {
		t.Fatalf("%d dead letters of group failing listed, want %d: %+v", len(dead.List), len(ids), dead.List)
	}
	for _, d := range dead.List {
		if _, ok := indexed[d.MessageID]; !ok || d.ConsumerGroup != "failing" {
			t.Fatalf("dead letter %+v: not one of the messages sent, or not of group failing", d)
		}
	}
	// The dead letters' content: the store keeps it, and the resend
	// endpoint sends it back (as a new message of the subject).
	form := url.Values{"subject": {subject}, "consumerGroup": {"failing"}}
	req, _ := http.NewRequest(http.MethodPost, fmt.Sprintf("http://127.0.0.1:%d/api/message/dead/resend", backupHTTP), strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("X-Api-Token", devToken(t, data))
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || strings.Count(string(body), "newMessageId") != len(ids) {
		t.Fatalf("resend of every dead letter of group failing: %d %s", resp.StatusCode, body)
	}
}

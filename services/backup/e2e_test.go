package backup

import (
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/qmq-go/qmq/backup"
	"github.com/qmq-go/qmq/client"
	"github.com/qmq-go/qmq/internal/testutil"
	"github.com/qmq-go/qmq/protocol"
	"github.com/qmq-go/qmq/tests/framework"
)

func ids(msgs []backup.Message) []string {
	var out []string
	for _, m := range msgs {
		out = append(out, m.MessageID)
	}
	return out
}

// TestBackupFollowsGroup: a group with a slave, the backup following the
// slave; messages sent and consumed (some by a handler that always fails)
// show up as index entries with group and sequence, each consumed message
// has its group's pull and ack, the failing ones become dead letters with
// their content, and the resend endpoint sends one back to its subject.
func TestBackupFollowsGroup(t *testing.T) {
	if testing.Short() {
		t.Skip("end to end")
	}
	c := framework.StartCluster(t, framework.ClusterOptions{Slaves: true})
	g := c.Group("g1")
	s, host := registerBackup(t, c, "g1")
	s.BackupContent = true // to find the resent message by its properties
	store := newMemStore()
	b := startBackup(t, s, host, store)
	slaveSync := fmt.Sprintf("127.0.0.1:%d", g.Slave.Settings().SyncPort)
	b.waitHealthy(slaveSync)

	const subject, group, n = "backup.e2e", "workers", 20
	failing := func(i int) bool { return i%7 == 3 } // 3, 10, 17
	consumerRun(t, c, subject, group, func(m *client.Message) error {
		if m.Property("fail") != "" {
			return errAlwaysFails
		}
		return nil
	}, client.WithMaxRetries(2)) // first delivery, one retry (%RETRY%), then the dead letter
	p := newProducer(t, c)
	sent := send(t, p, subject, n, failing)

	testutil.EventuallyState(t, 30*time.Second, "every message indexed", func() (bool, string) {
		return hasAll(sent, ids(store.messages(backup.KindNormal, subject)))
	})
	var deadIDs []string
	for i, id := range sent {
		if failing(i) {
			deadIDs = append(deadIDs, id)
		}
	}
	testutil.EventuallyState(t, 40*time.Second, "the failing messages' dead letters indexed", func() (bool, string) {
		return hasAll(deadIDs, ids(store.messages(backup.KindDead, subject)))
	})
	for _, d := range store.messages(backup.KindDead, subject) {
		if d.ConsumerGroup != group || d.BrokerGroup != "g1" || len(d.Content) == 0 {
			t.Fatalf("dead letter %+v: want group %s, broker group g1 and its content", d, group)
		}
		pm, err := protocol.DecodePayload(d.Content)
		if err != nil || pm.MessageID != d.MessageID {
			t.Fatalf("dead letter content: %v %+v", err, pm)
		}
	}
	// Every message consumed has its pull and its ack.
	bySeq := map[int64]string{}
	for _, m := range store.messages(backup.KindNormal, subject) {
		if m.BrokerGroup != "g1" {
			t.Fatalf("message %s in broker group %q", m.MessageID, m.BrokerGroup)
		}
		bySeq[m.Sequence] = m.MessageID
	}
	testutil.EventuallyState(t, 30*time.Second, "a pull and an ack of every message", func() (bool, string) {
		pulled, acked := map[string]bool{}, map[string]bool{}
		for _, r := range store.records(subject, group) {
			if id, ok := bySeq[r.Sequence]; ok {
				if r.Action == backup.ActionPull {
					pulled[id] = true
				} else {
					acked[id] = true
				}
			}
		}
		ok := true
		for _, id := range sent {
			ok = ok && pulled[id] && acked[id]
		}
		return ok, fmt.Sprintf("pulled %d, acked %d of %d", len(pulled), len(acked), len(sent))
	})
	// Retries are records too, under the retry subject.
	if len(store.records(protocol.RetrySubject(subject, group), group)) == 0 {
		store.mu.Lock()
		for _, r := range store.recs {
			t.Logf("record %+v", r)
		}
		store.mu.Unlock()
		t.Error("no records of the retry subject")
	}

	// Resend one dead letter: it is sent again to the subject (a new
	// message, indexed like any other).
	d := store.messages(backup.KindDead, subject)[0]
	form := url.Values{"subject": {subject}, "consumerGroup": {group}, "brokerGroup": {d.BrokerGroup}, "sequence": {fmt.Sprint(d.Sequence)}}
	req, _ := http.NewRequest(http.MethodPost, "http://"+b.srv.HTTPAddr().String()+"/api/message/dead/resend", strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("X-Api-Token", s.AdminToken)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || !strings.Contains(string(body), `"newMessageId"`) {
		t.Fatalf("resend: %d %s", resp.StatusCode, body)
	}
	testutil.EventuallyState(t, 30*time.Second, "the resent message indexed", func() (bool, string) {
		n := 0
		for _, m := range store.messages(backup.KindNormal, subject) {
			if pm, err := protocol.DecodePayload(m.Content); err == nil {
				for _, a := range pm.Attrs {
					if a.Key == PropResendOf && a.Value == d.MessageID {
						n++
					}
				}
			}
		}
		return n == 1, fmt.Sprintf("%d resent copies indexed; resend answered %s", n, body)
	})
	// Without the token: refused, naming it.
	req, _ = http.NewRequest(http.MethodPost, "http://"+b.srv.HTTPAddr().String()+"/api/message/dead/resend", strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	if resp, err := http.DefaultClient.Do(req); err != nil || resp.StatusCode != http.StatusForbidden {
		t.Fatalf("resend without token: %v %v", resp, err)
	}
	// The master's view is untouched: the backup's offsets never stood for its slave's.
	b.waitHealthy(slaveSync)
}

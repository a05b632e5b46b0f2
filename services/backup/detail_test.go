package backup

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/qmq-go/qmq/backup"
	"github.com/qmq-go/qmq/backup/query"
	"github.com/qmq-go/qmq/client"
	"github.com/qmq-go/qmq/internal/testutil"
)

// TestDetailFromSlave: without backup.message.content the store keeps a
// message's index and where the group's log holds it; /api/message/detail
// reads it there from the slave (over its sync port, as a reader), and
// answers 404 for a place that holds another message or another group.
func TestDetailFromSlave(t *testing.T) {
	_, b, store, p := startFollowing(t)
	const subject = "backup.detail"
	msg := p.NewMessage(subject).SetBody("the body").SetProperty("orderId", "42")
	msg.AddTag("vip")
	if err := p.Send(t.Context(), msg); err != nil {
		t.Fatal(err)
	}
	testutil.EventuallyState(t, 30*time.Second, "the message indexed", func() (bool, string) {
		return hasAll([]string{msg.ID()}, ids(store.messages(backup.KindNormal, subject)))
	})
	m := store.messages(backup.KindNormal, subject)[0]
	if len(m.Content) != 0 || !m.Located {
		t.Fatalf("indexed %+v: want no content (backup.message.content is off) and its log offset", m)
	}
	get := func(q map[string]any) (int, []byte) {
		raw, _ := json.Marshal(q)
		resp, err := http.Get(fmt.Sprintf("http://%s/api/message/detail?backupQuery=%s", b.srv.HTTPAddr(), url.QueryEscape(string(raw))))
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, body
	}
	code, body := get(map[string]any{"subject": subject, "brokerGroup": "g1", "sequence": m.Sequence})
	var d query.Detail
	if err := json.Unmarshal(body, &d); code != 200 || err != nil {
		t.Fatalf("detail: %d %s (%v)", code, body, err)
	}
	if d.MessageID != msg.ID() || d.Attrs["orderId"] != "42" || len(d.Tags) != 1 || d.Tags[0] != "vip" {
		t.Fatalf("detail from the slave: %+v", d)
	}

	// A place that holds another message (a log cut after a failover would
	// do this): not found, never the other message.
	wrong := m
	wrong.Sequence = m.Sequence + 1000
	if err := store.PutMessages(t.Context(), []backup.Message{wrong}); err != nil {
		t.Fatal(err)
	}
	if code, body := get(map[string]any{"subject": subject, "brokerGroup": "g1", "sequence": wrong.Sequence}); code != 404 {
		t.Fatalf("a log offset holding another record: %d %s, want 404", code, body)
	}
	other := m
	other.BrokerGroup = "g2"
	if err := store.PutMessages(t.Context(), []backup.Message{other}); err != nil {
		t.Fatal(err)
	}
	if code, body := get(map[string]any{"subject": subject, "brokerGroup": "g2", "sequence": m.Sequence}); code != 404 {
		t.Fatalf("another group's message: %d %s, want 404", code, body)
	}
}

// getDetail asks the backup's /api/message/detail.
func getDetail(t *testing.T, b *testBackup, q map[string]any) (int, []byte) {
	t.Helper()
	raw, _ := json.Marshal(q)
	resp, err := http.Get(fmt.Sprintf("http://%s/api/message/detail?backupQuery=%s", b.srv.HTTPAddr(), url.QueryEscape(string(raw))))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, body
}

// TestRetryDetailFromSlave: a retry copy (%RETRY%<subject>%<group>, its
// own sequence) has a detail as a normal message has: found by the retry
// records' broker group and sequence, read from the slave at the offset
// the follower recorded. One indexed without an offset (an older backup)
// answers 404 saying why and what to do.
func TestRetryDetailFromSlave(t *testing.T) {
	c, b, store, p := startFollowing(t)
	const subject, group = "backup.retry.detail", "workers"
	var failed sync.Map
	consumerRun(t, c, subject, group, func(m *client.Message) error {
		if _, again := failed.LoadOrStore(m.ID(), true); !again && m.Property("fail") != "" {
			return errAlwaysFails // once: the broker keeps a retry copy
		}
		return nil
	})
	msg := p.NewMessage(subject).SetBody("retried").SetProperty("orderId", "7").SetProperty("fail", "1")
	msg.AddTag("retry-me")
	if err := p.Send(t.Context(), msg); err != nil {
		t.Fatal(err)
	}
	var r backup.Message
	testutil.EventuallyState(t, 40*time.Second, "the retry copy indexed", func() (bool, string) {
		for _, m := range store.messages(backup.KindRetry, subject) {
			if m.MessageID == msg.ID() {
				r = m
				return true, ""
			}
		}
		return false, fmt.Sprintf("%d retry copies", len(store.messages(backup.KindRetry, subject)))
	})
	if r.ConsumerGroup != group || !r.Located || len(r.Content) != 0 {
		t.Fatalf("retry copy indexed as %+v: want group %s, its log offset, no content (backup.message.content is off)", r, group)
	}
	// The list of the message's retry copies names it: group, broker group
	// and its sequence in the group's retry subject.
	raw, _ := json.Marshal(map[string]any{"subject": subject, "messageId": msg.ID(), "len": 10})
	resp, err := http.Get(fmt.Sprintf("http://%s/api/message/retry?backupQuery=%s", b.srv.HTTPAddr(), url.QueryEscape(string(raw))))
	if err != nil {
		t.Fatal(err)
	}
	var l query.MessageList
	err = json.NewDecoder(resp.Body).Decode(&l)
	resp.Body.Close()
	if err != nil || resp.StatusCode != 200 || len(l.List) != 1 || l.List[0].ConsumerGroup != group || l.List[0].BrokerGroup != "g1" || l.List[0].Sequence != r.Sequence {
		t.Fatalf("the message's retry copies: %d %+v (%v)", resp.StatusCode, l, err)
	}
	stored := "%RETRY%" + subject + "%" + group
	code, body := getDetail(t, b, map[string]any{"subject": stored, "brokerGroup": l.List[0].BrokerGroup, "sequence": l.List[0].Sequence})
	var d query.Detail
	if err := json.Unmarshal(body, &d); code != 200 || err != nil {
		t.Fatalf("retry copy's detail: %d %s (%v)", code, body, err)
	}
	if d.MessageID != msg.ID() || d.Attrs["orderId"] != "7" || len(d.Tags) != 1 || d.Tags[0] != "retry-me" || d.ConsumerGroup != group || d.Sequence != r.Sequence {
		t.Fatalf("retry copy's detail from the slave: %+v", d)
	}
	// Its group given as consumerGroup too is the same copy; another group is refused.
	if code, body := getDetail(t, b, map[string]any{"subject": stored, "brokerGroup": "g1", "sequence": r.Sequence, "consumerGroup": group}); code != 200 {
		t.Fatalf("with consumerGroup: %d %s", code, body)
	}
	if code, body := getDetail(t, b, map[string]any{"subject": stored, "brokerGroup": "g1", "sequence": r.Sequence, "consumerGroup": "other"}); code != 400 {
		t.Fatalf("with another consumerGroup: %d %s, want 400", code, body)
	}

	// A copy indexed before offsets were recorded: 404 saying why and what to do.
	old := r
	old.Sequence, old.Located, old.LogOffset = r.Sequence+1000, false, 0
	if err := store.PutMessages(t.Context(), []backup.Message{old}); err != nil {
		t.Fatal(err)
	}
	code, body = getDetail(t, b, map[string]any{"subject": stored, "brokerGroup": "g1", "sequence": old.Sequence})
	if code != 404 || !strings.Contains(string(body), "before the backup recorded log offsets") || !strings.Contains(string(body), checkpointName) ||
		!strings.Contains(string(body), "backup.message.content") {
		t.Fatalf("a copy without its offset: %d %s; want 404 saying why and what to do", code, body)
	}
}

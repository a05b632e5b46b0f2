package backup

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"testing"
	"time"

	"github.com/qmq-go/qmq/backup"
	"github.com/qmq-go/qmq/backup/query"
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

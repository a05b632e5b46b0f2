package backup

import (
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/qmq-go/qmq/backup"
	"github.com/qmq-go/qmq/protocol"
)

// TestResendNamesTheDeadLetter: a normal message and two groups' dead
// letters stored as sequence 3 of g1 (each numbered in its own log). The
// resend of g1:3 without a consumer group is refused naming both groups;
// with one, that group's dead letter is sent — never the normal message.
func TestResendNamesTheDeadLetter(t *testing.T) {
	_, b, store, _ := startFollowing(t)
	const subject = "backup.resend.same"
	at := time.Now().Add(-time.Minute)
	content := func(id string) []byte {
		b, err := protocol.AppendMessage(nil, &protocol.Message{CreateTime: at.UnixMilli(), Subject: subject, MessageID: id})
		if err != nil {
			t.Fatal(err)
		}
		return b[8:] // the payload, without the CRC
	}
	normal := backup.Message{Subject: subject, MessageID: "normal.3", BrokerGroup: "g1", Sequence: 3, CreateTime: at, Content: content("normal.3")}
	deadA := backup.Message{Subject: subject, MessageID: "dead.a.3", BrokerGroup: "g1", Sequence: 3, CreateTime: at, Kind: backup.KindDead, ConsumerGroup: "a", Content: content("dead.a.3")}
	deadB := backup.Message{Subject: subject, MessageID: "dead.b.3", BrokerGroup: "g1", Sequence: 3, CreateTime: at, Kind: backup.KindDead, ConsumerGroup: "b", Content: content("dead.b.3")}
	if err := store.PutMessages(t.Context(), []backup.Message{normal, deadA, deadB}); err != nil {
		t.Fatal(err)
	}
	post := func(form url.Values) (int, string) {
		req, _ := http.NewRequest(http.MethodPost, "http://"+b.srv.HTTPAddr().String()+"/api/message/dead/resend", strings.NewReader(form.Encode()))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		req.Header.Set("X-Api-Token", b.settings.AdminToken)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(body)
	}
	code, body := post(url.Values{"subject": {subject}, "brokerGroup": {"g1"}, "sequence": {"3"}})
	if code != 400 || !strings.Contains(body, "a, b") || !strings.Contains(body, "consumerGroup") {
		t.Fatalf("resend of g1:3 without a group: %d %s; want 400 naming groups a and b", code, body)
	}
	code, body = post(url.Values{"subject": {subject}, "brokerGroup": {"g1"}, "sequence": {"3"}, "consumerGroup": {"b"}})
	var res resendResult
	if err := json.Unmarshal([]byte(body), &res); code != 200 || err != nil || len(res.Resent) != 1 || res.Resent[0].MessageID != "dead.b.3" {
		t.Fatalf("resend of b's dead letter at g1:3: %d %s", code, body)
	}
}

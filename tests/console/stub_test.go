package consolebrowser

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/qmq-go/qmq/services/console"
)

// stubBackup answers QMQ's backup query API with one message, its pull and
// ack, and one dead letter; it resends with the right token only. It
// stands in for the backup service until qmq dev serves its query API
// (TestConsoleBackupInBrowser runs the same scenario against the real one).
func stubBackup(t *testing.T, token, subject, group, id string) string {
	t.Helper()
	created := time.Now().Add(-time.Minute).UnixMilli()
	mux := http.NewServeMux()
	list := func(w http.ResponseWriter, r *http.Request) {
		var q struct {
			Subject string `json:"subject"`
		}
		if err := json.Unmarshal([]byte(r.URL.Query().Get("backupQuery")), &q); err != nil || q.Subject != subject {
			_ = json.NewEncoder(w).Encode(map[string]any{"list": []any{}})
			return
		}
		_ = json.NewEncoder(w).Encode(map[string]any{"list": []map[string]any{{"brokerGroup": "dev_group", "sequence": 0, "messageId": id, "subject": subject, "createTime": created, "consumerGroup": group}}})
	}
	mux.HandleFunc("GET /api/message", list)
	mux.HandleFunc("GET /api/message/dead", list)
	mux.HandleFunc("GET /api/message/detail", func(w http.ResponseWriter, _ *http.Request) {
		_ = json.NewEncoder(w).Encode(map[string]any{"subject": subject, "messageId": id, "brokerGroup": "dev_group", "sequence": 0, "createTime": created})
	})
	mux.HandleFunc("GET /api/message/records", func(w http.ResponseWriter, r *http.Request) {
		recs := []map[string]any{}
		if strings.Contains(r.URL.Query().Get("recordQuery"), `"recordCode":0`) {
			recs = append(recs, map[string]any{"consumerGroup": group, "action": 0, "timestamp": created + 5, "consumerId": "vm@@1", "sequence": 0},
				map[string]any{"consumerGroup": group, "action": 1, "timestamp": created + 30, "consumerId": "vm@@1", "sequence": 0})
		}
		_ = json.NewEncoder(w).Encode(map[string]any{"records": recs})
	})
	mux.HandleFunc("POST /api/message/dead/resend", func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("X-Api-Token") != token {
			http.Error(w, "X-Api-Token is missing or wrong", http.StatusForbidden)
			return
		}
		_ = r.ParseForm()
		_ = json.NewEncoder(w).Encode(map[string]any{"resent": []map[string]any{{"brokerGroup": r.Form.Get("brokerGroup"), "messageId": r.Form.Get("messageId"), "newMessageId": "resent-" + r.Form.Get("messageId")}}})
	})
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	return strings.TrimPrefix(srv.URL, "http://")
}

// TestConsoleBackupPagesInBrowser runs the browser's backup scenario
// (search by subject and id, detail, records timeline, resend) against a
// console whose backup is stubBackup.
func TestConsoleBackupPagesInBrowser(t *testing.T) {
	node, chromium := requireBrowser(t)
	const token, subject, group, id = "browser-test-token-0123456789", "browser.stub", "billing", "261207.120000.127.0.0.1.1.0"
	s := console.DefaultSettings()
	s.Listen = "127.0.0.1:0"
	s.MetaHTTP = "127.0.0.1:1" // the backup pages need no metaserver
	s.OpenReads = true
	s.Tokens = map[string]string{token: "dev"}
	s.BackupHTTP = []string{stubBackup(t, token, subject, group, id)}
	c, err := console.New(s, console.Options{})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- c.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-done })
	d := &dev{console: strings.TrimSuffix(c.URL(), "/"), token: token}
	drive(t, node, chromium, d, "backup", "QMQ_SUBJECT="+subject, "QMQ_GROUP="+group, "QMQ_MESSAGE="+id)
}

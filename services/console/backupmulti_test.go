package console_test

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/qmq-go/qmq/services/console"
)

// groupBackup is a backup of one broker group: it lists its own messages
// of any subject (two pages of one each) and answers 404 for another
// group's message, as the real backup does.
func groupBackup(t *testing.T, group string, created time.Time) string {
	t.Helper()
	mux := http.NewServeMux()
	mux.HandleFunc("GET /api/message", func(w http.ResponseWriter, r *http.Request) {
		var q map[string]any
		if err := json.Unmarshal([]byte(r.URL.Query().Get("backupQuery")), &q); err != nil {
			http.Error(w, "bad backupQuery", http.StatusBadRequest)
			return
		}
		seq, next := 1, "page2"
		if q["start"] == "page2" {
			seq, next = 2, ""
		}
		_ = json.NewEncoder(w).Encode(map[string]any{"list": []map[string]any{{"brokerGroup": group, "sequence": seq,
			"messageId": group + "-msg-" + string(rune('0'+seq)), "subject": q["subject"], "createTime": created.Add(time.Duration(-seq) * time.Minute).UnixMilli()}},
			"next": next})
	})
	mux.HandleFunc("GET /api/message/detail", func(w http.ResponseWriter, r *http.Request) {
		var q map[string]any
		_ = json.Unmarshal([]byte(r.URL.Query().Get("backupQuery")), &q)
		if q["brokerGroup"] != group {
			http.Error(w, `{"error":"no such message","field":"brokerGroup"}`, http.StatusNotFound)
			return
		}
		_ = json.NewEncoder(w).Encode(map[string]any{"subject": q["subject"], "brokerGroup": group, "kept-by": group})
	})
	mux.HandleFunc("GET /api/message/records", func(w http.ResponseWriter, r *http.Request) {
		var q map[string]any
		_ = json.Unmarshal([]byte(r.URL.Query().Get("recordQuery")), &q)
		if q["brokerGroup"] != group {
			http.Error(w, `{"error":"no such message"}`, http.StatusNotFound)
			return
		}
		_ = json.NewEncoder(w).Encode(map[string]any{"records": []map[string]any{}})
	})
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	return strings.TrimPrefix(srv.URL, "http://")
}

// TestConsoleSeveralBackups: with a backup per broker group (the Nomad
// bundle's layout) a search shows every group's messages, newest first, the
// next page continues each backup where it stopped, and a message's detail
// comes from its own group's backup.
func TestConsoleSeveralBackups(t *testing.T) {
	now := time.Now()
	s := console.DefaultSettings()
	s.MetaHTTP = "127.0.0.1:1"
	s.OpenReads = true
	s.BackupHTTP = []string{groupBackup(t, "g1", now), groupBackup(t, "g2", now.Add(30*time.Second))}
	base, _ := startConsole(t, s)

	code, body, _ := get(t, base+"/messages?subject=orders", nil)
	i1, i2 := strings.Index(body, "g1-msg-1"), strings.Index(body, "g2-msg-1")
	if code != 200 || i1 < 0 || i2 < 0 {
		t.Fatalf("search over two backups should list both groups' messages: %d\n%s", code, body)
	}
	if i2 > i1 {
		t.Errorf("g2's message is newer and should come first")
	}
	// The next page: both backups' second messages.
	href := between(body, `<a href="/messages?`, `">next page`)
	link, err := url.ParseQuery(strings.ReplaceAll(href, "&amp;", "&"))
	if err != nil || link.Get("start") == "" {
		t.Fatalf("no next-page link (%v):\n%s", err, body)
	}
	_, body, _ = get(t, base+"/messages?"+link.Encode(), nil)
	if !strings.Contains(body, "g1-msg-2") || !strings.Contains(body, "g2-msg-2") || strings.Contains(body, "g1-msg-1") {
		t.Fatalf("second page should hold each backup's second message only:\n%s", body)
	}
	// The detail of g2's message, asked of g1 first (404), then g2.
	_, body, _ = get(t, base+"/messages/detail?"+url.Values{"subject": {"orders"}, "brokerGroup": {"g2"}, "sequence": {"1"}}.Encode(), nil)
	if !strings.Contains(body, "kept-by") || strings.Contains(body, "no such message") {
		t.Fatalf("detail of g2's message should come from g2's backup:\n%s", body)
	}
}

// between returns the text of s after the first from up to the next to.
func between(s, from, to string) string {
	i := strings.Index(s, from)
	if i < 0 {
		return ""
	}
	s = s[i+len(from):]
	if j := strings.Index(s, to); j >= 0 {
		return s[:j]
	}
	return s
}

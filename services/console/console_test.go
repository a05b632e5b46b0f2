package console_test

import (
	"context"
	"encoding/json"
	"fmt"
	"html"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/qmq-go/qmq/client"
	"github.com/qmq-go/qmq/internal/consumetest"
	"github.com/qmq-go/qmq/internal/testutil"
	"github.com/qmq-go/qmq/services/console"
	"github.com/qmq-go/qmq/services/metaserver/metatest"
	"github.com/qmq-go/qmq/tests/framework"
)

const testToken = metatest.Token

// logSink collects the console's log for assertions.
type logSink struct {
	mu  sync.Mutex
	buf strings.Builder
}

func (l *logSink) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.Write(p)
}

func (l *logSink) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.String()
}

// startConsole serves a console with s until the test ends.
func startConsole(t *testing.T, s console.Settings) (string, *logSink) {
	t.Helper()
	s.Listen = "127.0.0.1:0"
	logs := &logSink{}
	c, err := console.New(s, console.Options{Logger: hclog.New(&hclog.LoggerOptions{Output: logs, Level: hclog.Debug})})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- c.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("console Run: %v", err)
		}
	})
	return strings.TrimSuffix(c.URL(), "/"), logs
}

// clusterSettings point a console at c, with each broker's HTTP port.
func clusterSettings(c *framework.Cluster) console.Settings {
	s := console.DefaultSettings()
	s.MetaHTTP = c.Meta().HTTP()
	s.Tokens = map[string]string{testToken: "ops-team"}
	for _, g := range c.Groups() {
		bs := g.Master.Settings()
		s.BrokerHTTPPorts[net.JoinHostPort("127.0.0.1", strconv.Itoa(bs.Port))] = bs.HTTPPort
	}
	return s
}

var noRedirect = &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }, Timeout: 20 * time.Second}

func get(t *testing.T, rawURL string, header map[string]string) (int, string, http.Header) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, rawURL, nil)
	for k, v := range header {
		req.Header.Set(k, v)
	}
	resp, err := noRedirect.Do(req)
	if err != nil {
		t.Fatalf("GET %s: %v", rawURL, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b), resp.Header
}

func post(t *testing.T, rawURL string, form url.Values, header map[string]string) (int, string) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodPost, rawURL, strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	for k, v := range header {
		req.Header.Set(k, v)
	}
	resp, err := noRedirect.Do(req)
	if err != nil {
		t.Fatalf("POST %s: %v", rawURL, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

func send(t *testing.T, endpoint, subject string, n int) []string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	p, err := client.NewProducer(ctx, endpoint, client.WithSendTimeout(5*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = p.Close(context.Background()) }()
	var ids []string
	for i := range n {
		m := p.NewMessage(subject).SetBody(fmt.Sprintf("m%d", i))
		if err := p.Send(ctx, m); err != nil {
			t.Fatalf("send %d: %v", i, err)
		}
		ids = append(ids, m.ID())
	}
	return ids
}

// TestConsoleAgainstCluster reads every page off a real metaserver and
// broker, sees a consumer group's progress, and resets its offset.
func TestConsoleAgainstCluster(t *testing.T) {
	c := framework.StartCluster(t, framework.ClusterOptions{})
	s := clusterSettings(c)
	base, logs := startConsole(t, s)
	auth := map[string]string{"X-Api-Token": testToken}

	rec := consumetest.Start(t, c.Endpoint(), "console.orders", "billing")
	ids := send(t, c.Endpoint(), "console.orders", 7)
	testutil.Eventually(t, 20*time.Second, "the consumer group consumes the 7 messages", func() bool { n, _ := rec.Missing(ids); return n == 0 })

	// Reads need the token: a browser is sent to /login.
	code, _, h := get(t, base+"/cluster", nil)
	if code != http.StatusSeeOther || !strings.HasPrefix(h.Get("Location"), "/login?next=") {
		t.Fatalf("GET /cluster without a token: %d Location %q; want 303 to /login", code, h.Get("Location"))
	}
	code, body, _ := get(t, base+"/cluster", auth)
	if code != 200 || !strings.Contains(body, "g1") || !strings.Contains(body, "MASTER") || !strings.Contains(body, ">ok<") {
		t.Fatalf("cluster page: %d\n%s", code, body)
	}
	testutil.Eventually(t, 20*time.Second, "the subjects page shows console.orders with group billing at backlog 0", func() bool {
		_, body, _ := get(t, base+"/subjects", auth)
		return strings.Contains(body, "console.orders") && strings.Contains(body, "billing: 0") &&
			strings.Contains(body, `href="/groups?group=billing&amp;subject=console.orders"`)
	})
	code, body, _ = get(t, base+"/groups?subject=console.orders", auth)
	if code != 200 || !strings.Contains(body, "billing") || !strings.Contains(body, "ONLINE") {
		t.Fatalf("groups page of console.orders: %d\n%s", code, body)
	}
	for _, p := range []string{"/groups", "/delay", "/watchdog", "/messages", "/deadletters", "/assets/console.css"} {
		if code, body, _ := get(t, base+p, auth); code != 200 {
			t.Errorf("GET %s: %d\n%s", p, code, body)
		}
	}

	// A write without a token, and one from another site, are refused.
	reset := url.Values{"subject": {"console.orders"}, "group": {"billing"}, "to": {"earliest"}}
	if code, body := post(t, base+"/actions/reset", reset, map[string]string{"Origin": base}); code != http.StatusUnauthorized {
		t.Errorf("reset without a token: %d, want 401\n%s", code, body)
	}
	withToken := url.Values{"token": {testToken}}
	for k, v := range reset {
		withToken[k] = v
	}
	if code, body := post(t, base+"/actions/reset", withToken, map[string]string{"Origin": "http://evil.example"}); code != http.StatusForbidden {
		t.Errorf("cross-site reset: %d, want 403\n%s", code, body)
	}
	if code, body := post(t, base+"/actions/reset", withToken, map[string]string{"Sec-Fetch-Site": "cross-site"}); code != http.StatusForbidden {
		t.Errorf("reset with Sec-Fetch-Site: cross-site: %d, want 403\n%s", code, body)
	}
	if code, body := post(t, base+"/actions/reset", withToken, nil); code != http.StatusForbidden {
		t.Errorf("reset with the token in the form but no Origin, Referer or Sec-Fetch-Site: %d, want 403\n%s", code, body)
	}
	if code, body := post(t, base+"/actions/reset", url.Values{"subject": {"s"}, "group": {"g"}, "to": {"yesterday"}, "token": {testToken}}, map[string]string{"Origin": base}); code != http.StatusBadRequest {
		t.Errorf("reset to=yesterday: %d, want 400\n%s", code, body)
	}
	// The reset to earliest takes effect: the group consumes the 7 again
	// (a new recorder of the same group sees them).
	if code, body := post(t, base+"/actions/reset", withToken, map[string]string{"Origin": base}); code != 200 || !strings.Contains(body, "reset to earliest") {
		t.Fatalf("reset to earliest: %d\n%s", code, body)
	}
	if l := logs.String(); !strings.Contains(l, "console write") || !strings.Contains(l, "who=ops-team") || !strings.Contains(l, "action=/actions/reset") || strings.Contains(l, testToken) {
		t.Errorf("the write log should name who and what and never the token:\n%s", l)
	}
	// Readonly for one subject on one broker group, then back.
	for _, mark := range []string{"true", "false"} {
		form := url.Values{"subject": {"console.orders"}, "brokerGroup": {"g1"}, "mark": {mark}}
		if code, body := post(t, base+"/actions/readonly", form, map[string]string{"X-Api-Token": testToken}); code != 200 || !strings.Contains(body, "console.orders") {
			t.Fatalf("readonly mark=%s: %d\n%s", mark, code, body)
		}
	}

	// To a time: a minute ago is before every message, so the group's
	// broker group pulls sequence 0 next (the answer says so).
	atForm := url.Values{"subject": {"console.orders"}, "group": {"billing"}, "to": {"time"}, "at": {time.Now().Add(-time.Minute).UTC().Format("2006-01-02T15:04")}}
	if code, body := post(t, base+"/actions/reset", atForm, map[string]string{"X-Api-Token": testToken}); code != 200 || !strings.Contains(body, "reset to time") || !strings.Contains(body, "broker group g1 pulls sequence 0 next") {
		t.Fatalf("reset to a time (token in the header, no browser headers): %d\n%s", code, body)
	}
	_, metrics, _ := get(t, base+"/metrics", nil)
	for _, want := range []string{`qmq_console_writes_total{action="/actions/reset",outcome="done"} 2`, `qmq_console_writes_total{action="/actions/reset",outcome="refused"} 4`, `qmq_console_page_views_total{page="/cluster"}`} {
		if !strings.Contains(metrics, want) {
			t.Errorf("/metrics lacks %s", want)
		}
	}
}

// fakeBackup answers QMQ's backup API with fixed data. The backup service
// is another engineer's work in progress; the browser test of tests/console
// runs against the real one.
func fakeBackup(t *testing.T, evil string) string {
	t.Helper()
	mux := http.NewServeMux()
	list := func(w http.ResponseWriter, r *http.Request) {
		var q map[string]any
		if err := json.Unmarshal([]byte(r.URL.Query().Get("backupQuery")), &q); err != nil {
			http.Error(w, "bad backupQuery", http.StatusBadRequest)
			return
		}
		_ = json.NewEncoder(w).Encode(map[string]any{"list": []map[string]any{{"brokerGroup": "g1", "sequence": 3, "messageId": evil, "subject": q["subject"], "createTime": time.Now().UnixMilli(), "consumerGroup": "billing"}}, "next": ""})
	}
	mux.HandleFunc("GET /api/message", list)
	mux.HandleFunc("GET /api/message/dead", list)
	mux.HandleFunc("GET /api/message/detail", func(w http.ResponseWriter, r *http.Request) {
		_ = json.NewEncoder(w).Encode(map[string]any{"subject": "s", "messageId": evil, "attrs": map[string]string{"k": evil}})
	})
	mux.HandleFunc("GET /api/message/records", func(w http.ResponseWriter, r *http.Request) {
		var q map[string]any
		_ = json.Unmarshal([]byte(r.URL.Query().Get("recordQuery")), &q)
		recs := []map[string]any{}
		if q["recordCode"] == float64(0) {
			now := time.Now().UnixMilli()
			recs = append(recs, map[string]any{"consumerGroup": evil, "action": 0, "timestamp": now, "consumerId": "c1", "sequence": 3},
				map[string]any{"consumerGroup": evil, "action": 1, "timestamp": now + 40, "consumerId": "c1", "sequence": 3})
		}
		_ = json.NewEncoder(w).Encode(map[string]any{"records": recs})
	})
	mux.HandleFunc("POST /api/message/dead/resend", func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("X-Api-Token") != testToken {
			http.Error(w, "token", http.StatusUnauthorized)
			return
		}
		_ = r.ParseForm()
		_ = json.NewEncoder(w).Encode(map[string]any{"resent": []map[string]any{{"brokerGroup": r.Form.Get("brokerGroup"), "messageId": r.Form.Get("messageId"), "newMessageId": "new-" + r.Form.Get("messageId")}}})
	})
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	return strings.TrimPrefix(srv.URL, "http://")
}

// TestConsoleEscapesAndBackup: an XSS-looking subject and message id are
// shown as text; the search URL is shareable; the timeline is drawn; a
// dead letter is resent with the caller's token; an absent backup is said.
func TestConsoleEscapesAndBackup(t *testing.T) {
	const evil = `<script>alert("x")</script><img src=x onerror=alert(1)>`
	s := console.DefaultSettings()
	s.MetaHTTP = "127.0.0.1:1" // nothing listens: pages must say so, not fail
	s.OpenReads = true
	s.Tokens = map[string]string{testToken: "ops-team"}
	s.BackupHTTP = []string{fakeBackup(t, evil)}
	base, _ := startConsole(t, s)

	q := url.Values{"subject": {evil}, "id": {evil}}
	code, body, _ := get(t, base+"/messages?"+q.Encode(), nil)
	if code != 200 || strings.Contains(body, "<script>alert") || strings.Contains(body, "<img src=x") || !strings.Contains(body, "&lt;script&gt;") {
		t.Fatalf("search page with an XSS-looking subject and id is not escaped: %d\n%s", code, body)
	}
	if !strings.Contains(body, "detail and records") {
		t.Fatalf("search results missing:\n%s", body)
	}
	code, body, _ = get(t, base+"/messages/detail?"+url.Values{"subject": {"s"}, "brokerGroup": {"g1"}, "sequence": {"3"}, "id": {evil}}.Encode(), nil)
	if code != 200 || strings.Contains(body, "<script>alert") || !strings.Contains(body, "<svg class=\"timeline\"") || strings.Count(body, "<circle") != 2 {
		t.Fatalf("detail page: %d\n%s", code, body)
	}
	if code, _, _ := get(t, base+"/messages/detail?subject=s", nil); code != 400 {
		t.Errorf("detail without brokerGroup/sequence: %d, want 400", code)
	}
	if code, _, _ := get(t, base+"/messages?subject=s&begin=yesterday", nil); code != 400 {
		t.Errorf("search with begin=yesterday: %d, want 400", code)
	}
	code, body = post(t, base+"/actions/resend", url.Values{"subject": {"s"}, "brokerGroup": {"g1"}, "sequence": {"3"}, "messageId": {"m1"}, "token": {testToken}}, map[string]string{"Origin": base})
	if code != 200 || !strings.Contains(body, "new message id new-m1") {
		t.Fatalf("resend: %d\n%s", code, body)
	}
	code, body, _ = get(t, base+"/cluster", nil)
	if code != 200 || !strings.Contains(body, "cannot reach the metaserver") {
		t.Fatalf("cluster page with no metaserver should say so: %d\n%s", code, body)
	}

	s.BackupHTTP = nil
	base2, _ := startConsole(t, s)
	_, body, _ = get(t, base2+"/messages?subject=s", nil)
	if !strings.Contains(body, "backup not configured") {
		t.Fatalf("without a backup the search page should say so:\n%s", body)
	}
}

// TestLoginCookie: a token with characters a cookie value cannot hold
// still logs in, and opens closed reads; a wrong token does not.
func TestLoginCookie(t *testing.T) {
	const odd = `tok en;with,"odd"\chars`
	s := console.DefaultSettings()
	s.MetaHTTP = "127.0.0.1:1"
	s.Tokens = map[string]string{odd: "alice"}
	base, logs := startConsole(t, s)
	if code, _ := post(t, base+"/login", url.Values{"token": {"wrong"}}, map[string]string{"Origin": base}); code != http.StatusUnauthorized {
		t.Fatalf("login with a wrong token: %d, want 401", code)
	}
	req, _ := http.NewRequest(http.MethodPost, base+"/login", strings.NewReader(url.Values{"token": {odd}, "next": {"/subjects"}}.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Origin", base)
	resp, err := noRedirect.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	cookies := resp.Cookies()
	if resp.StatusCode != http.StatusSeeOther || resp.Header.Get("Location") != "/subjects" || len(cookies) != 1 || !cookies[0].HttpOnly || cookies[0].SameSite != http.SameSiteStrictMode {
		t.Fatalf("login: %d Location %q cookies %+v; want 303 to /subjects with one HttpOnly SameSite=Strict cookie", resp.StatusCode, resp.Header.Get("Location"), cookies)
	}
	req, _ = http.NewRequest(http.MethodGet, base+"/cluster", nil)
	req.AddCookie(cookies[0])
	resp, err = noRedirect.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || !strings.Contains(string(body), "admin: alice") {
		t.Fatalf("GET /cluster with the login cookie: %d\n%s", resp.StatusCode, body)
	}
	if !strings.Contains(logs.String(), "console login: who=alice") {
		t.Errorf("the login is not logged:\n%s", logs.String())
	}
}

// TestConsoleRetryCopyDetail: the search by id lists the message's retry
// copies, and its retry records link to them: each to its detail
// (%RETRY%<subject>%<group> at the copy's broker group and sequence), whose
// page shows the copy's own records.
func TestConsoleRetryCopyDetail(t *testing.T) {
	var mu sync.Mutex
	var detailAsked []string
	mux := http.NewServeMux()
	mux.HandleFunc("GET /api/message/detail", func(w http.ResponseWriter, r *http.Request) {
		var q map[string]any
		_ = json.Unmarshal([]byte(r.URL.Query().Get("backupQuery")), &q)
		mu.Lock()
		detailAsked = append(detailAsked, fmt.Sprintf("%v/%v/%v", q["subject"], q["brokerGroup"], q["sequence"]))
		mu.Unlock()
		_ = json.NewEncoder(w).Encode(map[string]any{"subject": q["subject"], "messageId": "m1", "consumerGroup": "billing"})
	})
	mux.HandleFunc("GET /api/message/records", func(w http.ResponseWriter, r *http.Request) {
		var q map[string]any
		_ = json.Unmarshal([]byte(r.URL.Query().Get("recordQuery")), &q)
		now := time.Now().UnixMilli()
		recs := []map[string]any{}
		switch q["recordCode"] {
		case float64(0):
			recs = append(recs, map[string]any{"consumerGroup": "billing", "action": 0, "timestamp": now, "consumerId": "c1", "sequence": 3})
		case float64(1):
			if q["subject"] != "orders" || q["messageId"] != "m1" {
				http.Error(w, "retry records are asked by the original subject and id", http.StatusBadRequest)
				return
			}
			recs = append(recs, map[string]any{"consumerGroup": "billing", "action": 0, "timestamp": now + 10, "consumerId": "c1", "sequence": 0, "brokerGroup": "g2"},
				map[string]any{"consumerGroup": "billing", "action": 0, "timestamp": now + 20, "consumerId": "c1", "sequence": 1, "brokerGroup": "g2"})
		}
		_ = json.NewEncoder(w).Encode(map[string]any{"records": recs})
	})
	mux.HandleFunc("GET /api/message", func(w http.ResponseWriter, r *http.Request) {
		_ = json.NewEncoder(w).Encode(map[string]any{"list": []map[string]any{{"brokerGroup": "g1", "sequence": 3, "messageId": "m1", "subject": "orders", "createTime": time.Now().UnixMilli()}}})
	})
	mux.HandleFunc("GET /api/message/retry", func(w http.ResponseWriter, r *http.Request) {
		var q map[string]any
		_ = json.Unmarshal([]byte(r.URL.Query().Get("backupQuery")), &q)
		if q["subject"] != "orders" || q["messageId"] != "m1" {
			http.Error(w, `{"error":"messageId: is required","field":"messageId"}`, http.StatusBadRequest)
			return
		}
		// A copy nobody pulled yet has no record: only this list names it.
		_ = json.NewEncoder(w).Encode(map[string]any{"list": []map[string]any{
			{"brokerGroup": "g2", "sequence": 0, "messageId": "m1", "subject": "orders", "consumerGroup": "billing", "createTime": time.Now().UnixMilli()},
			{"brokerGroup": "g2", "sequence": 5, "messageId": "m1", "subject": "orders", "consumerGroup": "audit", "createTime": time.Now().UnixMilli()},
		}})
	})
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	s := console.DefaultSettings()
	s.MetaHTTP = "127.0.0.1:1"
	s.OpenReads = true
	s.Tokens = map[string]string{testToken: "ops-team"}
	s.BackupHTTP = []string{strings.TrimPrefix(srv.URL, "http://")}
	base, _ := startConsole(t, s)

	// The search by id lists the message and its retry copies, each linked
	// to its detail.
	code, body, _ := get(t, base+"/messages?"+url.Values{"subject": {"orders"}, "id": {"m1"}}.Encode(), nil)
	auditURL := "/messages/detail?" + url.Values{"subject": {"%RETRY%orders%audit"}, "brokerGroup": {"g2"}, "sequence": {"5"}, "id": {"m1"}}.Encode()
	if code != 200 || !strings.Contains(body, `id="retries"`) || strings.Count(body, `class="retry-copy"`) != 2 || !strings.Contains(body, html.EscapeString(auditURL)) {
		t.Fatalf("search by id without its retry copies (want a link to %s): %d\n%s", auditURL, code, body)
	}
	// Without an id there is no retry list.
	if _, body, _ := get(t, base+"/messages?subject=orders", nil); strings.Contains(body, `id="retries"`) {
		t.Fatalf("a search without id lists retry copies:\n%s", body)
	}

	code, body, _ = get(t, base+"/messages/detail?"+url.Values{"subject": {"orders"}, "brokerGroup": {"g1"}, "sequence": {"3"}, "id": {"m1"}}.Encode(), nil)
	copyURL := "/messages/detail?" + url.Values{"subject": {"%RETRY%orders%billing"}, "brokerGroup": {"g2"}, "sequence": {"0"}, "id": {"m1"}}.Encode()
	if code != 200 || strings.Count(body, `class="retry-copy"`) != 2 || !strings.Contains(body, html.EscapeString(copyURL)) {
		t.Fatalf("the message's page does not link its retry copies (want %s): %d\n%s", copyURL, code, body)
	}
	code, body, _ = get(t, base+copyURL, nil)
	if code != 200 || !strings.Contains(body, `id="retry-copy"`) || !strings.Contains(body, "consumer group billing") || strings.Count(body, "<circle") != 1 {
		t.Fatalf("the retry copy's page: %d\n%s", code, body)
	}
	mu.Lock()
	defer mu.Unlock()
	if last := detailAsked[len(detailAsked)-1]; last != "%RETRY%orders%billing/g2/0" {
		t.Fatalf("the retry copy's detail asked the backup for %s", last)
	}
}

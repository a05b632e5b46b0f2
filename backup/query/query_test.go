package query

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/qmq-go/qmq/backup"
	"github.com/qmq-go/qmq/backup/dic"
	"github.com/qmq-go/qmq/backup/hbasestore"
	"github.com/qmq-go/qmq/backup/hbasetest"
	"github.com/qmq-go/qmq/backup/pebblestore"
	"github.com/qmq-go/qmq/protocol"
)

var ctx = context.Background()

func newStore(t *testing.T) *pebblestore.Store {
	s := pebblestore.DefaultSettings()
	s.Dir = t.TempDir()
	st, err := pebblestore.Open(s)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	return st
}

func payload(t *testing.T, m protocol.Message) []byte {
	b, err := protocol.AppendMessage(nil, &m)
	if err != nil {
		t.Fatal(err)
	}
	return b[8:] // without the CRC
}

// get fetches path?param=q and decodes the JSON answer into v.
func get(t *testing.T, srv *httptest.Server, path, param, q string, v any) int {
	t.Helper()
	resp, err := http.Get(srv.URL + path + "?" + param + "=" + url.QueryEscape(q))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if v != nil {
		if err := json.Unmarshal(body, v); err != nil {
			t.Fatalf("%s %s: answer %q is not JSON: %v", path, q, body, err)
		}
	}
	return resp.StatusCode
}

func fill(t *testing.T, st backup.Store, t0 time.Time) {
	var msgs []backup.Message
	for i := range 5 {
		msgs = append(msgs, backup.Message{Subject: "order.changed", MessageID: fmt.Sprintf("m%d", i), BrokerGroup: "bg1", Sequence: int64(i), CreateTime: t0.Add(time.Duration(i) * time.Second)})
	}
	msgs[4].Content = payload(t, protocol.Message{CreateTime: t0.Add(4 * time.Second).UnixMilli(), Subject: "order.changed", MessageID: "m4", Tags: []string{"vip"}, Attrs: []protocol.Attr{{Key: "orderId", Value: "42"}}, Flag: 2})
	msgs = append(msgs, backup.Message{Subject: "order.changed", MessageID: "d1", BrokerGroup: "bg1", Sequence: 7, CreateTime: t0, Kind: backup.KindDead, ConsumerGroup: "billing",
		Content: payload(t, protocol.Message{CreateTime: t0.UnixMilli(), Subject: "order.changed", MessageID: "d1"})})
	if err := st.PutMessages(ctx, msgs); err != nil {
		t.Fatal(err)
	}
	recs := []backup.Record{
		{Subject: "order.changed", BrokerGroup: "bg1", Sequence: 1, ConsumerGroup: "billing", ConsumerID: "host-a", Action: backup.ActionPull, Timestamp: t0.Add(time.Second)},
		{Subject: "order.changed", BrokerGroup: "bg1", Sequence: 1, ConsumerGroup: "billing", ConsumerID: "host-a", Action: backup.ActionAck, Timestamp: t0.Add(2 * time.Second)},
	}
	if err := st.PutRecords(ctx, recs); err != nil {
		t.Fatal(err)
	}
}

func TestQueriesOverHTTP(t *testing.T) {
	st := newStore(t)
	t0 := time.Now().Add(-time.Hour).Truncate(time.Second)
	fill(t, st, t0)
	srv := httptest.NewServer(NewHandler(st, Options{}))
	defer srv.Close()

	// The raw JSON has QMQ's field names.
	var raw map[string]any
	if code := get(t, srv, "/api/message", "backupQuery", `{"subject":"order.changed","isDelay":false,"len":2}`, &raw); code != 200 {
		t.Fatalf("status %d: %v", code, raw)
	}
	first := raw["list"].([]any)[0].(map[string]any)
	for _, f := range []string{"subject", "messageId", "sequence", "createTime", "brokerGroup"} {
		if _, ok := first[f]; !ok {
			t.Fatalf("list entry %v lacks %s", first, f)
		}
	}
	if first["messageId"] != "m4" || first["createTime"].(float64) != float64(t0.Add(4*time.Second).UnixMilli()) {
		t.Fatalf("newest entry %v", first)
	}
	// Paging: next → start until next is null.
	var seen []string
	start := ""
	for range 10 {
		var l MessageList
		q := `{"subject":"order.changed","len":2` + map[bool]string{true: "", false: `,"start":` + strconvQuote(start)}[start == ""] + `}`
		if code := get(t, srv, "/api/message", "backupQuery", q, &l); code != 200 {
			t.Fatalf("status %d", code)
		}
		for _, m := range l.List {
			seen = append(seen, m.MessageID)
		}
		if l.Next == nil {
			break
		}
		start = *l.Next
	}
	if strings.Join(seen, ",") != "m4,m3,m2,m1,m0" {
		t.Fatalf("paged through %v", seen)
	}
	// Time bounds in milliseconds and as strings.
	var l MessageList
	q := fmt.Sprintf(`{"subject":"order.changed","len":10,"msgCreateTimeBegin":%d,"msgCreateTimeEnd":%q}`, t0.Add(time.Second).UnixMilli(), t0.Add(2*time.Second).Format(time.RFC3339))
	if code := get(t, srv, "/api/message", "backupQuery", q, &l); code != 200 || len(l.List) != 2 {
		t.Fatalf("time window: %d %+v", code, l)
	}
	// Dead letters carry their group.
	if code := get(t, srv, "/api/message/dead", "backupQuery", `{"subject":"order.changed","len":10,"consumerGroup":"billing"}`, &l); code != 200 || len(l.List) != 1 || l.List[0].ConsumerGroup != "billing" {
		t.Fatalf("dead letters: %d %+v", code, l)
	}
	// Records.
	var rl RecordList
	if code := get(t, srv, "/api/message/records", "recordQuery", `{"subject":"order.changed","sequence":1,"brokerGroup":"bg1","recordCode":0}`, &rl); code != 200 || len(rl.Records) != 2 {
		t.Fatalf("records: %d %+v", code, rl)
	}
	if r := rl.Records[1]; r.Action != 1 || r.ConsumerID != "host-a" || r.ConsumerGroup != "billing" || r.Type != 0 || r.Sequence != 1 {
		t.Fatalf("ack record %+v", r)
	}
	if code := get(t, srv, "/api/message/records", "recordQuery", `{"subject":"order.changed","messageId":"d1","recordCode":2}`, &rl); code != 200 || len(rl.Records) != 1 || rl.Records[0].Action != -2 || rl.Records[0].Type != 2 {
		t.Fatalf("dead records: %d %+v", code, rl)
	}
	// Detail from the store's content.
	var d Detail
	if code := get(t, srv, "/api/message/detail", "backupQuery", `{"subject":"order.changed","brokerGroup":"bg1","sequence":4}`, &d); code != 200 {
		t.Fatalf("detail: %d", code)
	}
	if d.MessageID != "m4" || d.Attrs["orderId"] != "42" || len(d.Tags) != 1 || d.Tags[0] != "vip" {
		t.Fatalf("detail %+v", d)
	}
	// A dead letter is named by its group (the dead list's consumerGroup),
	// or by QMQ's stored subject %DEAD_RETRY%<subject>%<group>.
	for _, q := range []string{
		`{"subject":"order.changed","brokerGroup":"bg1","sequence":7,"consumerGroup":"billing"}`,
		`{"subject":"%DEAD_RETRY%order.changed%billing","brokerGroup":"bg1","sequence":7}`,
	} {
		d = Detail{}
		if code := get(t, srv, "/api/message/detail", "backupQuery", q, &d); code != 200 || d.MessageID != "d1" || d.ConsumerGroup != "billing" {
			t.Fatalf("dead letter's detail %s: %d %+v", q, code, d)
		}
	}
	// Normal message m4 and a dead letter share bg1's sequence 4 (numbered
	// in different logs): each query gets its own.
	if err := st.PutMessages(ctx, []backup.Message{{Subject: "order.changed", MessageID: "d4", BrokerGroup: "bg1", Sequence: 4, CreateTime: t0, Kind: backup.KindDead, ConsumerGroup: "audit",
		Content: payload(t, protocol.Message{CreateTime: t0.UnixMilli(), Subject: "order.changed", MessageID: "d4"})}}); err != nil {
		t.Fatal(err)
	}
	for q, want := range map[string]string{
		`{"subject":"order.changed","brokerGroup":"bg1","sequence":4}`:                         "m4",
		`{"subject":"order.changed","brokerGroup":"bg1","sequence":4,"consumerGroup":"audit"}`: "d4",
		`{"subject":"%DEAD_RETRY%order.changed%audit","brokerGroup":"bg1","sequence":4}`:       "d4",
	} {
		d = Detail{}
		if code := get(t, srv, "/api/message/detail", "backupQuery", q, &d); code != 200 || d.MessageID != want {
			t.Fatalf("detail %s: %d %+v, want %s", q, code, d, want)
		}
	}
	var e0 errorBody
	if code := get(t, srv, "/api/message/detail", "backupQuery", `{"subject":"order.changed","brokerGroup":"bg1","sequence":4,"consumerGroup":"billing"}`, &e0); code != 404 {
		t.Fatalf("billing's dead letter at 4 (there is none): %d %+v", code, e0)
	}
	// Without content and without a DetailSource: 404.
	var e errorBody
	if code := get(t, srv, "/api/message/detail", "backupQuery", `{"subject":"order.changed","brokerGroup":"bg1","sequence":1}`, &e); code != 404 {
		t.Fatalf("detail without content: %d %+v", code, e)
	}
	// isDelay: an empty list, as QMQ.
	if code := get(t, srv, "/api/message", "backupQuery", `{"subject":"order.changed","isDelay":true,"len":10}`, &l); code != 200 || len(l.List) != 0 {
		t.Fatalf("isDelay: %d %+v", code, l)
	}
}

func strconvQuote(s string) string { b, _ := json.Marshal(s); return string(b) }

func TestDetailSource(t *testing.T) {
	st := newStore(t)
	t0 := time.Now().Add(-time.Hour).Truncate(time.Second)
	fill(t, st, t0)
	var asked string
	srv := httptest.NewServer(NewHandler(st, Options{Detail: func(ctx context.Context, req DetailRequest) ([]byte, error) {
		subject, seq := req.Subject, req.Sequence
		asked = fmt.Sprintf("%s/%s/%d", subject, req.BrokerGroup, seq)
		if req.Located {
			asked += fmt.Sprintf("@%d", req.LogOffset)
		}
		if seq == 99 {
			return nil, fmt.Errorf("slave: no such message: %w", backup.ErrNotFound)
		}
		return payload(t, protocol.Message{CreateTime: t0.UnixMilli(), Subject: subject, MessageID: "from-slave"}), nil
	}}))
	defer srv.Close()
	var d Detail
	if code := get(t, srv, "/api/message/detail", "backupQuery", `{"subject":"order.changed","brokerGroup":"bg1","sequence":1}`, &d); code != 200 || d.MessageID != "from-slave" || asked != "order.changed/bg1/1" {
		t.Fatalf("detail through the source: %d %+v (asked %s)", code, d, asked)
	}
	var e errorBody
	if code := get(t, srv, "/api/message/detail", "backupQuery", `{"subject":"order.changed","brokerGroup":"bg1","sequence":99}`, &e); code != 404 {
		t.Fatalf("a message the source does not have: %d %+v", code, e)
	}
	// A dead letter the store does not have is asked for under the subject
	// the group's log holds it.
	if code := get(t, srv, "/api/message/detail", "backupQuery", `{"subject":"order.changed","brokerGroup":"bg1","sequence":3,"consumerGroup":"billing"}`, &d); code != 200 || asked != "%DEAD_RETRY%order.changed%billing/bg1/3" || d.ConsumerGroup != "billing" {
		t.Fatalf("dead letter through the source: %d %+v (asked %s)", code, d, asked)
	}
	if code := get(t, srv, "/api/message/detail", "backupQuery", `{"subject":"%RETRY%order.changed%billing","brokerGroup":"bg1","sequence":2}`, &d); code != 200 || asked != "%RETRY%order.changed%billing/bg1/2" {
		t.Fatalf("retry copy through the source: %d %+v (asked %s)", code, d, asked)
	}
	// A message kept without content but with its log offset: the source
	// is told where the group's log holds it.
	if err := st.PutMessages(ctx, []backup.Message{{Subject: "order.changed", MessageID: "m9", BrokerGroup: "bg1", Sequence: 9, CreateTime: t0, LogOffset: 4096, Located: true}}); err != nil {
		t.Fatal(err)
	}
	if code := get(t, srv, "/api/message/detail", "backupQuery", `{"subject":"order.changed","brokerGroup":"bg1","sequence":9}`, &d); code != 200 || asked != "order.changed/bg1/9@4096" {
		t.Fatalf("located message through the source: %d %+v (asked %s)", code, d, asked)
	}
	// A retry copy kept likewise: named by its stored subject, read where
	// the group's log holds it, under that subject.
	if err := st.PutMessages(ctx, []backup.Message{{Subject: "order.changed", MessageID: "m9", BrokerGroup: "bg1", Sequence: 9, CreateTime: t0,
		Kind: backup.KindRetry, ConsumerGroup: "billing", LogOffset: 8192, Located: true}}); err != nil {
		t.Fatal(err)
	}
	for _, q := range []string{
		`{"subject":"%RETRY%order.changed%billing","brokerGroup":"bg1","sequence":9}`,
		`{"subject":"%RETRY%order.changed%billing","brokerGroup":"bg1","sequence":9,"consumerGroup":"billing"}`,
	} {
		d = Detail{}
		if code := get(t, srv, "/api/message/detail", "backupQuery", q, &d); code != 200 || asked != "%RETRY%order.changed%billing/bg1/9@8192" || d.ConsumerGroup != "billing" {
			t.Fatalf("located retry copy through the source %s: %d %+v (asked %s)", q, code, d, asked)
		}
	}
	if code := get(t, srv, "/api/message/detail", "backupQuery", `{"subject":"%RETRY%order.changed%billing","brokerGroup":"bg1","sequence":9,"consumerGroup":"audit"}`, &e); code != 400 || e.Field != "consumerGroup" {
		t.Fatalf("a retry copy's subject with another consumerGroup: %d %+v, want 400 naming consumerGroup", code, e)
	}
	// The copies of a message are listed with what names their detail.
	var l MessageList
	if code := get(t, srv, "/api/message/retry", "backupQuery", `{"subject":"order.changed","messageId":"m9","len":10}`, &l); code != 200 || len(l.List) != 1 ||
		l.List[0].ConsumerGroup != "billing" || l.List[0].Sequence != 9 || l.List[0].BrokerGroup != "bg1" {
		t.Fatalf("retry copies of m9: %d %+v", code, l)
	}
	if code := get(t, srv, "/api/message/retry", "backupQuery", `{"subject":"order.changed","len":10}`, &e); code != 400 || e.Field != "messageId" {
		t.Fatalf("retry copies without messageId: %d %+v, want 400 naming messageId", code, e)
	}
}

func TestBadInput(t *testing.T) {
	st := newStore(t)
	fill(t, st, time.Now().Add(-time.Hour))
	srv := httptest.NewServer(NewHandler(st, Options{}))
	defer srv.Close()
	now := time.Now().UnixMilli()
	cases := []struct {
		path, param, q string
		status         int
		field          string
	}{
		{"/api/message", "backupQuery", `{"subject":"order.changed","len":10`, 400, "backupQuery"},
		{"/api/message", "backupQuery", `[1,2]`, 400, "backupQuery"},
		{"/api/message", "backupQuery", `{"subject":"order.changed","len":10} x`, 400, "backupQuery"},
		{"/api/message", "backupQuery", `{"subject":"order.changed","len":10,"colour":"red"}`, 400, "colour"},
		{"/api/message", "backupQuery", `{"subject":"order.changed","len":"ten"}`, 400, "len"},
		{"/api/message", "backupQuery", `{"subject":"order.changed","len":5000}`, 400, "len"},
		{"/api/message", "backupQuery", `{"subject":"order.changed"}`, 400, "len"},
		{"/api/message", "backupQuery", `{"len":10}`, 400, "subject"},
		{"/api/message", "backupQuery", fmt.Sprintf(`{"subject":"order.changed","len":10,"msgCreateTimeBegin":%d,"msgCreateTimeEnd":%d}`, now, now-3600_000), 400, "msgCreateTimeBegin"},
		{"/api/message", "backupQuery", `{"subject":"order.changed","len":10,"msgCreateTimeEnd":"yesterday"}`, 400, "msgCreateTimeEnd"},
		{"/api/message", "backupQuery", `{"subject":"order.changed","len":10,"start":"garbage"}`, 400, "start"},
		{"/api/message", "backupQuery", `{"subject":"no.such.subject","len":10}`, 404, "subject"},
		{"/api/message/dead", "backupQuery", `{"subject":"order.changed","len":10,"consumerGroup":"nobody"}`, 404, "consumerGroup"},
		{"/api/message", "backupQuery", `{"subject":"` + strings.Repeat("x", 5000) + `","len":10}`, 400, "backupQuery"},
		{"/api/message", "query", `{}`, 400, "backupQuery"},
		{"/api/message/records", "recordQuery", `{"subject":"order.changed","recordCode":5}`, 400, "recordCode"},
		{"/api/message/records", "recordQuery", `{"subject":"order.changed","recordCode":0}`, 400, "brokerGroup"},
		{"/api/message/records", "recordQuery", `{"subject":"order.changed","recordCode":1}`, 400, "messageId"},
		{"/api/message/detail", "backupQuery", `{"subject":"order.changed","sequence":1}`, 400, "brokerGroup"},
	}
	for _, c := range cases {
		var e errorBody
		code := get(t, srv, c.path, c.param, c.q, &e)
		if code != c.status || e.Field != c.field || e.Error == "" {
			t.Errorf("%s %.80s: %d %+v; want %d naming %s", c.path, c.q, code, e, c.status, c.field)
		}
	}
	resp, err := http.Post(srv.URL+"/api/message", "application/json", strings.NewReader("{}"))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusMethodNotAllowed {
		t.Fatalf("POST: %d", resp.StatusCode)
	}
	// The server still answers.
	var l MessageList
	if code := get(t, srv, "/api/message", "backupQuery", `{"subject":"order.changed","len":1}`, &l); code != 200 || len(l.List) != 1 {
		t.Fatalf("after bad input: %d %+v", code, l)
	}
}

// TestStoreUnavailableIs503 uses the HBase store with its gateway down.
func TestStoreUnavailableIs503(t *testing.T) {
	gw := hbasetest.Start(t)
	db, err := dic.OpenSQLite(ctx, filepath.Join(t.TempDir(), "meta.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	d, _ := dic.NewSQL(db, dic.SQLite, "test")
	s := hbasestore.DefaultSettings()
	s.RestURL, s.Timeout = gw.URL(), 500*time.Millisecond
	st, err := hbasestore.New(s, d)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	if _, err := st.CreateTables(ctx); err != nil {
		t.Fatal(err)
	}
	fill(t, st, time.Now().Add(-time.Hour))
	srv := httptest.NewServer(NewHandler(st, Options{}))
	defer srv.Close()
	gw.Down()
	var e errorBody
	if code := get(t, srv, "/api/message", "backupQuery", `{"subject":"order.changed","len":10}`, &e); code != 503 || !strings.Contains(e.Error, "unavailable") {
		t.Fatalf("gateway down: %d %+v", code, e)
	}
}

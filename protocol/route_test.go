package protocol

import (
	"reflect"
	"strings"
	"testing"
)

func TestSubjectRouteQueryRoundTrip(t *testing.T) {
	subjects := []string{"order", "%RETRY%order%g", ""}
	got, err := DecodeSubjectRouteQuery(AppendSubjectRouteQuery(nil, subjects))
	if err != nil || !reflect.DeepEqual(got, subjects) {
		t.Fatalf("got %q, %v", got, err)
	}
	routes := []SubjectRoute{{Subject: "a", Status: RouteFound, Groups: []string{"g1", "g2"}}, {Subject: "b", Status: RouteMissing}, {Subject: "c", Status: RouteUnknown}}
	back, err := DecodeSubjectRoutes(AppendSubjectRoutes(nil, routes))
	if err != nil || !reflect.DeepEqual(back, routes) {
		t.Fatalf("got %+v, %v", back, err)
	}
	if _, err := DecodeSubjectRoutes(AppendSubjectRoutes(nil, routes)[:7]); err == nil {
		t.Fatal("truncated response decoded")
	}
	if _, err := DecodeSubjectRouteQuery(AppendInt16(nil, MaxRouteQuerySubjects+1)); err == nil || !strings.Contains(err.Error(), "subjects") {
		t.Fatalf("oversized query: %v", err)
	}
	if CodeName(CodeQuerySubjectRoute, false) != "QUERY_SUBJECT_ROUTE" {
		t.Fatal("no name for QUERY_SUBJECT_ROUTE")
	}
}

// The timestamp trailer is invisible to a reader of QMQ's three fields (a
// Java broker): it sees code 3 and ignores the rest.
func TestConsumeManageTimestamp(t *testing.T) {
	body := AppendConsumeManageTimestamp(nil, "s", "g", 1714550400000)
	old, err := DecodeConsumeManageRequest(body)
	if err != nil || old != (ConsumeManageRequest{Subject: "s", ConsumerGroup: "g", Code: ConsumeFromTimestamp}) {
		t.Fatalf("QMQ fields: %+v, %v", old, err)
	}
	if ts, err := DecodeConsumeManageTimestamp(body); err != nil || ts != 1714550400000 {
		t.Fatalf("timestamp %d, %v", ts, err)
	}
	short := AppendConsumeManageRequest(nil, &ConsumeManageRequest{Subject: "s", ConsumerGroup: "g", Code: ConsumeFromTimestamp})
	if _, err := DecodeConsumeManageTimestamp(short); err == nil || !strings.Contains(err.Error(), "needs an i64 timestamp") {
		t.Fatalf("missing trailer: %v", err)
	}
	r := ConsumeManageResult{NextSequence: 42, MessageTimestamp: -1}
	if got, ok, err := DecodeConsumeManageResult(AppendConsumeManageResult(nil, &r)); err != nil || !ok || got != r {
		t.Fatalf("result %+v %v %v", got, ok, err)
	}
	if _, ok, err := DecodeConsumeManageResult(nil); ok || err != nil {
		t.Fatalf("empty body (Java broker): ok %v err %v", ok, err)
	}
}

func TestPayloadAttrs(t *testing.T) {
	m := Message{CreateTime: 1, ExpireOrScheduleTime: 2, Subject: "s", MessageID: "id", Tags: []string{"t"},
		Attrs: []Attr{{Key: "qmq_env", Value: "beta"}, {Key: "big", Value: strings.Repeat("x", 30000)}, {Key: "qmq_subEnv", Value: ""}}}
	enc, err := AppendMessage(nil, &m)
	if err != nil {
		t.Fatal(err)
	}
	payload := enc[8:]
	var got []Attr
	if !PayloadAttrs(payload, func(k, v []byte) bool { got = append(got, Attr{Key: string(k), Value: string(v)}); return true }) {
		t.Fatal("well-formed payload reported malformed")
	}
	if !reflect.DeepEqual(got, m.Attrs) {
		t.Fatalf("attrs %d, want %d", len(got), len(m.Attrs))
	}
	if PayloadAttrs(payload[:len(payload)-3], func(k, v []byte) bool { return true }) {
		t.Fatal("truncated payload reported well-formed")
	}
}

package client

import (
	"maps"
	"testing"

	"github.com/qmq-go/qmq/protocol"
)

// A received message keeps its decoded attributes until modified; every
// accessor sees the same properties in both forms.
func TestReceivedMessageProperties(t *testing.T) {
	pm := protocol.PulledMessage{PullOffset: 1234, Message: protocol.Message{Subject: "s", MessageID: "id", CreateTime: 1700000000000,
		Attrs: []protocol.Attr{{Key: "k", Value: "first"}, {Key: PropCreateTime, Value: "1700000000001"}, {Key: "k", Value: "last"},
			{Key: PropConsumerGroup, Value: "failing-group"}, {Key: PropPullOffset, Value: "stale"}}}}
	var m Message
	m.setPulled(&pm)
	m.setGroup("grp")
	want := map[string]string{"k": "last", PropCreateTime: "1700000000001", PropConsumerGroup: "grp", PropPullOffset: "1234"}
	check := func(when string) {
		t.Helper()
		if got := m.Properties(); !maps.Equal(got, want) {
			t.Fatalf("%s: Properties %v, want %v", when, got, want)
		}
		for k, v := range want {
			if got, ok := m.LookupProperty(k); !ok || got != v {
				t.Fatalf("%s: %s = %q %v, want %q", when, k, got, ok, v)
			}
		}
		if _, ok := m.LookupProperty("absent"); ok {
			t.Fatalf("%s: absent property found", when)
		}
		if m.CreatedAt().UnixMilli() != 1700000000001 {
			t.Fatalf("%s: CreatedAt %v", when, m.CreatedAt())
		}
	}
	check("as received")
	if m.attrs == nil {
		t.Fatal("reading switched to the map form")
	}
	pw, err := m.toWire(m.createdAt)
	if err != nil || len(pw.Attrs) != len(want) {
		t.Fatalf("toWire: %v %v", pw, err)
	}
	m.SetProperty("new", "v")
	want["new"] = "v"
	check("after SetProperty")
	m.SetLargeString("k", "x")
	want["k"] = "x"
	check("after SetLargeString")

	var none Message
	none.setPulled(&protocol.PulledMessage{PullOffset: 7})
	if got := none.Properties(); !maps.Equal(got, map[string]string{PropPullOffset: "7"}) {
		t.Fatalf("message without attributes: %v", got)
	}
	if c := none.retryCopy("%RETRY%s%g", 2, none.createdAt); c.Property(PropTimes) != "2" || c.Property(PropPullOffset) != "" {
		t.Fatalf("retry copy: %v", c.Properties())
	}
}

package client_test

import (
	"testing"

	"github.com/qmq-go/qmq/client"
)

func TestNewTestMessage(t *testing.T) {
	props := map[string]string{client.PropConsumerGroup: "grp", client.PropTimes: "3", "k": "v"}
	m := client.NewTestMessage("s", "id-1", props)
	props["k"] = "changed"
	if m.Subject() != "s" || m.ID() != "id-1" || m.Property("k") != "v" || m.Property(client.PropConsumerGroup) != "grp" || m.Times() != 3 {
		t.Fatalf("message %s: %v", m, m.Properties())
	}
	if m.CreatedAt().IsZero() || m.Property(client.PropCreateTime) == "" {
		t.Fatal("no creation time")
	}
	m.Ack(nil) // no consumer: nothing happens
	if m := client.NewTestMessage("s", "id-2", nil); m.Times() != 1 || len(m.Properties()) != 1 {
		t.Fatalf("empty message: %v", m.Properties())
	}
}

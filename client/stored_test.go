package client_test

import (
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/qmq-go/qmq/client"
)

func TestRestoreMessage(t *testing.T) {
	at := time.Now().Add(time.Hour).Truncate(time.Millisecond)
	props := map[string]string{
		client.PropCreateTime:      "1733550000000",
		client.PropScheduleReceive: strconv.FormatInt(at.UnixMilli(), 10),
		"k":                        "v",
	}
	m := client.RestoreMessage("order.paid", "241207.120000.10.0.0.1.42.7", props, []string{"a", "b", "a"})
	props["k"] = "changed"
	if m.Subject() != "order.paid" || m.ID() != "241207.120000.10.0.0.1.42.7" || m.Property("k") != "v" {
		t.Fatalf("restored %s: %v", m, m.Properties())
	}
	if got := m.CreatedAt().UnixMilli(); got != 1733550000000 {
		t.Fatalf("created at %d, want 1733550000000", got)
	}
	if !m.ScheduledAt().Equal(at) {
		t.Fatalf("scheduled at %v, want %v", m.ScheduledAt(), at)
	}
	if tags := m.Tags(); len(tags) != 2 || tags[0] != "a" || tags[1] != "b" {
		t.Fatalf("tags %q", tags)
	}
	if err := m.Validate(); err != nil {
		t.Fatal(err)
	}
	if m := client.RestoreMessage("s", "id", nil, nil); m.CreatedAt().IsZero() || !m.ScheduledAt().IsZero() {
		t.Fatalf("no properties: created %v, scheduled %v", m.CreatedAt(), m.ScheduledAt())
	}
}

func TestValidate(t *testing.T) {
	for name, m := range map[string]*client.Message{
		"retry subject": client.RestoreMessage(client.RetrySubject("s", "g"), "id", nil, nil),
		"no id":         client.RestoreMessage("s", "", nil, nil),
		"11 tags":       client.RestoreMessage("s", "id", nil, strings.Split("a b c d e f g h i j k", " ")),
		"bad utf-8":     client.RestoreMessage("s", "id", map[string]string{"k": "\xff"}, nil),
	} {
		if err := m.Validate(); err == nil {
			t.Errorf("%s: Validate accepted %s", name, m)
		}
	}
}

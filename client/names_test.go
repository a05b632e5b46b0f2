package client

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/qmq-go/qmq/protocol/names"
)

// TestIllegalNamesRefusedLocally: a producer refuses a subject that is not
// a legal name — and a retry or dead-letter subject, which only consumers
// send to — before anything reaches a broker, with an error naming the
// character, its position and the alphabet (errors.As finds the
// *names.Error); SendAsync refuses it at once. NewConsumer refuses illegal
// subjects and groups, and a sub-environment that makes the group illegal.
// Legal names (dots, dashes, underscores, digits, 100 characters) are sent,
// and a consumer may still read a dead-letter subject.
func TestIllegalNamesRefusedLocally(t *testing.T) {
	endpoint, mc := startMeta(t)
	b := startBroker(t, "g1", mc)
	p := newTestProducer(t, endpoint)
	ctx := context.Background()
	for s, want := range map[string]string{
		"":                       "it is empty",
		" ":                      "a space (U+0020) at position 1",
		"order created":          "a space (U+0020) at position 6",
		"*":                      "'*' (U+002A) at position 1",
		"a;b":                    "';' (U+003B) at position 2",
		"订单":                     "'订' (U+8BA2) at position 1",
		"%RETRY%order%g":         `prefix "%RETRY%" is reserved`,
		"%DEAD_RETRY%order%g":    `prefix "%DEAD_RETRY%" is reserved`,
		strings.Repeat("a", 101): "101 characters long",
	} {
		m := p.NewMessage(s)
		err := p.Send(ctx, m)
		var ne *names.Error
		if !errors.As(err, &ne) || !strings.Contains(err.Error(), want) || !strings.Contains(err.Error(), names.Alphabet) || !strings.Contains(err.Error(), m.ID()) {
			t.Errorf("Send to %q: %v; want a *names.Error with %q, the alphabet and the message id", s, err, want)
		}
		if err := p.SendAsync(m, func(*Message, error) { t.Errorf("SendAsync of %q called back", s) }); !errors.As(err, &ne) {
			t.Errorf("SendAsync to %q: %v; want a *names.Error", s, err)
		}
	}
	b.mu.Lock()
	sends := b.sends
	b.mu.Unlock()
	if sends != 0 {
		t.Fatalf("%d SEND_MESSAGE requests reached the broker; want none", sends)
	}
	for _, s := range []string{"order.created", "pay-done_v2", "0", strings.Repeat("s", 100)} {
		if err := p.Send(ctx, p.NewMessage(s)); err != nil {
			t.Errorf("Send to legal %q: %v", s, err)
		}
	}

	for _, c := range []struct{ subject, group, want string }{
		{"a b", "g", "illegal subject"},
		{"%RETRY%order", "g", "illegal subject"},
		{"order", "g;x", "illegal consumer group"},
		{"order", "%RETRY%", "illegal consumer group"},
	} {
		if _, err := NewConsumer(ctx, endpoint, c.subject, c.group, WithLogger(testLogger(t, "client"))); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("NewConsumer(%q, %q): %v; want %q", c.subject, c.group, err, c.want)
		}
	}
	if _, err := NewConsumer(ctx, endpoint, "order", "g", WithEnv("beta", "b 1"), WithLogger(testLogger(t, "client"))); err == nil || !strings.Contains(err.Error(), "WithEnv") {
		t.Errorf("NewConsumer with an illegal sub-environment: %v", err)
	}
	newTestConsumer(t, endpoint, DeadLetterSubject("order.created", "g"), "dead-reader")
	newTestConsumer(t, endpoint, "order.created", "", WithBroadcast(), WithEnv("beta", "b1"))
}

package protocol

import "testing"

func TestLeaseRefusalRoundTrip(t *testing.T) {
	body := AppendLeaseRefusal(nil, LeaseRefusedHeld, "held by b:2 for 900 ms more")
	if reason, msg := DecodeLeaseRefusal(body); reason != LeaseRefusedHeld || msg != "held by b:2 for 900 ms more" {
		t.Fatalf("decoded %d %q", reason, msg)
	}
	// Readers of plain error bodies still get the message.
	if msg := DecodeErrorBody(body); msg != "held by b:2 for 900 ms more" {
		t.Fatalf("DecodeErrorBody: %q", msg)
	}
	// A plain error body (no reason) is LeaseRefusedOther.
	if reason, msg := DecodeLeaseRefusal(AppendErrorBody(nil, "no")); reason != LeaseRefusedOther || msg != "no" {
		t.Fatalf("plain error body decoded %d %q", reason, msg)
	}
	if reason, msg := DecodeLeaseRefusal(nil); reason != LeaseRefusedOther || msg != "" {
		t.Fatalf("empty body decoded %d %q", reason, msg)
	}
}

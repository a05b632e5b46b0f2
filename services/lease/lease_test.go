package lease

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/qmq-go/qmq/client/meta"
	"github.com/qmq-go/qmq/protocol"
)

func TestConsulKey(t *testing.T) {
	for _, c := range []struct{ prefix, want string }{
		{"qmq/delay/", "qmq/delay/d1/master"}, {"qmq/delay", "qmq/delay/d1/master"}, {"", "d1/master"},
	} {
		if got := ConsulKey(c.prefix, "d1"); got != c.want {
			t.Errorf("ConsulKey(%q): %q, want %q", c.prefix, got, c.want)
		}
	}
}

// TestMetaDeadlines: the master stops acknowledging at 90% of the TTL
// after it sent the claim; a refused claim moves nothing.
func TestMetaDeadlines(t *testing.T) {
	var refuse error
	l := Meta{TTL: 3 * time.Second, Call: func(_ context.Context, op uint8) (protocol.LeaseResponse, error) {
		if op != protocol.LeaseClaim && op != protocol.LeasePromote {
			t.Errorf("op %d", op)
		}
		time.Sleep(10 * time.Millisecond) // the answer's travel
		return protocol.LeaseResponse{}, refuse
	}}
	if l.RenewEvery() != time.Second {
		t.Errorf("renew every %v, want a third of the TTL", l.RenewEvery())
	}
	before := time.Now()
	until, _, err := l.Claim(context.Background())
	if err != nil || until.Before(before.Add(2700*time.Millisecond)) || until.After(before.Add(2710*time.Millisecond)) {
		t.Errorf("claim: until %v after sending, %v; want 2.7 s", until.Sub(before), err)
	}
	refuse = &Refused{Reason: protocol.LeaseRefusedHeld, Msg: "held"}
	if until, _, err := l.Claim(context.Background()); !IsHeld(err) || !until.IsZero() {
		t.Errorf("refused claim: until %v, %v", until, err)
	}
}

func TestRefusals(t *testing.T) {
	held := &Refused{Reason: protocol.LeaseRefusedHeld, Msg: "x"}
	wrong := &Refused{Reason: protocol.LeaseRefusedWrongRole, Msg: "y"}
	reject := &meta.Error{Request: "BROKER_REGISTER", Status: protocol.CodeBrokerReject, Message: "z"}
	for _, c := range []struct {
		err             error
		refused, isHeld bool
	}{
		{held, true, true}, {wrong, true, false}, {reject, true, false},
		{errors.New("connection refused"), false, false}, {ErrUnsupported, false, false},
	} {
		if IsRefused(c.err) != c.refused || IsHeld(c.err) != c.isHeld {
			t.Errorf("%v: refused %v held %v", c.err, IsRefused(c.err), IsHeld(c.err))
		}
	}
}

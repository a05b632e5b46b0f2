package client

import (
	"testing"
	"time"

	"github.com/qmq-go/qmq/protocol"
)

// TestDelayRoutingFollowsDelayUtil: a message whose delivery time is at
// least MinDelay ahead goes to delay groups (DELAY_PRODUCER) with the
// delay flag and its schedule time; one due sooner, or in the past, goes
// real-time as a plain message, as QMQ's DelayUtil decides.
func TestDelayRoutingFollowsDelayUtil(t *testing.T) {
	now := time.Now()
	for _, c := range []struct {
		ahead time.Duration
		delay bool
	}{{0, false}, {-time.Hour, false}, {MinDelay - time.Millisecond, false}, {MinDelay, true}, {2 * time.Second, true}, {365 * 24 * time.Hour, true}} {
		m := NewTestMessage("delay.util", "id", nil).SetDelayUntil(now.Add(c.ahead))
		o, err := newOutgoing(m, now)
		if err != nil {
			t.Fatal(err)
		}
		wantType := protocol.ClientTypeProducer
		if c.delay {
			wantType = protocol.ClientTypeDelayProducer
		}
		if o.key.clientType != wantType {
			t.Errorf("%v ahead: client type %d, want %d", c.ahead, o.key.clientType, wantType)
		}
		if got := o.pm.Flag&protocol.MessageFlagDelay != 0; got != c.delay {
			t.Errorf("%v ahead: delay flag %v, want %v", c.ahead, got, c.delay)
		}
		wantSlot := now.UnixMilli()
		if c.delay {
			wantSlot = now.Add(c.ahead).UnixMilli()
		}
		if o.pm.ExpireOrScheduleTime != wantSlot {
			t.Errorf("%v ahead: expire/schedule slot %d, want %d", c.ahead, o.pm.ExpireOrScheduleTime, wantSlot)
		}
	}
}

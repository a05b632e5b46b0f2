package client

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/qmq-go/qmq/protocol"
)

// fullDisk makes b refuse every message the way a broker with a full disk
// does: BROKER_READ_ONLY with a protocol.RemarkDiskFull remark.
func fullDisk(b *fakeBroker) {
	b.failSend = func(*protocol.Message) int32 { return protocol.SendBrokerReadOnly }
	b.failRemark = protocol.RemarkDiskFull + b.group + " (" + b.addr + "): /data/messagelog has 12.0 MiB free, needs 1.0 GiB for a new segment (messagelog.segment.size); free space or add a group"
}

// TestDiskFullRefusalIsNotRetried: a message refused for a full disk goes
// to another group, and when there is none it fails at once with the
// broker's reason instead of trying the full group DefaultSendTries times.
func TestDiskFullRefusalIsNotRetried(t *testing.T) {
	endpoint, mc := startMeta(t)
	b1 := startBroker(t, "g1", mc)
	b1.set(fullDisk)
	p := newTestProducer(t, endpoint)
	err := p.Send(context.Background(), p.NewMessage("full.one"))
	var se *SendError
	if !errors.As(err, &se) || se.Code != CodeBrokerReadOnly || se.Tries != 1 || se.Group != "g1" ||
		!strings.Contains(se.Remark, "disk full on broker g1") || !strings.Contains(err.Error(), "free space or add a group") {
		t.Fatalf("send to the only group, full: %v (%+v), want BROKER_READ_ONLY after 1 try with the disk-full remark", err, se)
	}
	b1.mu.Lock()
	sends := b1.sends
	b1.mu.Unlock()
	if sends != 1 {
		t.Fatalf("the full group got %d sends, want 1", sends)
	}

	// With another group the messages go there.
	b2 := startBroker(t, "g2", mc)
	p2 := newTestProducer(t, endpoint)
	for i := 0; i < 10; i++ {
		if err := p2.Send(context.Background(), p2.NewMessage("full.two").SetProperty("i", fmt.Sprint(i))); err != nil {
			t.Fatal(err)
		}
	}
	if n := len(b2.stored("full.two")); n != 10 {
		t.Fatalf("g2 stored %d of 10", n)
	}
	b1.mu.Lock()
	defer b1.mu.Unlock()
	if b1.sends > 2 { // 1 above, then at most one before the breaker opened
		t.Fatalf("the full group got %d sends; it should be skipped after its refusal", b1.sends)
	}
}

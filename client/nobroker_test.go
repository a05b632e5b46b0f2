package client

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/qmq-go/qmq/tests/framework"
)

// TestNoBrokerSaysWhy: when the metaserver leaves every group of a
// subject's route out of a producer's answer, the send's error says which
// groups and why (read-only by MarkReadonly, no master online), not just
// "no broker group available". A real broker (tests/framework), so that
// "no master online" is what a stopped master leaves behind.
func TestNoBrokerSaysWhy(t *testing.T) {
	c := framework.StartCluster(t, framework.ClusterOptions{})
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	send := func() error {
		p := newTestProducer(t, c.Endpoint()) // a fresh route each time
		return p.Send(ctx, p.NewMessage("why.subject").SetBody("x"))
	}
	if err := send(); err != nil {
		t.Fatalf("send with the group writable: %v", err)
	}

	if err := c.Admin().MarkReadonly(ctx, "g1", "*"); err != nil {
		t.Fatal(err)
	}
	err := send()
	if !errors.Is(err, ErrNoBroker) || !strings.Contains(err.Error(), "g1 read-only for producers (MarkReadonlyBrokerGroup") || strings.Contains(err.Error(), "(,") {
		t.Fatalf("send to a read-only group: %v; want ErrNoBroker naming g1 as read-only", err)
	}
	if err := c.Admin().UnMarkReadonly(ctx, "g1", "*"); err != nil {
		t.Fatal(err)
	}

	c.Group("g1").Master.Stop() // it tells the metaserver it is going OFFLINE
	err = send()
	if !errors.Is(err, ErrNoBroker) || !strings.Contains(err.Error(), "g1 no master online (NRW") {
		t.Fatalf("send with the group's master stopped: %v; want ErrNoBroker naming g1 as having no master", err)
	}
}

package framework_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/qmq-go/qmq/client"
	"github.com/qmq-go/qmq/client/admin"
	"github.com/qmq-go/qmq/internal/testlog"
	"github.com/qmq-go/qmq/internal/testutil"
	"github.com/qmq-go/qmq/tests/framework"
)

// TestClusterSurvivesSwap starts two groups with slaves, sends through the
// Go client, swaps g1's master and slave by the manual runbook (the
// management API's SwapMasterSlave), and checks that the group takes sends
// again and that every message — those stored before the swap, copied to
// the new master by replication, and those after — is consumed.
func TestClusterSurvivesSwap(t *testing.T) {
	c := framework.StartCluster(t, framework.ClusterOptions{Groups: 2, Slaves: true})
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	const subject = "framework.swap"
	var sent []string
	// send sends n messages through a new producer: one that saw g1 fail
	// during the swap keeps away from it for a while (its circuit breaker),
	// which is not what this test is about.
	send := func(n int) {
		t.Helper()
		p, err := client.NewProducer(ctx, c.Endpoint(), client.WithSendTimeout(3*time.Second),
			client.WithLogger(testlog.Logger(t, "producer", hclog.Warn)))
		if err != nil {
			t.Fatal(err)
		}
		defer func() { _ = p.Close(context.Background()) }()
		for range n {
			m := p.NewMessage(subject).SetBody(fmt.Sprintf("message %d", len(sent)))
			if err := p.Send(ctx, m); err != nil {
				t.Fatalf("send %d: %v", len(sent), err)
			}
			sent = append(sent, m.ID())
		}
	}
	send(20)
	g := c.Group("g1")
	c.WaitSlaveCaughtUp()
	before, err := g.Master.Health()
	if err != nil || before.MessageLogEnd == 0 {
		t.Fatalf("g1's master before the swap: %+v %v; want messages (min.group.num=2 spreads the subject over both groups)", before, err)
	}

	oldMaster := g.Master
	g.SwapMasterSlave()
	if g.Slave != oldMaster {
		t.Fatalf("after the swap the group's slave is %s, want the old master %s", g.Slave, oldMaster)
	}
	rows, err := c.Admin().ListBrokers(ctx, "g1")
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range rows {
		want := map[string]string{g.Master.Hostname(): "MASTER", g.Slave.Hostname(): "SLAVE"}[r.Hostname]
		if r.Role != want {
			t.Errorf("broker table after the swap: %s is %s, want %s", r.Hostname, r.Role, want)
		}
	}
	send(20)
	c.WaitSlaveCaughtUp()
	after, err := g.Master.Health()
	if err != nil || after.MessageLogEnd <= before.MessageLogEnd {
		t.Fatalf("g1's new master: %+v %v; want its message log past %d (the old master's, copied, and new sends)", after, err, before.MessageLogEnd)
	}

	// A consumer group moved to the earliest message gets all 40.
	const group = "framework-check"
	if _, err := c.Admin().ResetOffset(ctx, admin.ResetSpec{Subject: subject, Group: group, Code: admin.ResetEarliest}); err != nil {
		t.Fatal(err)
	}
	cons, err := client.NewConsumer(ctx, c.Endpoint(), subject, group, client.WithPullTimeout(200*time.Millisecond),
		client.WithLogger(testlog.Logger(t, "consumer", hclog.Warn)))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cons.Close() })
	got := map[string]bool{}
	testutil.EventuallyState(t, 30*time.Second, fmt.Sprintf("all %d messages consumed", len(sent)), func() (bool, string) {
		msgs, err := cons.Pull(ctx, 100)
		if err != nil {
			return false, err.Error()
		}
		for _, m := range msgs {
			got[m.ID()] = true
			m.Ack(nil)
		}
		return len(got) == len(sent), fmt.Sprintf("%d consumed", len(got))
	})
	for _, id := range sent {
		if !got[id] {
			t.Errorf("message %s sent but not consumed", id)
		}
	}
}

// TestRestartKeepsStore: a lone master restarted comes back online at the
// same address with the messages it had.
func TestRestartKeepsStore(t *testing.T) {
	c := framework.StartCluster(t, framework.ClusterOptions{})
	b := c.Group("g1").Master
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	p, err := client.NewProducer(ctx, c.Endpoint(), client.WithLogger(testlog.Logger(t, "producer", hclog.Warn)))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = p.Close(context.Background()) })
	if err := p.Send(ctx, p.NewMessage("framework.restart").SetBody("x")); err != nil {
		t.Fatal(err)
	}
	before, err := b.Health()
	if err != nil {
		t.Fatal(err)
	}
	addr := b.Addr()
	b.Restart()
	c.WaitOnline()
	after, err := b.Health()
	if err != nil || after.MessageLogEnd != before.MessageLogEnd || b.Addr() != addr || b.Server().Addr().String() != addr {
		t.Fatalf("after the restart: %+v %v at %s; want message log end %d at %s", after, err, b.Server().Addr(), before.MessageLogEnd, addr)
	}
}

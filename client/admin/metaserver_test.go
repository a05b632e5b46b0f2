package admin_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/qmq-go/qmq/client/admin"
	"github.com/qmq-go/qmq/services/metaserver/metatest"
)

// TestAgainstMetaserver drives a real metaserver: register a pair, list
// it, swap it, and read the refusals it gives.
func TestAgainstMetaserver(t *testing.T) {
	m := metatest.Start(t, nil)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	c := admin.New(m.HTTP(), metatest.Token)
	for _, b := range []admin.BrokerSpec{
		{Group: "g1", Role: admin.RoleMaster, Hostname: "h-a", IP: "127.0.0.1", ServePort: 30001, SyncPort: 30002},
		{Group: "g1", Role: admin.RoleSlave, Hostname: "h-b", IP: "127.0.0.1", ServePort: 30003, SyncPort: 30004},
	} {
		got, msg, err := c.AddBroker(ctx, b)
		if err != nil || got.Hostname != b.Hostname || !strings.Contains(msg, "loopback") {
			t.Fatalf("AddBroker %+v: %+v %q %v; want the row and the loopback warning", b, got, msg, err)
		}
	}
	brokers, err := c.ListBrokers(ctx, "g1")
	if err != nil || len(brokers) != 2 {
		t.Fatalf("ListBrokers: %+v %v", brokers, err)
	}
	swap, err := c.SwapMasterSlave(ctx, "g1")
	if err != nil || swap.Master.Hostname != "h-b" || swap.Slave.Hostname != "h-a" || swap.Master.Role != "MASTER" {
		t.Fatalf("SwapMasterSlave: %+v %v", swap, err)
	}
	_, _, err = c.AddBroker(ctx, admin.BrokerSpec{Group: "g1", Role: admin.RoleMaster, Hostname: "h-c", IP: "127.0.0.1", ServePort: 30005, SyncPort: 30006})
	var refusal *admin.Error
	if !errors.As(err, &refusal) || !strings.Contains(refusal.Message, "with role: MASTER already exists") {
		t.Fatalf("second master: %v; want the metaserver's refusal", err)
	}
	_, _, err = admin.New(m.HTTP(), "wrong").AddBroker(ctx, admin.BrokerSpec{Group: "g2"})
	if !errors.As(err, &refusal) || !strings.Contains(err.Error(), "X-Api-Token") {
		t.Fatalf("bad token: %v", err)
	}
	if err := c.MarkReadonly(ctx, "g1", "*"); err != nil {
		t.Fatal(err)
	}
	if err := c.UnMarkReadonly(ctx, "g1", "*"); err != nil {
		t.Fatal(err)
	}
	if _, err := c.ResetOffset(ctx, admin.ResetSpec{Subject: "nobody.sent", Group: "g", Code: admin.ResetEarliest}); err == nil || !strings.Contains(err.Error(), "find no route") {
		t.Fatalf("reset of an unrouted subject: %v", err)
	}
	groups, err := c.ListBrokerGroups(ctx)
	if err != nil || len(groups) != 0 {
		t.Fatalf("ListBrokerGroups before any broker came online: %+v %v", groups, err)
	}
}

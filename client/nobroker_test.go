package client

import (
	"bytes"
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/qmq-go/qmq/client/meta"
	"github.com/qmq-go/qmq/cmd/qmq/tools"
	"github.com/qmq-go/qmq/protocol"
	"github.com/qmq-go/qmq/services/metaserver/metatest"
)

// TestNoBrokerSaysWhy: when the metaserver leaves every group of a
// subject's route out of a producer's answer, the send's error says which
// groups and why (read-only by MarkReadonly, no master online), not just
// "no broker group available".
func TestNoBrokerSaysWhy(t *testing.T) {
	srv := metatest.Start(t, nil)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	mc, err := meta.Dial(ctx, srv.TCP())
	if err != nil {
		t.Fatal(err)
	}
	defer mc.Close()
	b := startBroker(t, "g1", mc)
	tool := func(args ...string) {
		t.Helper()
		var out, errOut bytes.Buffer
		if rc := tools.Main(append(args, "--metaserver="+srv.HTTP(), "--token="+metatest.Token, "--brokerGroup=g1"), &out, &errOut); rc != 0 {
			t.Fatalf("%v: exit %d: %s %s", args, rc, out.String(), errOut.String())
		}
	}
	send := func() error {
		p := newTestProducer(t, srv.Endpoint()) // a fresh route each time
		return p.Send(ctx, p.NewMessage("why.subject").SetBody("x"))
	}
	if err := send(); err != nil {
		t.Fatalf("send with the group writable: %v", err)
	}

	tool("MarkReadonly", "--subject=*")
	err = send()
	if !errors.Is(err, ErrNoBroker) || !strings.Contains(err.Error(), "g1 read-only for producers (MarkReadonlyBrokerGroup") || strings.Contains(err.Error(), "(,") {
		t.Fatalf("send to a read-only group: %v; want ErrNoBroker naming g1 as read-only", err)
	}
	tool("UnMarkReadonly", "--subject=*")

	if err := mc.RegisterBroker(ctx, protocol.BrokerRegisterRequest{RequestType: protocol.BrokerRequestOffline, GroupName: "g1",
		BrokerAddress: b.addr, Role: protocol.RoleMaster}); err != nil {
		t.Fatal(err)
	}
	err = send()
	if !errors.Is(err, ErrNoBroker) || !strings.Contains(err.Error(), "g1 no master online (NRW") {
		t.Fatalf("send with the group's master offline: %v; want ErrNoBroker naming g1 as having no master", err)
	}
}

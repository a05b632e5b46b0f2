package syncpeer

import (
	"context"
	"errors"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
)

// TestCheck: only the IP of the group's slave row may replicate;
// a changed row is asked for again; a Java metaserver (no row sent) lets
// any address in with a warning; an unreachable metaserver refuses.
func TestCheck(t *testing.T) {
	row := Row{Addr: "10.0.0.2:20882", Known: true}
	var fetchErr error
	fetches := 0
	p := &Checker{
		Fetch: func(context.Context) (Row, error) { fetches++; return row, fetchErr },
		Group: func() string { return "g7" }, Slave: Broker, Log: hclog.NewNullLogger(), RefreshEvery: time.Hour,
	}
	p.Set(row)
	addr := func(s string) net.Addr { a, _ := net.ResolveTCPAddr("tcp", s); return a }
	ctx := context.Background()
	if err := p.Check(ctx, addr("10.0.0.2:51000")); err != nil {
		t.Fatalf("the registered slave: %v", err)
	}
	err := p.Check(ctx, addr("10.0.0.9:51000"))
	if err == nil || !strings.Contains(err.Error(), "registers the slave of group g7 at 10.0.0.2:20882") {
		t.Fatalf("another address: %v", err)
	}
	if fetches != 0 {
		t.Fatalf("asked the metaserver %d times within refreshEvery", fetches)
	}
	// The row changed (ReplaceBroker, failover): asked again once refreshEvery passed.
	p.RefreshEvery = 0
	row.Addr = "10.0.0.9:20882"
	if err := p.Check(ctx, addr("10.0.0.9:51000")); err != nil || fetches != 1 {
		t.Fatalf("the moved slave: %v (fetches %d)", err, fetches)
	}
	if err := p.Check(ctx, addr("[::ffff:10.0.0.9]:51000")); err != nil {
		t.Fatalf("an IPv4-mapped address of the slave: %v", err)
	}
	row = Row{Known: true}
	if err := p.Check(ctx, addr("10.0.0.2:51000")); err == nil || !strings.Contains(err.Error(), "has no slave") {
		t.Fatalf("no slave row: %v", err)
	}
	fetchErr = errors.New("connection refused")
	if err := p.Check(ctx, addr("10.0.0.2:51000")); err == nil || !strings.Contains(err.Error(), "cannot ask the metaserver") {
		t.Fatalf("metaserver down: %v", err)
	}
	fetchErr, row = nil, Row{}
	if err := p.Check(ctx, addr("10.0.0.3:51000")); err != nil {
		t.Fatalf("a metaserver that does not send the row: %v", err)
	}
}

// TestCheckDelayNames: a delay master's refusals name the DELAY_SLAVE and
// its role.
func TestCheckDelayNames(t *testing.T) {
	p := &Checker{
		Fetch: func(context.Context) (Row, error) { return Row{Known: true}, nil },
		Group: func() string { return "d1" }, Slave: Delay, RefreshEvery: time.Hour,
	}
	p.Set(Row{Known: true})
	a, _ := net.ResolveTCPAddr("tcp", "10.0.0.2:51000")
	err := p.Check(context.Background(), a)
	if err == nil || !strings.Contains(err.Error(), "delay group d1 has no DELAY_SLAVE") || !strings.Contains(err.Error(), "--role=6") {
		t.Fatalf("no DELAY_SLAVE row: %v", err)
	}
}

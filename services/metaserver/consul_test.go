package metaserver

import (
	"context"
	"fmt"
	"net"
	"os"
	"testing"
	"time"

	"github.com/hashicorp/consul/api"

	"github.com/qmq-go/qmq/client/meta"
	"github.com/qmq-go/qmq/consul"
	"github.com/qmq-go/qmq/consul/consultest"
	"github.com/qmq-go/qmq/internal/testutil"
)

func TestMain(m *testing.M) { os.Exit(consultest.Main(m)) }

// TestConsulRegistrationAndDiscovery runs a metaserver against a real Consul
// agent: it must appear as qmq-metaserver with a passing check, resolve through
// Consul DNS SRV, be found by consul://qmq-metaserver, and leave on shutdown.
func TestConsulRegistrationAndDiscovery(t *testing.T) {
	agent := consultest.Agent(t)
	rec := consultest.NewRecorder(t, agent.HTTPAddr)
	h := startServer(t, func(s *Settings, _ *Dynamic) { s.ConsulAddress, s.AdvertiseIP = rec.Addr, "127.0.0.1" })
	cfg := api.DefaultConfig()
	cfg.Address = agent.HTTPAddr
	client, err := api.NewClient(cfg)
	if err != nil {
		t.Fatal(err)
	}
	var entries []*api.ServiceEntry
	testutil.Eventually(t, 30*time.Second, "qmq-metaserver passing in the catalog", func() bool {
		entries, _, err = client.Health().Service("qmq-metaserver", "", true, nil)
		return err == nil && len(entries) == 1
	})
	if got, want := entries[0].Service.Meta["tcp_port"], fmt.Sprint(h.srv.TCPAddr().(*net.TCPAddr).Port); got != want {
		t.Fatalf("service meta tcp_port = %q, want %q", got, want)
	}
	// The default consul.deregister.critical.after.ms: a killed metaserver
	// leaves the catalog 3 minutes after its check went critical.
	if chs := consultest.Checks(rec.Registrations(entries[0].Service.ID)); len(chs) != 1 || chs[0].DeregisterCriticalServiceAfter != "3m0s" {
		t.Errorf("checks sent: %+v; want the HTTP check with DeregisterCriticalServiceAfter 3m0s", chs)
	}

	dns := fmt.Sprintf("127.0.0.1:%d", agent.Config.Ports.DNS)
	r := &consul.Resolver{DNSAddr: dns, HTTPAddr: "127.0.0.1:1"} // HTTP fallback disabled: DNS must answer
	eps, err := r.Resolve(context.Background(), "qmq-metaserver")
	if err != nil {
		t.Fatalf("DNS SRV: %v", err)
	}
	if eps[0].Addr() != h.httpAddr() {
		t.Fatalf("SRV answer %s, want the metaserver's HTTP address %s", eps[0].Addr(), h.httpAddr())
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	addr, err := meta.Locate(ctx, "consul://qmq-metaserver?dns="+dns)
	if err != nil {
		t.Fatal(err)
	}
	if addr != h.tcpAddr() {
		t.Fatalf("consul://qmq-metaserver located %s, want %s", addr, h.tcpAddr())
	}
	h.stop()
	entries, _, err = client.Health().Service("qmq-metaserver", "", false, nil)
	if err != nil || len(entries) != 0 {
		t.Fatalf("after shutdown the service should be deregistered: %v %d", err, len(entries))
	}
}

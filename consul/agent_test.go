package consul

import (
	"context"
	"errors"
	"github.com/qmq-go/qmq/consul/consultest"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/consul/api"
)

// TestRegisterResolveDeregister runs the metaserver's lifecycle against a real
// agent: register with an HTTP check, wait for passing, resolve via DNS SRV
// and via the HTTP fallback, deregister.
func TestRegisterResolveDeregister(t *testing.T) {
	srv := agent(t)
	t.Logf("agent %s (DNS port %d) started in %s", srv.HTTPAddr, srv.Config.Ports.DNS, consultest.StartupTime().Round(time.Millisecond))
	health, port, hits := healthServer(t, http.StatusOK)
	c := apiClient(t, srv.HTTPAddr)

	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()

	reg := Registration{
		Name:      "qmq-metaserver",
		Address:   "127.0.0.1",
		Port:      port,
		Tags:      []string{"qmq", "meta"},
		Meta:      map[string]string{"tcp_port": "20880"},
		CheckHTTP: health.URL + "/health",
	}
	wantID := "qmq-metaserver-127.0.0.1-" + strconv.Itoa(port)
	deregister, err := Register(ctx, Config{Address: srv.HTTPAddr, Logger: testLogger(t)}, reg)
	if err != nil {
		t.Fatalf("Register: %v", err)
	}
	deregistered := false
	t.Cleanup(func() {
		if !deregistered {
			deregister(context.Background())
		}
	})

	entries := waitHealth(t, c, "qmq-metaserver", true, "qmq-metaserver passing",
		func(es []*api.ServiceEntry) bool { return len(es) == 1 })
	e := entries[0]
	if e.Service.ID != wantID || e.Service.Port != port || e.Service.Address != "127.0.0.1" {
		t.Errorf("catalog entry = id %q %s:%d, want id %q 127.0.0.1:%d", e.Service.ID, e.Service.Address, e.Service.Port, wantID, port)
	}
	if e.Service.Meta["tcp_port"] != "20880" {
		t.Errorf("catalog meta = %v, want tcp_port=20880", e.Service.Meta)
	}
	if len(e.Checks) < 2 { // serfHealth + ours
		t.Errorf("checks = %d, want node and service checks", len(e.Checks))
	}
	for _, ch := range e.Checks {
		if ch.ServiceID == wantID && (ch.Type != "http" || ch.Status != api.HealthPassing) {
			t.Errorf("service check = type %q status %q, want http passing", ch.Type, ch.Status)
		}
	}
	// api.HealthCheck has no Interval/Timeout fields (the agent sends them
	// at top level, the client expects them in Definition), so read raw JSON.
	// DeregisterCriticalServiceAfter is not exposed by any endpoint.
	checks := agentChecks(t, srv.HTTPAddr)
	if ch, ok := checks["service:"+wantID+":http"]; !ok {
		t.Errorf("agent checks %v lack service:%s:http", checks, wantID)
	} else if ch.Interval != "5s" || ch.Timeout != "2s" || ch.Type != "http" {
		t.Errorf("check = %+v, want http interval 5s timeout 2s", ch)
	}
	if hits.Load() == 0 {
		t.Errorf("passing without any request to /health")
	}

	t.Run("DNS", func(t *testing.T) {
		// HTTP points nowhere: only DNS can answer.
		r := &Resolver{DNSAddr: dnsAddrOf(srv.Config.Ports.DNS), HTTPAddr: closedTCPAddr(t), Logger: testLogger(t)}
		start := time.Now()
		eps, err := r.Resolve(ctx, "qmq-metaserver")
		t.Logf("Resolve via DNS took %s: %+v", time.Since(start).Round(time.Microsecond), eps)
		if err != nil {
			t.Fatalf("Resolve: %v", err)
		}
		if len(eps) != 1 || eps[0].Host != "127.0.0.1" || eps[0].Port != port {
			t.Fatalf("endpoints = %+v, want [127.0.0.1:%d]", eps, port)
		}
		if eps[0].Meta != nil {
			t.Errorf("DNS endpoint has Meta %v; expected nil (proves the DNS path answered)", eps[0].Meta)
		}
		if got, want := eps[0].Addr(), "127.0.0.1:"+strconv.Itoa(port); got != want {
			t.Errorf("Addr() = %q, want %q", got, want)
		}
	})

	t.Run("DNSFromURL", func(t *testing.T) {
		service, dns, ok := ParseServiceURL("consul://qmq-metaserver?dns=" + dnsAddrOf(srv.Config.Ports.DNS))
		if !ok {
			t.Fatal("ParseServiceURL rejected a valid URL")
		}
		r := &Resolver{DNSAddr: dns, HTTPAddr: closedTCPAddr(t)}
		eps, err := r.Resolve(ctx, service)
		if err != nil || len(eps) != 1 || eps[0].Port != port {
			t.Fatalf("Resolve(%q via %s) = %+v, %v", service, dns, eps, err)
		}
	})

	for _, tc := range []struct {
		name string
		dns  func(*testing.T) string
	}{
		{"HTTPFallback/DNSPortClosed", closedUDPAddr},
		{"HTTPFallback/DNSNoAnswer", blackholeUDPAddr},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := &Resolver{DNSAddr: tc.dns(t), HTTPAddr: srv.HTTPAddr, DNSTimeout: 500 * time.Millisecond, Logger: testLogger(t)}
			start := time.Now()
			eps, err := r.Resolve(ctx, "qmq-metaserver")
			t.Logf("Resolve with fallback took %s", time.Since(start).Round(time.Millisecond))
			if err != nil {
				t.Fatalf("Resolve: %v", err)
			}
			if len(eps) != 1 || eps[0].Host != "127.0.0.1" || eps[0].Port != port {
				t.Fatalf("endpoints = %+v, want [127.0.0.1:%d]", eps, port)
			}
			if eps[0].Meta["tcp_port"] != "20880" {
				t.Errorf("Meta = %v, want tcp_port=20880", eps[0].Meta)
			}
		})
	}

	t.Run("Deregister", func(t *testing.T) {
		if err := deregister(ctx); err != nil {
			t.Fatalf("deregister: %v", err)
		}
		deregistered = true
		if err := deregister(ctx); err != nil {
			t.Fatalf("second deregister: %v", err)
		}
		services, err := c.Agent().Services()
		if err != nil {
			t.Fatal(err)
		}
		if _, ok := services[wantID]; ok {
			t.Errorf("agent still lists %s", wantID)
		}
		waitHealth(t, c, "qmq-metaserver", false, "qmq-metaserver gone from catalog",
			func(es []*api.ServiceEntry) bool { return len(es) == 0 })
		r := &Resolver{DNSAddr: dnsAddrOf(srv.Config.Ports.DNS), HTTPAddr: srv.HTTPAddr}
		if eps, err := r.Resolve(ctx, "qmq-metaserver"); err == nil {
			t.Errorf("Resolve after deregister = %+v, want error", eps)
		}
	})
}

// TestUnhealthyServiceNotResolved registers an instance whose /health returns
// 500: it stays in the catalog but out of passing results, and Resolve says so.
func TestUnhealthyServiceNotResolved(t *testing.T) {
	srv := agent(t)
	health, port, hits := healthServer(t, http.StatusInternalServerError)
	c := apiClient(t, srv.HTTPAddr)
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()

	const name = "qmq-broker-sick"
	deregister, err := Register(ctx, Config{Address: "http://" + srv.HTTPAddr, Logger: testLogger(t)}, Registration{
		Name: name, Address: "127.0.0.1", Port: port, CheckHTTP: health.URL + "/health",
		Meta: map[string]string{"tcp_port": "20881"},
	})
	if err != nil {
		t.Fatalf("Register: %v", err)
	}
	t.Cleanup(func() {
		if err := deregister(context.Background()); err != nil {
			t.Errorf("deregister: %v", err)
		}
	})

	// Wait until the check has actually run and failed, so the test is not
	// just observing the initial critical state. The agent's local view is
	// used: with the status unchanged (critical -> critical) the agent defers
	// syncing the new Output to the catalog (check_update_interval, 5m).
	checkID := "service:" + name + "-127.0.0.1-" + strconv.Itoa(port) + ":http"
	start := time.Now()
	for {
		ch := agentChecks(t, srv.HTTPAddr)[checkID]
		if hits.Load() > 0 && ch.Status == api.HealthCritical && strings.Contains(ch.Output, "500") {
			t.Logf("check ran and is critical after %s: %q", time.Since(start).Round(time.Millisecond), ch.Output)
			break
		}
		if time.Since(start) > 30*time.Second {
			t.Fatalf("check %s did not run and fail within 30s: hits %d, check %+v", checkID, hits.Load(), ch)
		}
		time.Sleep(200 * time.Millisecond)
	}
	all, _, err := c.Health().Service(name, "", false, nil)
	if err != nil || len(all) != 1 {
		t.Fatalf("catalog entries (any state) = %d, %v; want the registered instance", len(all), err)
	}
	passing, _, err := c.Health().Service(name, "", true, nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(passing) != 0 {
		t.Fatalf("passing entries = %d, want 0", len(passing))
	}

	r := &Resolver{DNSAddr: dnsAddrOf(srv.Config.Ports.DNS), HTTPAddr: srv.HTTPAddr}
	eps, err := r.Resolve(ctx, name)
	if err == nil {
		t.Fatalf("Resolve = %+v, want error", eps)
	}
	t.Logf("Resolve error: %v", err)
	var re *ResolveError
	if !errors.As(err, &re) {
		t.Fatalf("error %T is not a *ResolveError", err)
	}
	for _, want := range []string{
		`"` + name + `"`,
		"DNS " + name + ".service.consul. SRV @" + dnsAddrOf(srv.Config.Ports.DNS),
		"HTTP GET http://" + srv.HTTPAddr + "/v1/health/service/" + name + "?passing: no passing instances",
		"health check passes",
	} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error lacks %q:\n%v", want, err)
		}
	}
}

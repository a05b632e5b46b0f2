package consul

import (
	"context"
	"encoding/json"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hashicorp/consul/api"
	"github.com/hashicorp/go-hclog"
)

func testLogger(t *testing.T) hclog.Logger {
	return hclog.New(&hclog.LoggerOptions{Name: "consul", Level: hclog.Debug, Output: t.Output()})
}

func apiClient(t *testing.T, addr string) *api.Client {
	t.Helper()
	cfg := api.DefaultConfig()
	cfg.Address = addr
	c, err := api.NewClient(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// healthServer serves /health with the given status and counts requests.
func healthServer(t *testing.T, status int) (srv *httptest.Server, port int, hits *atomic.Int64) {
	t.Helper()
	hits = new(atomic.Int64)
	srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/health" {
			http.NotFound(w, r)
			return
		}
		hits.Add(1)
		w.WriteHeader(status)
		w.Write([]byte(http.StatusText(status)))
	}))
	t.Cleanup(srv.Close)
	return srv, srv.Listener.Addr().(*net.TCPAddr).Port, hits
}

// closedTCPAddr returns 127.0.0.1:<port> with nothing listening.
func closedTCPAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	return addr
}

// closedUDPAddr returns 127.0.0.1:<port> with no UDP socket bound: DNS
// queries get ICMP port unreachable, i.e. ECONNREFUSED.
func closedUDPAddr(t *testing.T) string {
	t.Helper()
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := pc.LocalAddr().String()
	pc.Close()
	return addr
}

// blackholeUDPAddr returns the address of a UDP socket that never answers.
func blackholeUDPAddr(t *testing.T) string {
	t.Helper()
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { pc.Close() })
	go func() {
		buf := make([]byte, 2048)
		for {
			if _, _, err := pc.ReadFrom(buf); err != nil {
				return
			}
		}
	}()
	return pc.LocalAddr().String()
}

func dnsAddrOf(port int) string { return net.JoinHostPort("127.0.0.1", strconv.Itoa(port)) }

// waitHealth polls /v1/health/service/<service>[?passing] until cond holds
// for the entries, failing the test after 30 s.
func waitHealth(t *testing.T, c *api.Client, service string, passing bool, what string, cond func([]*api.ServiceEntry) bool) []*api.ServiceEntry {
	t.Helper()
	start := time.Now()
	deadline := start.Add(30 * time.Second)
	var (
		entries []*api.ServiceEntry
		err     error
	)
	for time.Now().Before(deadline) {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		entries, _, err = c.Health().Service(service, "", passing, (&api.QueryOptions{}).WithContext(ctx))
		cancel()
		if err == nil && cond(entries) {
			t.Logf("%s: after %s", what, time.Since(start).Round(time.Millisecond))
			return entries
		}
		time.Sleep(200 * time.Millisecond)
	}
	t.Fatalf("%s: not reached within 30s (passing=%v, last error %v, last entries %d)", what, passing, err, len(entries))
	return nil
}

type rawCheck struct {
	CheckID, Status, Output, ServiceID, Type, Interval, Timeout string
}

// agentChecks returns the agent's local check state (GET /v1/agent/checks).
func agentChecks(t *testing.T, httpAddr string) map[string]rawCheck {
	t.Helper()
	resp, err := http.Get("http://" + httpAddr + "/v1/agent/checks")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var out map[string]rawCheck
	if err := json.NewDecoder(resp.Body).Decode(&out); err != nil {
		t.Fatalf("decode /v1/agent/checks: %v", err)
	}
	return out
}

package consul

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"syscall"
	"testing"
	"time"
)

func TestRegisterAgentDown(t *testing.T) {
	addr := closedTCPAddr(t)
	for _, cfgAddr := range []string{addr, "http://" + addr} {
		t.Run(cfgAddr, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			dereg, err := Register(ctx, Config{Address: cfgAddr}, Registration{Name: "qmq-metaserver", Address: "127.0.0.1", Port: 8080})
			if err == nil {
				t.Fatal("Register succeeded against a closed port")
			}
			if dereg != nil {
				t.Error("deregister func returned together with an error")
			}
			want := fmt.Sprintf("register qmq-metaserver with consul at %s: connection refused; "+
				"is the agent running? set consul.address or CONSUL_HTTP_ADDR", addr)
			if err.Error() != want {
				t.Errorf("error =\n  %v\nwant\n  %s", err, want)
			}
			if !errors.Is(err, syscall.ECONNREFUSED) {
				t.Errorf("errors.Is(err, ECONNREFUSED) = false for %v", err)
			}
			var ce *Error
			if !errors.As(err, &ce) || ce.Op != "register" || ce.Service != "qmq-metaserver" {
				t.Errorf("errors.As(*Error) = %+v", ce)
			}
		})
	}
}

func TestRegisterNoAddress(t *testing.T) {
	t.Setenv("CONSUL_HTTP_ADDR", "")
	_, err := Register(context.Background(), Config{}, Registration{Name: "qmq-metaserver", Port: 8080})
	want := "register qmq-metaserver with consul: no address configured; set consul.address or CONSUL_HTTP_ADDR"
	if err == nil || err.Error() != want {
		t.Fatalf("error = %v, want %q", err, want)
	}
}

func TestRegisterAddressFromEnv(t *testing.T) {
	addr := closedTCPAddr(t)
	t.Setenv("CONSUL_HTTP_ADDR", addr)
	_, err := Register(context.Background(), Config{}, Registration{Name: "qmq-metaserver", Port: 8080})
	if err == nil || !strings.Contains(err.Error(), "at "+addr+": connection refused") {
		t.Fatalf("error = %v, want connection refused at %s", err, addr)
	}
}

func TestRegisterInvalid(t *testing.T) {
	for _, r := range []Registration{{Port: 8080}, {Name: "qmq-metaserver"}, {Name: "x", Port: 70000}} {
		_, err := Register(context.Background(), Config{Address: "127.0.0.1:1"}, r)
		if err == nil || errors.Is(err, syscall.ECONNREFUSED) {
			t.Errorf("Register(%+v) = %v, want a validation error before any request", r, err)
		}
	}
}

func TestRegistrationDefaults(t *testing.T) {
	r := Registration{Name: "qmq-metaserver", Address: "10.0.0.7", Port: 8080, CheckHTTP: "http://10.0.0.7:8080/health"}
	a := r.agentRegistration()
	if a.ID != "qmq-metaserver-10.0.0.7-8080" {
		t.Errorf("ID = %q", a.ID)
	}
	if len(a.Checks) != 1 || a.Checks[0].Interval != "5s" || a.Checks[0].Timeout != "2s" || a.Checks[0].DeregisterCriticalServiceAfter != "3m0s" {
		t.Errorf("checks = %+v, want one HTTP check removing the service after 3m critical", a.Checks)
	}
	if c := (Registration{Name: "n", Port: 1}).agentRegistration().Checks; len(c) != 0 {
		t.Error("check registered without CheckHTTP or CheckTCP")
	}
	r.CheckTCP, r.DeregisterCriticalAfter = "10.0.0.7:20881", 10*time.Second
	a = r.agentRegistration()
	if len(a.Checks) != 2 || a.Checks[1].TCP != "10.0.0.7:20881" || a.Checks[1].CheckID != "service:qmq-metaserver-10.0.0.7-8080:tcp" ||
		a.Checks[0].DeregisterCriticalServiceAfter != "1m0s" || a.Checks[1].DeregisterCriticalServiceAfter != "1m0s" {
		t.Errorf("checks = %+v, want HTTP and TCP, removing the service after Consul's minimum, 1m", a.Checks)
	}
	if id := (Registration{Name: "n", ID: "custom", Port: 1}).serviceID(); id != "custom" {
		t.Errorf("explicit ID ignored: %q", id)
	}
}

func TestResolveNoAgent(t *testing.T) {
	httpAddr := closedTCPAddr(t)
	dnsAddr := closedUDPAddr(t)
	r := &Resolver{DNSAddr: dnsAddr, HTTPAddr: httpAddr}
	start := time.Now()
	_, err := r.Resolve(context.Background(), "qmq-metaserver")
	if err == nil {
		t.Fatal("Resolve succeeded with no agent")
	}
	t.Logf("took %s: %v", time.Since(start).Round(time.Millisecond), err)
	for _, want := range []string{
		`resolve consul service "qmq-metaserver": no healthy instance found`,
		"DNS qmq-metaserver.service.consul. SRV @" + dnsAddr + ":",
		"HTTP GET http://" + httpAddr + "/v1/health/service/qmq-metaserver?passing: connection refused (is the agent running?",
	} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error lacks %q:\n%v", want, err)
		}
	}
	if !errors.Is(err, syscall.ECONNREFUSED) {
		t.Errorf("errors.Is(err, ECONNREFUSED) = false")
	}
}

func TestResolveCanceled(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	r := &Resolver{DNSAddr: blackholeUDPAddr(t), HTTPAddr: closedTCPAddr(t)}
	if _, err := r.Resolve(ctx, "qmq-metaserver"); !errors.Is(err, context.Canceled) {
		t.Fatalf("error = %v, want context.Canceled", err)
	}
}

func TestResolverDefaults(t *testing.T) {
	t.Setenv("CONSUL_HTTP_ADDR", "")
	var r Resolver
	if r.dnsAddr() != "127.0.0.1:8600" || r.httpAddr() != "127.0.0.1:8500" || r.srvName("x") != "x.service.consul." {
		t.Errorf("defaults = %s %s %s", r.dnsAddr(), r.httpAddr(), r.srvName("x"))
	}
	t.Setenv("CONSUL_HTTP_ADDR", "10.1.1.1:8500")
	r.Domain = "dc.example."
	if r.httpAddr() != "10.1.1.1:8500" || r.srvName("x") != "x.service.dc.example." {
		t.Errorf("env/domain = %s %s", r.httpAddr(), r.srvName("x"))
	}
}

func TestParseServiceURL(t *testing.T) {
	for _, tc := range []struct {
		in, service, dns string
		ok               bool
	}{
		{"consul://qmq-metaserver", "qmq-metaserver", "", true},
		{"consul://qmq-metaserver/", "qmq-metaserver", "", true},
		{"CONSUL://qmq_meta", "qmq_meta", "", true},
		{" consul://qmq-metaserver ", "qmq-metaserver", "", true},
		{"consul://qmq-metaserver?dns=10.0.0.1:8600", "qmq-metaserver", "10.0.0.1:8600", true},
		{"consul://qmq-metaserver?dns=10.0.0.1", "qmq-metaserver", "10.0.0.1:8600", true},
		{"consul://qmq-metaserver?dns=consul.local:53", "qmq-metaserver", "consul.local:53", true},
		{"consul://qmq-metaserver?dns=[::1]:8600", "qmq-metaserver", "[::1]:8600", true},
		{"consul://qmq-metaserver?dns=::1", "qmq-metaserver", "[::1]:8600", true},
		{"consul://qmq-metaserver?dns=", "", "", false},
		{"consul://qmq-metaserver?dns=h:0", "", "", false},
		{"consul://qmq-metaserver?dns=h:x", "", "", false},
		{"consul://qmq-metaserver?dsn=10.0.0.1", "", "", false},
		{"consul://qmq-metaserver:8080", "", "", false},
		{"consul://qmq.metaserver", "", "", false},
		{"consul://qmq-metaserver/path", "", "", false},
		{"consul://user@qmq-metaserver", "", "", false},
		{"consul://", "", "", false},
		{"consul:qmq-metaserver", "", "", false},
		{"http://qmq-metaserver", "", "", false},
		{"127.0.0.1:8080", "", "", false},
		{"qmq-metaserver", "", "", false},
		{"", "", "", false},
	} {
		service, dns, ok := ParseServiceURL(tc.in)
		if service != tc.service || dns != tc.dns || ok != tc.ok {
			t.Errorf("ParseServiceURL(%q) = %q, %q, %v; want %q, %q, %v", tc.in, service, dns, ok, tc.service, tc.dns, tc.ok)
		}
	}
}

package consul

import (
	"bytes"
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/hashicorp/go-hclog"
)

// fakeAgent answers register with regStatus and deregister with deregStatus,
// counting deregister calls. It stands in for the agent in error-path tests.
func fakeAgent(t *testing.T, regStatus, deregStatus int, body string) (addr string, deregs *atomic.Int64) {
	deregs = new(atomic.Int64)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch {
		case r.URL.Path == "/v1/agent/service/register":
			w.WriteHeader(regStatus)
			w.Write([]byte(body))
		case strings.HasPrefix(r.URL.Path, "/v1/agent/service/deregister/"):
			deregs.Add(1)
			w.WriteHeader(deregStatus)
			w.Write([]byte(body))
		default:
			http.NotFound(w, r)
		}
	}))
	t.Cleanup(srv.Close)
	return srv.URL, deregs
}

func TestRegisterPermissionDenied(t *testing.T) {
	addr, _ := fakeAgent(t, http.StatusForbidden, 200, "Permission denied: token with AccessorID '00000000' lacks permission 'service:write' on \"qmq-metaserver\"")
	_, err := Register(context.Background(), Config{Address: addr}, Registration{Name: "qmq-metaserver", Port: 8080})
	if err == nil {
		t.Fatal("want error")
	}
	for _, want := range []string{"permission denied (HTTP 403", "set consul.token or CONSUL_HTTP_TOKEN", `service:write on "qmq-metaserver"`} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error lacks %q: %v", want, err)
		}
	}
}

func TestDeregisterNotFoundIsSuccess(t *testing.T) {
	addr, deregs := fakeAgent(t, 200, http.StatusNotFound, "Unknown service ID")
	dereg, err := Register(context.Background(), Config{Address: addr}, Registration{Name: "qmq-metaserver", Port: 8080})
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 3; i++ {
		if err := dereg(context.Background()); err != nil {
			t.Fatalf("deregister #%d: %v", i+1, err)
		}
	}
	if n := deregs.Load(); n != 1 {
		t.Errorf("agent saw %d deregister calls, want 1", n)
	}
}

func TestDeregisterRetriesAfterFailure(t *testing.T) {
	addr, deregs := fakeAgent(t, 200, http.StatusInternalServerError, "boom")
	dereg, err := Register(context.Background(), Config{Address: addr}, Registration{Name: "qmq-metaserver", Port: 8080})
	if err != nil {
		t.Fatal(err)
	}
	err = dereg(context.Background())
	if err == nil || !strings.HasPrefix(err.Error(), "deregister qmq-metaserver from consul at 127.0.0.1:") || !strings.Contains(err.Error(), "HTTP 500: boom") {
		t.Fatalf("error = %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := dereg(ctx); err == nil || !strings.Contains(err.Error(), "canceled") {
		t.Fatalf("deregister with canceled ctx = %v", err)
	}
	if n := deregs.Load(); n != 1 {
		t.Errorf("agent saw %d deregister calls, want 1 (second call had a dead ctx)", n)
	}
}

// TestRegisterLogNamesChecks: the registration's log line says what the
// agent will probe, by kind: a broker's TCP check is not a bare host:port
// glued to an HTTP URL.
func TestRegisterLogNamesChecks(t *testing.T) {
	addr, _ := fakeAgent(t, 200, 200, "")
	for _, c := range []struct {
		reg  Registration
		want string
	}{
		{Registration{Name: "qmq-broker", Port: 20881, CheckTCP: "10.0.0.1:20881"}, `checks="tcp 10.0.0.1:20881 every 5s"`},
		{Registration{Name: "qmq-metaserver", Port: 8080, CheckHTTP: "http://10.0.0.1:8080/health", CheckTCP: "10.0.0.1:20880"},
			`checks="http GET http://10.0.0.1:8080/health every 5s, tcp 10.0.0.1:20880 every 5s"`},
		{Registration{Name: "qmq-x", Port: 1}, "checks=none"},
	} {
		var buf bytes.Buffer
		log := hclog.New(&hclog.LoggerOptions{Output: &buf})
		if _, err := Register(context.Background(), Config{Address: addr, Logger: log}, c.reg); err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(buf.String(), c.want) {
			t.Errorf("%s: log %q lacks %s", c.reg.Name, buf.String(), c.want)
		}
	}
}

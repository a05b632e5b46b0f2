package consultest

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"strings"
	"sync"
	"testing"

	"github.com/hashicorp/consul/api"
)

// Recorder is an HTTP proxy in front of an agent that keeps every service
// registration sent through it. The agent accepts settings it never shows
// again (no endpoint returns a check's DeregisterCriticalServiceAfter), so
// tests read them here, as the agent received them.
type Recorder struct {
	Addr string // host:port to use as the agent's address

	mu   sync.Mutex
	regs []api.AgentServiceRegistration
}

// NewRecorder starts a recording proxy to the agent at agentAddr, stopped
// when t ends.
func NewRecorder(t testing.TB, agentAddr string) *Recorder {
	t.Helper()
	target, err := url.Parse("http://" + agentAddr)
	if err != nil {
		t.Fatal(err)
	}
	r := &Recorder{}
	proxy := httputil.NewSingleHostReverseProxy(target)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		if req.URL.Path == "/v1/agent/service/register" {
			body, _ := io.ReadAll(req.Body)
			req.Body = io.NopCloser(bytes.NewReader(body))
			var reg api.AgentServiceRegistration
			if err := json.Unmarshal(body, &reg); err == nil {
				r.mu.Lock()
				r.regs = append(r.regs, reg)
				r.mu.Unlock()
			}
		}
		proxy.ServeHTTP(w, req)
	}))
	t.Cleanup(srv.Close)
	r.Addr = strings.TrimPrefix(srv.URL, "http://")
	return r
}

// Registrations returns the registrations of service id (all when id is
// ""), oldest first.
func (r *Recorder) Registrations(id string) []api.AgentServiceRegistration {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []api.AgentServiceRegistration
	for _, reg := range r.regs {
		if id == "" || reg.ID == id {
			out = append(out, reg)
		}
	}
	return out
}

// Checks returns every check of regs (Check and Checks).
func Checks(regs []api.AgentServiceRegistration) []*api.AgentServiceCheck {
	var out []*api.AgentServiceCheck
	for _, reg := range regs {
		if reg.Check != nil {
			out = append(out, reg.Check)
		}
		out = append(out, reg.Checks...)
	}
	return out
}

package watchdog

import (
	"context"
	"encoding/json"
	"net"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/qmq-go/qmq/internal/httpguard"
)

// httpServer serves watchdog.http.port (ours): /health for operators and
// checks, /metrics for Prometheus. Port -1 turns it off.
type httpServer struct {
	s   *Server
	ln  *httpguard.Listener
	srv *http.Server
}

func (s *Server) listenHTTP() (*httpServer, error) {
	if s.settings.HTTPPort < 0 {
		return nil, nil
	}
	h := &httpServer{s: s}
	g, err := httpguard.ListenOps(httpguard.Ops{
		Addr: net.JoinHostPort(s.settings.BindHost, strconv.Itoa(s.settings.HTTPPort)),
		Key:  "watchdog.http.port", Port: s.settings.HTTPPort, File: FileWatchdog, Who: "the watchdog",
		Health: h.health, Metrics: s.m.reg, Guard: httpguard.Config{Logger: s.log.Named("http")},
	})
	if err != nil {
		return nil, err
	}
	h.ln, h.srv = g.Listener, g.Server
	return h, nil
}

func (h *httpServer) serve(ctx context.Context) error {
	return httpguard.Serve(ctx, h.srv, h.ln)
}

// healthReport is /health's JSON. Databases are named by url and user;
// passwords never appear.
type healthReport struct {
	// Status is "ok"; "degraded" (503) while the election fails (the
	// metaserver's database, or the Consul agent, cannot be reached), so
	// this watchdog can neither lead nor take over, or while the leader
	// cannot reach the metaserver, so it cannot send. Failing client databases are listed, not fatal:
	// restarting the watchdog would not mend them.
	Status    string `json:"status"`
	Role      string `json:"role"` // "leader" or "follower"
	Node      string `json:"node"`
	Namespace string `json:"namespace"`
	Leader    string `json:"leader,omitempty"` // the node holding the lead, as the election says
	// Elector names the election: the leader_election row or the Consul lock, and where.
	Elector  string `json:"election"`
	Election string `json:"electionError,omitempty"`
	// MetaServer says why the leader cannot send at all: it has no
	// producer because the metaserver cannot be reached. Degraded (503).
	MetaServer string `json:"metaserverError,omitempty"`
	// Databases are the client databases the leader serves (empty on a follower).
	Databases []dbHealth `json:"databases"`
}

func (h *httpServer) health(w http.ResponseWriter, r *http.Request) {
	s := h.s
	rep := healthReport{Status: "ok", Role: "follower", Node: s.node, Namespace: s.settings.Namespace, Elector: s.el.describe(), Databases: []dbHealth{}}
	if s.Leading() {
		rep.Role = "leader"
	}
	ctx, cancel := context.WithTimeout(r.Context(), 2*time.Second)
	defer cancel()
	if node, err := s.el.holder(ctx); err == nil {
		rep.Leader = node
	}
	s.mu.Lock()
	rep.Election = s.electErr
	rep.MetaServer = s.metaErr
	for _, d := range s.dbs {
		rep.Databases = append(rep.Databases, *d)
	}
	s.mu.Unlock()
	slices.SortFunc(rep.Databases, func(a, b dbHealth) int { return strings.Compare(a.URL, b.URL) })
	code := http.StatusOK
	if rep.Election != "" || rep.MetaServer != "" {
		rep.Status, code = "degraded", http.StatusServiceUnavailable
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(rep)
}

package broker

import (
	"context"
	"encoding/json"
	"net"
	"net/http"
	"slices"
	"strconv"

	"github.com/qmq-go/qmq/internal/httpguard"
	"github.com/qmq-go/qmq/protocol"
)

// httpServer serves broker.http.port (ours; QMQ's slaves serve
// slave.server.http.port for the backup): /health for operators, Consul and
// Nomad checks, and /metrics for Prometheus. Port -1 turns it off.
type httpServer struct {
	s   *instance
	ln  *httpguard.Listener
	srv *http.Server
}

func (s *instance) listenHTTP() (*httpServer, error) {
	if s.settings.HTTPPort < 0 {
		return nil, nil
	}
	h := &httpServer{s: s}
	g, err := httpguard.ListenOps(httpguard.Ops{
		Addr: net.JoinHostPort(s.settings.BindHost, strconv.Itoa(s.settings.HTTPPort)),
		Key:  "broker.http.port", Port: s.settings.HTTPPort, File: FileBroker, Who: "the broker",
		Health: h.health, Metrics: s.m.reg, Extra: map[string]http.HandlerFunc{"/consumers": h.consumers}, Guard: s.settings.Limits.HTTP(s.log.Named("http")),
	})
	if err != nil {
		return nil, err
	}
	h.ln, h.srv = g.Listener, g.Server
	return h, nil
}

// HTTPAddr is the bound address of broker.http.port (nil when turned off).
func (s *instance) HTTPAddr() net.Addr {
	if s.http == nil {
		return nil
	}
	return s.http.ln.Addr()
}

func (h *httpServer) serve(ctx context.Context) error {
	return httpguard.Serve(ctx, h.srv, h.ln)
}

// healthReport is /health's JSON.
type healthReport struct {
	Status string `json:"status"` // "ok"; "starting" until the role is known, "degraded" while the disk is full (503)
	Group  string `json:"group,omitempty"`
	Role   string `json:"role,omitempty"`
	// Online: a master has registered ONLINE (it takes clients); a slave,
	// which registers nothing (as in QMQ), is following its master
	// (masterConnected says whether the link is up right now).
	Online bool   `json:"online"`
	State  string `json:"state,omitempty"` // master: RW, or R while its slave lags (mark_readonly)
	// Readonly: a master producers are not sent to: its slave lags (state R)
	// or MarkReadonlyBrokerGroup covers every subject ("*"). ReadonlySubjects
	// are the subjects MarkReadonlyBrokerGroup names for this group, as the
	// metaserver last said (absent from a QMQ metaserver, which does not say).
	Readonly         bool     `json:"readonly"`
	ReadonlySubjects []string `json:"readonlySubjects,omitempty"`

	MessageLogEnd int64 `json:"messageLogEnd"`
	ActionLogEnd  int64 `json:"actionLogEnd"`

	// Master: its slave as last heard. Slave: its master and how far behind it is.
	Slave string `json:"slave,omitempty"`
	// SlaveAuthenticated: the slave proved sync.secret (false without one).
	SlaveAuthenticated *bool  `json:"slaveAuthenticated,omitempty"`
	SlaveLagBytes      *int64 `json:"slaveLagBytes,omitempty"`
	SlaveLagMillis     *int64 `json:"slaveLagMillis,omitempty"`
	Master             string `json:"master,omitempty"`
	MasterConnected    *bool  `json:"masterConnected,omitempty"`
	BehindBytes        *int64 `json:"behindBytes,omitempty"`
	LastError          string `json:"lastError,omitempty"`

	// DiskFull is why the store refuses new messages for lack of disk space
	// (disk.free.min.bytes, or a segment the disk could not allocate).
	DiskFull string `json:"diskFull,omitempty"`
}

// health reports the role and replication state: what the manual failover
// runbook reads ("wait for slaveLagBytes 0") and what checks probe.
func (h *httpServer) health(w http.ResponseWriter, _ *http.Request) {
	s := h.s
	rep := healthReport{Status: "ok", Group: s.Group(), Online: s.online.Load()}
	rep.MessageLogEnd, rep.ActionLogEnd = s.store.MessageLogEnd(), s.store.ActionLogEnd()
	code := http.StatusOK
	switch role := s.role.Load(); role {
	case roleUnknown:
		rep.Status, code = "starting", http.StatusServiceUnavailable
	default:
		rep.Role = roleName(role)
	}
	if full := s.store.DiskFull(); full != nil {
		rep.DiskFull = full.Error()
		if rep.Status == "ok" {
			rep.Status, code = "degraded", http.StatusServiceUnavailable
		}
	}
	if r := s.replica.Load(); r != nil {
		switch {
		case r.master != nil:
			rep.State = "RW"
			if s.brokerState() != protocol.BrokerStateRW {
				rep.State = "R"
			}
			if marked := s.markedReadonly.Load(); marked != nil {
				rep.ReadonlySubjects = *marked
			}
			rep.Readonly = rep.State == "R" || slices.Contains(rep.ReadonlySubjects, "*")
			lag := r.master.Lag()
			rep.Slave = lag.Slave
			if lag.Slave != "" {
				rep.SlaveAuthenticated = &lag.Authenticated
			}
			if lag.MessageBytes >= 0 {
				rep.SlaveLagBytes = &lag.MessageBytes
			}
			if lag.MessageDelay >= 0 {
				ms := lag.MessageDelay.Milliseconds()
				rep.SlaveLagMillis = &ms
			}
		case r.slave != nil:
			rep.Online = true
			st := r.slave.Status()
			rep.Master, rep.MasterConnected, rep.LastError = st.Master, &st.Connected, st.LastError
			if st.MasterMessageEnd >= 0 {
				behind := max(st.MasterMessageEnd-st.MessageEnd, 0) + max(st.MasterActionEnd-st.ActionEnd, 0)
				rep.BehindBytes = &behind
			}
		}
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(rep)
}

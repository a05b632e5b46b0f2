package delay

import (
	"context"
	"encoding/json"
	"net"
	"net/http"
	"strconv"
	"time"

	"github.com/qmq-go/qmq/internal/httpguard"
	"github.com/qmq-go/qmq/protocol"
)

// httpServer serves delay.http.port (ours): /health for operators and
// checks, /metrics for Prometheus, /subjects for the console (the pending
// messages per subject). Port -1 turns it off.
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
		Key:  "delay.http.port", Port: s.settings.HTTPPort, File: FileDelay, Who: "the delay server",
		Health: h.health, Metrics: s.m.reg, Guard: s.settings.Limits.HTTP(s.log.Named("http")),
		Extra: map[string]http.HandlerFunc{"/subjects": h.subjects},
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

// healthReport is /health's JSON.
type healthReport struct {
	Status string `json:"status"` // "ok"; "starting" until registered (503), "degraded" while the disk is full (503)
	Group  string `json:"group,omitempty"`
	Role   string `json:"role,omitempty"`
	Online bool   `json:"online"` // ONLINE acknowledged: delay messages are taken
	// Pending is how many stored messages are scheduled and not yet
	// dispatched or cancelled, in the whole store (up to two years ahead);
	// PendingSubjects how many subjects they belong to (/subjects lists
	// them). PendingInWindow is the part due within the store's loaded
	// window (load.in.advance.min ahead), held in memory.
	Pending         int64 `json:"pending"`
	PendingSubjects int   `json:"pendingSubjects"`
	PendingInWindow int64 `json:"pendingInWindow"`
	// Dispatched is how many messages real-time brokers acknowledged since start.
	Dispatched int64 `json:"dispatched"`
	// DueLagMillis is how late the oldest due message not yet acknowledged
	// by a real-time broker is (0: nothing is overdue).
	DueLagMillis int64 `json:"dueLagMillis"`
	// Parked is how many due messages wait for a retry after a failed send.
	Parked int64 `json:"parked"`
	// DispatchWaitMillis is how long dispatching has been holding due
	// messages back until the slave confirms the dispatch log
	// (wait.slave.wrote; 0: not waiting). A master cut off from its slave
	// shows it growing.
	DispatchWaitMillis int64 `json:"dispatchWaitingForSlaveMillis"`
	// DispatchWithoutSlave: the slave has not confirmed the dispatch log
	// for wait.slave.wrote.timeout.ms while this server stayed the group's
	// master, and dispatching goes on without it until it does (a failover
	// meanwhile sends those messages again).
	DispatchWithoutSlave bool   `json:"dispatchWithoutSlave,omitempty"`
	DiskFull             string `json:"diskFull,omitempty"`
	// Slave is the DELAY_MASTER's view of its slave; Master the
	// DELAY_SLAVE's view of its master (replication).
	Slave  *slaveHealth  `json:"slave,omitempty"`
	Master *masterHealth `json:"master,omitempty"`
}

// slaveHealth is a master's view of its slave's copy.
type slaveHealth struct {
	Address        string `json:"address,omitempty"` // "" until a slave has connected
	LagBytes       int64  `json:"lagBytes"`          // message-log bytes the slave lacks (-1: unknown)
	DispatchLag    int64  `json:"dispatchLagBytes"`  // dispatch-log bytes the slave lacks (-1: unknown)
	LastRequestAgo int64  `json:"lastRequestAgoMillis"`
	WaitSlaveWrote bool   `json:"waitSlaveWrote"`
}

// masterHealth is a slave's view of its master.
type masterHealth struct {
	Address       string `json:"address"`
	Connected     bool   `json:"connected"`
	BehindBytes   int64  `json:"behindBytes"` // message-log bytes behind the master's last known end (-1: unknown)
	CaughtUp      bool   `json:"caughtUp"`
	LastError     string `json:"lastError,omitempty"`
	LastContactMs int64  `json:"lastContactAgoMillis"` // -1: never
}

func (h *httpServer) health(w http.ResponseWriter, _ *http.Request) {
	s := h.s
	st := s.store.Stats()
	rep := healthReport{Status: "ok", Group: s.Group(), Online: s.online.Load(),
		Pending: st.Pending, PendingSubjects: st.Subjects, PendingInWindow: st.Scheduled,
		Dispatched: s.dispatched.Load(), DueLagMillis: s.dueLag().Milliseconds(), Parked: s.parked.Load(),
		DispatchWaitMillis: s.gateWaiting().Milliseconds(), DispatchWithoutSlave: s.dispatchWithoutSlave.Load()}
	code := http.StatusOK
	if role := s.role.Load(); role == roleUnknown {
		rep.Status, code = "starting", http.StatusServiceUnavailable
	} else {
		rep.Role = protocol.RoleName(role)
	}
	if r := s.replica.Load(); r != nil {
		rep.Slave, rep.Master = r.health(s.settings.WaitSlaveWrote)
	}
	if full := s.diskFull.Load(); full != nil {
		rep.DiskFull = *full
		if rep.Status == "ok" {
			rep.Status, code = "degraded", http.StatusServiceUnavailable
		}
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(rep)
}

// subjectsReport is /subjects' JSON: the pending messages of the whole
// store per subject, by subject name.
type subjectsReport struct {
	Group    string           `json:"group,omitempty"`
	Role     string           `json:"role,omitempty"`
	Pending  int64            `json:"pending"`
	Subjects []subjectPending `json:"subjects"`
}

type subjectPending struct {
	Subject string `json:"subject"`
	Pending int64  `json:"pending"`
	// EarliestDue is the earliest schedule time among them (RFC 3339, UTC,
	// ms). When EarliestDueExact is false the earliest one was delivered
	// or cancelled and the next is not tracked: the time is a lower bound
	// less than one bucket (segment.scale.minute) before the true one.
	EarliestDue       string `json:"earliestDue"`
	EarliestDueMillis int64  `json:"earliestDueMillis"`
	EarliestDueExact  bool   `json:"earliestDueExact"`
}

func (h *httpServer) subjects(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		w.Header().Set("Allow", "GET, HEAD")
		http.Error(w, "/subjects is read-only: use GET", http.StatusMethodNotAllowed)
		return
	}
	s := h.s
	subs := s.store.Subjects()
	rep := subjectsReport{Group: s.Group(), Subjects: make([]subjectPending, 0, len(subs))}
	if role := s.role.Load(); role != roleUnknown {
		rep.Role = protocol.RoleName(role)
	}
	for _, x := range subs {
		rep.Pending += x.Pending
		sp := subjectPending{Subject: x.Subject, Pending: x.Pending, EarliestDueMillis: x.EarliestDue, EarliestDueExact: x.EarliestExact}
		if x.EarliestDue > 0 { // 0: its messages went while the list was made
			sp.EarliestDue = time.UnixMilli(x.EarliestDue).UTC().Format("2006-01-02T15:04:05.000Z07:00")
		}
		rep.Subjects = append(rep.Subjects, sp)
	}
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(rep)
}

package backup

import (
	"encoding/json"
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus/promhttp"
)

func promHandler(m *metrics) http.Handler {
	return promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{})
}

// healthReport is /health's JSON.
type healthReport struct {
	// Status: "ok"; "starting" until the metaserver named the slave and the
	// backup connected (503); "degraded" while the store refuses writes or
	// the slave cannot be followed (503), with the reasons.
	Status        string   `json:"status"`
	Reasons       []string `json:"reasons,omitempty"`
	Group         string   `json:"group,omitempty"`
	Slave         string   `json:"slave,omitempty"`
	MessageOffset int64    `json:"messageOffset"`
	ActionOffset  int64    `json:"actionOffset"`
	Lag           Lag      `json:"lag"`
	// StoreFailingSince is when the store's writes started failing (absent: they succeed).
	StoreFailingSince *time.Time `json:"storeFailingSince,omitempty"`
	// SlaveFailingSince is when following the slave started failing.
	SlaveFailingSince *time.Time `json:"slaveFailingSince,omitempty"`
	UnresolvedAcks    int64      `json:"unresolvedAcks"`
	PendingPulls      int64      `json:"pendingPulls"`
}

// report is /health's answer now.
func (s *Server) report() healthReport {
	f := s.f
	t, _ := f.target()
	f.mu.Lock()
	conn, store := f.conn, f.storeErr
	f.mu.Unlock()
	rep := healthReport{Status: "ok", Group: t.group, Slave: t.addr, MessageOffset: f.msgOff.Load(), ActionOffset: f.actOff.Load(),
		Lag: f.lag(), UnresolvedAcks: f.unresolvedAcks.Load(), PendingPulls: f.pending.Load()}
	if metaErr := s.reg.lastError(); metaErr != "" {
		rep.Reasons = append(rep.Reasons, "metaserver: "+metaErr)
	}
	if store.bad {
		since := store.since
		rep.StoreFailingSince = &since
		rep.Reasons = append(rep.Reasons, "store: writes fail, the checkpoint waits and they are retried with backoff: "+store.reason)
	}
	if conn.bad {
		since := conn.since
		rep.SlaveFailingSince = &since
		rep.Reasons = append(rep.Reasons, "slave: "+conn.reason)
	}
	switch {
	case t.addr == "" || !f.started.Load():
		rep.Status = "starting"
	case len(rep.Reasons) > 0:
		rep.Status = "degraded"
	}
	return rep
}

func (s *Server) health(w http.ResponseWriter, r *http.Request) {
	rep := s.report()
	w.Header().Set("Content-Type", "application/json")
	if rep.Status != "ok" {
		w.WriteHeader(http.StatusServiceUnavailable)
	}
	_ = json.NewEncoder(w).Encode(rep)
}

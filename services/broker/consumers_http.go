package broker

import (
	"encoding/json"
	"net/http"
	"slices"

	"github.com/qmq-go/qmq/storage/pulllog"
)

// consumersReport is /consumers' JSON: every subject this broker stores
// and, for each consumer group that pulled it here, how far the group got.
// The console reads it for backlog and lag per consumer group; QMQ's
// brokers have no such endpoint (its console reads the backup's tables).
type consumersReport struct {
	Subjects []subjectProgress `json:"subjects"`
}

type subjectProgress struct {
	Subject string `json:"subject"`
	// MinSequence and MaxSequence bound the consumer log kept here (-1: empty).
	MinSequence int64           `json:"minSequence"`
	MaxSequence int64           `json:"maxSequence"`
	Groups      []groupProgress `json:"groups"`
}

type groupProgress struct {
	Group     string `json:"group"`
	Broadcast bool   `json:"broadcast"`
	// MaxPulledSequence is the last consumer-log sequence the group pulled
	// (-1: none); Backlog the messages stored after it, not yet pulled.
	MaxPulledSequence int64              `json:"maxPulledSequence"`
	Backlog           int64              `json:"backlog"`
	Consumers         []consumerProgress `json:"consumers"`
}

type consumerProgress struct {
	ConsumerID string `json:"consumerId"`
	PullSeq    int64  `json:"pullSeq"` // the consumer's own pull sequences
	AckSeq     int64  `json:"ackSeq"`
	Unacked    int64  `json:"unacked"` // pulled, not yet acknowledged
	LastActive int64  `json:"lastActiveMillis"`
}

// consumers answers /consumers (read-only, like /health).
func (h *httpServer) consumers(w http.ResponseWriter, _ *http.Request) {
	st := h.s.store
	rep := consumersReport{Subjects: []subjectProgress{}}
	bySubject := map[string]*subjectProgress{}
	subject := func(name string) *subjectProgress {
		if p := bySubject[name]; p != nil {
			return p
		}
		rep.Subjects = append(rep.Subjects, subjectProgress{Subject: name, MinSequence: st.MinSequence(name), MaxSequence: st.MaxSequence(name), Groups: []groupProgress{}})
		p := &rep.Subjects[len(rep.Subjects)-1]
		bySubject[name] = p
		return p
	}
	var groups []pulllog.GroupKey
	st.PullLog(func(t *pulllog.Table) { groups = t.Groups() })
	names := st.Subjects()
	for _, gk := range groups {
		names = append(names, gk.Subject)
	}
	slices.Sort(names)
	names = slices.Compact(names)
	// Pointers into rep.Subjects stay valid: it is sized before any is taken.
	rep.Subjects = make([]subjectProgress, 0, len(names))
	for _, n := range names {
		subject(n)
	}
	st.PullLog(func(t *pulllog.Table) {
		for _, gk := range groups {
			p := subject(gk.Subject)
			g := groupProgress{Group: gk.Group, MaxPulledSequence: -1, Consumers: []consumerProgress{}}
			if seq, ok := t.GroupMaxPulledMsgSeq(gk.Subject, gk.Group); ok {
				g.MaxPulledSequence = seq
			}
			g.Broadcast, _ = t.IsBroadcast(gk.Subject, gk.Group)
			g.Backlog = max(p.MaxSequence-g.MaxPulledSequence, 0)
			for _, id := range t.Consumers(gk.Subject, gk.Group) {
				c, ok := t.Consumer(gk.Subject, gk.Group, id)
				if !ok {
					continue
				}
				var unacked int64
				for _, r := range t.Unacked(gk.Subject, gk.Group, id) {
					unacked += r.Count
				}
				g.Consumers = append(g.Consumers, consumerProgress{ConsumerID: id, PullSeq: c.PullSeq, AckSeq: c.AckSeq, Unacked: unacked, LastActive: c.LastActive.UnixMilli()})
			}
			p.Groups = append(p.Groups, g)
		}
	})
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(rep)
}

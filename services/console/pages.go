package console

import (
	"context"
	"net/http"
	"sort"
	"strings"
	"sync"
	"time"
)

// ctx bounds a page's fetches: a slow server shows as an error on the
// page, not as a hung page.
func (s *Server) ctx(r *http.Request) (context.Context, context.CancelFunc) {
	return context.WithTimeout(r.Context(), s.settings.FetchTimeout+time.Second)
}

func (s *Server) clusterPage(w http.ResponseWriter, r *http.Request) {
	ctx, cancel := s.ctx(r)
	defer cancel()
	v := s.src.cluster(ctx)
	s.render(w, r, http.StatusOK, "cluster", v)
}

// subjectRow is a line of the subjects page.
type subjectRow struct {
	Subject      string
	BrokerGroups []string
	Stored       int64 // messages in the consumer logs kept, over every group
	ProduceRate  float64
	ConsumeRate  float64
	Groups       []groupBacklog
}

type groupBacklog struct {
	Group     string
	Backlog   int64
	Broadcast bool
}

type subjectsView struct {
	Filter   string
	Rows     []subjectRow
	MetaErr  string
	Problems []string
}

func (s *Server) subjectsPage(w http.ResponseWriter, r *http.Request) {
	ctx, cancel := s.ctx(r)
	defer cancel()
	v := subjectsView{Filter: r.Form.Get("subject")}
	routes, err := s.src.meta("").ListSubjectRoutes(ctx)
	if err != nil {
		v.MetaErr = err.Error()
	}
	rows := map[string]*subjectRow{}
	row := func(name string) *subjectRow {
		if rows[name] == nil {
			rows[name] = &subjectRow{Subject: name}
		}
		return rows[name]
	}
	for _, rt := range routes {
		row(rt.Subject).BrokerGroups = rt.BrokerGroups
	}
	prog, problems := s.src.progress(ctx)
	v.Problems = problems
	pulled := map[string]int64{}
	backlog := map[[2]string]*groupBacklog{}
	for _, p := range prog {
		for _, sp := range p.Subjects {
			sr := row(sp.Subject)
			if sp.MaxSequence >= 0 {
				sr.Stored += sp.MaxSequence - max(sp.MinSequence, 0) + 1
			}
			for _, g := range sp.Groups {
				pulled[sp.Subject] += g.MaxPulledSequence + 1
				k := [2]string{sp.Subject, g.Group}
				if backlog[k] == nil {
					backlog[k] = &groupBacklog{Group: g.Group, Broadcast: g.Broadcast}
				}
				backlog[k].Backlog += g.Backlog
			}
		}
	}
	for k, b := range backlog {
		rows[k[0]].Groups = append(rows[k[0]].Groups, *b)
	}
	now := time.Now()
	for name, sr := range rows {
		if v.Filter != "" && !strings.Contains(name, v.Filter) {
			continue
		}
		var produced int64
		for _, p := range prog {
			for _, sp := range p.Subjects {
				if sp.Subject == name {
					produced += sp.MaxSequence + 1
				}
			}
		}
		sr.ProduceRate, sr.ConsumeRate = s.rates.observe(name, now, produced, pulled[name])
		sort.Slice(sr.Groups, func(i, j int) bool { return sr.Groups[i].Group < sr.Groups[j].Group })
		v.Rows = append(v.Rows, *sr)
	}
	sort.Slice(v.Rows, func(i, j int) bool { return v.Rows[i].Subject < v.Rows[j].Subject })
	s.render(w, r, http.StatusOK, "subjects", v)
}

// rateSampler turns the counters seen on successive page views into rates:
// the console keeps no poller of its own, so a rate shows from the second
// view on. It holds one sample per subject, at most maxRateSubjects.
type rateSampler struct {
	mu      sync.Mutex
	samples map[string]rateSample
}

type rateSample struct {
	at                time.Time
	produced, pulled  int64
	produceR, consumR float64
}

const maxRateSubjects = 100_000

func newRateSampler() *rateSampler { return &rateSampler{samples: map[string]rateSample{}} }

// observe records the counters of subject and returns the rates since the
// previous sample at least a second old (-1: none yet).
func (rs *rateSampler) observe(subject string, now time.Time, produced, pulled int64) (float64, float64) {
	rs.mu.Lock()
	defer rs.mu.Unlock()
	prev, ok := rs.samples[subject]
	if !ok {
		if len(rs.samples) >= maxRateSubjects {
			clear(rs.samples)
		}
		rs.samples[subject] = rateSample{at: now, produced: produced, pulled: pulled, produceR: -1, consumR: -1}
		return -1, -1
	}
	dt := now.Sub(prev.at).Seconds()
	if dt < 1 {
		return prev.produceR, prev.consumR
	}
	cur := rateSample{at: now, produced: produced, pulled: pulled,
		produceR: max(float64(produced-prev.produced), 0) / dt, consumR: max(float64(pulled-prev.pulled), 0) / dt}
	rs.samples[subject] = cur
	return cur.produceR, cur.consumR
}

// groupsView is the consumer-groups page: every group with its backlog,
// or, for one subject, its groups' clients.
type groupsView struct {
	Subject, Group string
	All            []groupLine
	Groups         []groupDetail
	Err            string
	Problems       []string
	Now            string
}

type groupLine struct {
	Subject, Group string
	Backlog        int64
	Consumers      int
}

type groupDetail struct {
	Group     string
	Backlog   int64
	Broadcast bool
	Clients   []clientLine
}

type clientLine struct {
	ClientID, Room, AppCode string
	State                   string // ONLINE / OFFLINE (forced state at the metaserver)
	Active                  bool   // pulled within the last minute
	LastActive              int64
	Unacked                 int64
	BrokerGroups            []string
}

func (s *Server) groupsPage(w http.ResponseWriter, r *http.Request) {
	ctx, cancel := s.ctx(r)
	defer cancel()
	v := groupsView{Subject: r.Form.Get("subject"), Group: r.Form.Get("group"), Now: time.Now().UTC().Format("2006-01-02T15:04")}
	prog, problems := s.src.progress(ctx)
	v.Problems = problems
	if v.Subject == "" {
		lines := map[[2]string]*groupLine{}
		for _, p := range prog {
			for _, sp := range p.Subjects {
				for _, g := range sp.Groups {
					k := [2]string{sp.Subject, g.Group}
					if lines[k] == nil {
						lines[k] = &groupLine{Subject: sp.Subject, Group: g.Group}
					}
					lines[k].Backlog += g.Backlog
					lines[k].Consumers += len(g.Consumers)
				}
			}
		}
		for _, l := range lines {
			v.All = append(v.All, *l)
		}
		sort.Slice(v.All, func(i, j int) bool {
			if v.All[i].Subject != v.All[j].Subject {
				return v.All[i].Subject < v.All[j].Subject
			}
			return v.All[i].Group < v.All[j].Group
		})
		s.render(w, r, http.StatusOK, "groups", v)
		return
	}
	known, err := s.src.subjectConsumers(ctx, v.Subject)
	if err != nil {
		v.Err = err.Error()
	}
	details := map[string]*groupDetail{}
	detail := func(g string) *groupDetail {
		if details[g] == nil {
			details[g] = &groupDetail{Group: g}
		}
		return details[g]
	}
	clients := map[[2]string]*clientLine{}
	client := func(g, id string) *clientLine {
		k := [2]string{g, id}
		if clients[k] == nil {
			clients[k] = &clientLine{ClientID: id, State: "—"}
		}
		return clients[k]
	}
	for _, kg := range known {
		detail(kg.ConsumerGroup)
		for _, ep := range kg.EndPoint {
			id, room, app := parseEndpoint(ep)
			c := client(kg.ConsumerGroup, id)
			c.Room, c.AppCode = room, app
		}
	}
	groupNames := make([]string, 0, len(prog))
	for bg := range prog {
		groupNames = append(groupNames, bg)
	}
	sort.Strings(groupNames)
	for _, bg := range groupNames {
		for _, sp := range prog[bg].Subjects {
			if sp.Subject != v.Subject {
				continue
			}
			for _, g := range sp.Groups {
				d := detail(g.Group)
				d.Backlog += g.Backlog
				d.Broadcast = g.Broadcast
				for _, c := range g.Consumers {
					cl := client(g.Group, c.ConsumerID)
					cl.Unacked += c.Unacked
					cl.LastActive = max(cl.LastActive, c.LastActive)
					cl.BrokerGroups = append(cl.BrokerGroups, bg)
				}
			}
		}
	}
	// One state query per client, a few at a time: the metaserver answers
	// each from memory, but a group may have hundreds of clients.
	var wg sync.WaitGroup
	sem := make(chan struct{}, 8)
	for k, c := range clients {
		c.Active = time.Since(time.UnixMilli(c.LastActive)) < time.Minute
		wg.Add(1)
		go func() {
			defer wg.Done()
			sem <- struct{}{}
			defer func() { <-sem }()
			if st, err := s.src.onOffline(ctx, c.ClientID, v.Subject, k[0], ""); err == nil {
				c.State = st
			}
		}()
	}
	wg.Wait()
	for k, c := range clients {
		detail(k[0]).Clients = append(detail(k[0]).Clients, *c)
	}
	for name, d := range details {
		if v.Group != "" && name != v.Group {
			continue
		}
		sort.Slice(d.Clients, func(i, j int) bool { return d.Clients[i].ClientID < d.Clients[j].ClientID })
		v.Groups = append(v.Groups, *d)
	}
	sort.Slice(v.Groups, func(i, j int) bool { return v.Groups[i].Group < v.Groups[j].Group })
	s.render(w, r, http.StatusOK, "groups", v)
}

// parseEndpoint reads the metaserver's "qmq://clientId?room=R&appCode=A".
func parseEndpoint(ep string) (id, room, app string) {
	rest := strings.TrimPrefix(ep, "qmq://")
	id, q, _ := strings.Cut(rest, "?")
	for _, kv := range strings.Split(q, "&") {
		k, val, _ := strings.Cut(kv, "=")
		switch k {
		case "room":
			room = val
		case "appCode":
			app = val
		}
	}
	return id, room, app
}

// delayView is the delay page: each delay server's /health, and each
// delay group's pending messages per subject.
type delayView struct {
	Servers  []serverView
	Groups   []delaySubjects
	MetaErr  string
	PortsErr string
}

func (s *Server) delayPage(w http.ResponseWriter, r *http.Request) {
	ctx, cancel := s.ctx(r)
	defer cancel()
	c := s.src.cluster(ctx)
	v := delayView{MetaErr: c.MetaErr, PortsErr: c.PortsErr}
	for _, sv := range c.Servers {
		if sv.IsDelay() {
			v.Servers = append(v.Servers, sv)
		}
	}
	v.Groups = s.src.delayGroups(ctx, v.Servers)
	s.render(w, r, http.StatusOK, "delay", v)
}

type watchdogPageView struct {
	Watchdogs  []watchdogView
	Configured bool
}

func (s *Server) watchdogPage(w http.ResponseWriter, r *http.Request) {
	ctx, cancel := s.ctx(r)
	defer cancel()
	v := watchdogPageView{Configured: len(s.settings.WatchdogHTTP) > 0, Watchdogs: s.src.watchdogs(ctx)}
	s.render(w, r, http.StatusOK, "watchdog", v)
}

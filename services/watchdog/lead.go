package watchdog

import (
	"context"
	"fmt"
	"time"

	"github.com/hashicorp/go-hclog"
	"golang.org/x/sync/errgroup"

	"github.com/qmq-go/qmq/client"
	"github.com/qmq-go/qmq/internal/lograte"
)

// dbHealth is what /health says of one client database.
type dbHealth struct {
	URL      string    `json:"url"`
	User     string    `json:"user"`
	State    string    `json:"state"` // "unknown" until scanned, then "ok" or "failing"
	Error    string    `json:"error,omitempty"`
	Pending  int64     `json:"pending"` // rows with status 0 at the start of the last scan
	Resent   int64     `json:"resent"`  // since this watchdog took the lead
	Failed   int64     `json:"failed"`
	Invalid  int64     `json:"invalid"`
	Blocked  int64     `json:"blocked"`
	LastScan time.Time `json:"lastScan,omitzero"`
	// LastSendError is why the last round's failed sends failed (no
	// broker group for the subject, no broker answering...); cleared by a
	// round that resends without failures.
	LastSendError string `json:"lastSendError,omitempty"`
}

// lead is the leader's work until ctx ends (the lead is lost or the
// watchdog stops): re-read datasource_config every refreshInterval, scan
// every client database every checkInterval. It owns the databases' pools
// and closes them when it ends, so a follower holds no connection.
func (s *Server) lead(ctx context.Context) {
	tasks := map[string]*dbTask{}
	defer func() {
		for url, t := range tasks {
			_ = t.db.Close()
			s.m.forget(url)
		}
		s.mu.Lock()
		s.dbs = map[string]*dbHealth{}
		s.metaErr = ""
		s.mu.Unlock()
	}()
	var refreshed time.Time
	var listLog, prodLog lograte.Limiter
	listLog.Interval, prodLog.Interval = s.settings.CheckInterval, s.settings.CheckInterval
	for ctx.Err() == nil {
		if refreshed.IsZero() || time.Since(refreshed) >= s.settings.RefreshInterval {
			if err := s.refresh(ctx, tasks); err != nil {
				if ctx.Err() != nil {
					return
				}
				listLog.Log(s.log, hclog.Error, "cannot read datasource_config; serving the databases known so far", "error", err)
			} else {
				refreshed = time.Now()
			}
		}
		if p, err := s.getProducer(ctx); err != nil {
			if ctx.Err() != nil {
				return
			}
			prodLog.Log(s.log, hclog.Error, "cannot create the producer (is the metaserver up?); rows wait for the next round",
				"meta.server.endpoint", s.settings.MetaEndpoint, "error", err)
			s.setMetaErr(fmt.Errorf("cannot create the producer: is the metaserver at meta.server.endpoint=%s up? rows wait until it is: %w", s.settings.MetaEndpoint, err))
		} else {
			s.setMetaErr(nil)
			s.round(ctx, tasks, p)
		}
		timer := time.NewTimer(s.settings.CheckInterval)
		select {
		case <-ctx.Done():
		case <-timer.C:
		}
		timer.Stop()
	}
}

// refresh re-reads datasource_config: opens pools for new rows, closes
// those of rows gone or offline, and reopens those whose login changed.
func (s *Server) refresh(ctx context.Context, tasks map[string]*dbTask) error {
	lctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	rows, err := s.meta.clientDBs(lctx, s.settings.Namespace)
	cancel()
	if err != nil {
		return err
	}
	seen := map[string]bool{}
	for _, row := range rows {
		seen[row.URL], seen[redactURL(row.URL)] = true, true
		c, err := parseClientDB(row, s.settings.Table)
		if err != nil {
			s.log.Error("datasource_config row skipped", "error", err)
			s.setHealth(redactURL(row.URL), func(h *dbHealth) { h.User, h.State, h.Error = row.User, "failing", err.Error() })
			continue
		}
		if t := tasks[row.URL]; t != nil {
			if t.c == c {
				continue
			}
			_ = t.db.Close()
			delete(tasks, row.URL)
		}
		db, err := c.open()
		if err != nil {
			s.log.Error("datasource_config row skipped", "db", c.url, "error", err)
			continue
		}
		tasks[row.URL] = &dbTask{w: s, c: c, db: db, st: newStatements(c.dialect, c.table)}
		s.setHealth(row.URL, func(h *dbHealth) { h.User, h.State = row.User, "unknown" })
		s.log.Info("serving client database", "db", c.url, "user", c.user, "table", c.table)
	}
	for url, t := range tasks {
		if !seen[url] {
			_ = t.db.Close()
			delete(tasks, url)
			s.m.forget(url)
			s.log.Info("client database no longer in datasource_config (or offline): not served any more", "db", url)
		}
	}
	s.mu.Lock()
	for url := range s.dbs {
		if !seen[url] {
			delete(s.dbs, url)
		}
	}
	s.mu.Unlock()
	return nil
}

// round scans every database once, watchdog.parallel.dbs at a time, each
// within its time box. A database that fails is logged once, here, and
// skipped until the next round; the others are served.
func (s *Server) round(ctx context.Context, tasks map[string]*dbTask, p *client.Producer) {
	var g errgroup.Group
	g.SetLimit(s.settings.Parallel)
	for _, t := range tasks {
		g.Go(func() error {
			tctx, cancel := context.WithTimeout(ctx, s.settings.TaskTimeout)
			defer cancel()
			start := time.Now()
			st, err := t.scan(tctx, p)
			s.noteScan(t, st, err, time.Since(start), ctx.Err() != nil)
			return nil
		})
	}
	_ = g.Wait()
}

// noteScan logs a scan's outcome and records it for /health and /metrics.
func (s *Server) noteScan(t *dbTask, st roundStats, err error, took time.Duration, leadEnded bool) {
	url := t.c.url
	if err != nil && !leadEnded {
		s.m.up.WithLabelValues(url).Set(0)
		s.log.Error("client database skipped until the next round", "db", url, "next_in", s.settings.CheckInterval, "error", err)
	} else {
		s.m.up.WithLabelValues(url).Set(1)
	}
	if st.resent+st.failed+st.invalid+st.blocked > 0 {
		args := []any{"db", url, "resent", st.resent, "failed", st.failed, "invalid", st.invalid, "blocked", st.blocked, "took", took.Round(time.Millisecond)}
		if st.failed > 0 && t.lastSendErr != nil {
			args = append(args, "last_send_error", t.lastSendErr)
		}
		s.log.Info("resent rows left by applications", args...)
	}
	if st.timedOut {
		s.log.Warn("scan stopped at sendMessageTaskExecuteTimeout; the rest waits for the next round", "db", url,
			"sendMessageTaskExecuteTimeout", s.settings.TaskTimeout, "resent", st.resent)
	}
	s.setHealth(url, func(h *dbHealth) {
		h.LastScan = time.Now()
		h.Pending = st.pending
		h.Resent += int64(st.resent)
		h.Failed += int64(st.failed)
		h.Invalid += int64(st.invalid)
		h.Blocked += int64(st.blocked)
		if err != nil && !leadEnded {
			h.State, h.Error = "failing", err.Error()
		} else {
			h.State, h.Error = "ok", ""
		}
		switch {
		case st.failed > 0 && t.lastSendErr != nil:
			h.LastSendError = t.lastSendErr.Error()
		case st.resent > 0:
			h.LastSendError = ""
		}
	})
}

// setMetaErr records for /health why the leader has no producer (nil:
// it has one).
func (s *Server) setMetaErr(err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if err == nil {
		if s.metaErr != "" {
			s.log.Info("the metaserver is reachable again: resending", "meta.server.endpoint", s.settings.MetaEndpoint)
		}
		s.metaErr = ""
		return
	}
	s.metaErr = err.Error()
}

func (s *Server) setHealth(url string, f func(*dbHealth)) {
	s.mu.Lock()
	defer s.mu.Unlock()
	h := s.dbs[url]
	if h == nil {
		h = &dbHealth{URL: url, State: "unknown"}
		s.dbs[url] = h
	}
	f(h)
}

// getProducer returns the watchdog's producer, creating it on first use:
// only a leader needs the metaserver, so a follower starts without it.
func (s *Server) getProducer(ctx context.Context) (*client.Producer, error) {
	s.prodMu.Lock()
	defer s.prodMu.Unlock()
	if s.producer != nil {
		return s.producer, nil
	}
	pctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	opts := append([]client.ProducerOption{client.WithAppCode(s.settings.AppCode), client.WithLogger(s.log.Named("producer")),
		client.WithSendTimeout(s.settings.SendTimeout), client.WithRegisterer(s.m.reg), client.WithTracerProvider(s.opts.TracerProvider)}, s.opts.ProducerOptions...)
	p, err := client.NewProducer(pctx, s.settings.MetaEndpoint, opts...)
	if err != nil {
		return nil, err
	}
	s.producer = p
	return p, nil
}

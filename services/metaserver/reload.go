package metaserver

import (
	"context"
	"fmt"
	"os"
	"reflect"
	"sync"
	"time"

	"github.com/qmq-go/qmq/conf"
)

// reloadState is what reloads have reported so far. Options.Reload is
// polled, so without it an invalid file, a changed static setting or a
// typo would be logged again every ConfigPollInterval.
type reloadState struct {
	mu sync.Mutex
	// keyWarnings are the unknown keys last warned about.
	keyWarnings map[string]bool
	// lastErr is the rejected reload last logged, "" after a good one.
	lastErr string
	// static are the static settings last seen (or running).
	static Settings
}

// pollConfig reloads on SIGHUP (hup) and, quietly unless something
// changed, every ConfigPollInterval, until ctx is done.
func (s *Server) pollConfig(ctx context.Context, hup <-chan os.Signal) {
	t := time.NewTicker(s.opts.ConfigPollInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-hup:
			s.reload("SIGHUP", true)
		case <-t.C:
			s.reload(fmt.Sprintf("changed (checked every %v)", s.opts.ConfigPollInterval), false)
		}
	}
}

// Reload re-reads the configuration through Options.Reload now, as SIGHUP
// does, and logs the outcome. An invalid configuration is logged and the
// previous values stay in force.
func (s *Server) Reload(reason string) { s.reload(reason, true) }

// reload applies what Options.Reload returns. A forced reload logs its
// outcome; a polled one logs only what differs from the last one.
func (s *Server) reload(reason string, forced bool) {
	if s.opts.Reload == nil {
		if forced {
			s.log.Warn("configuration reload asked, but this metaserver has no configuration source (Options.Reload) to reload from", "reason", reason)
		}
		return
	}
	rs := &s.reloads
	rs.mu.Lock()
	defer rs.mu.Unlock()
	fresh, d, keys, err := s.opts.Reload()
	if err == nil && d == nil {
		err = fmt.Errorf("the configuration source returned no dynamic settings")
	}
	if err == nil {
		err = d.Validate()
	}
	if err != nil {
		if forced || err.Error() != rs.lastErr {
			s.log.Error("configuration reload rejected; keeping the previous values", "reason", reason, "error", err)
		}
		rs.lastErr = err.Error()
		return
	}
	prev := s.dyn.Swap(d)
	if forced || rs.lastErr != "" || !reflect.DeepEqual(prev, d) {
		s.log.Info("configuration reloaded", "reason", reason,
			"heartbeat.timeout.ms", d.HeartbeatTimeout.Milliseconds(), "min.group.num", d.MinGroupNum, "tokens", len(d.Tokens))
	}
	rs.lastErr = ""
	if fresh != s.settings && (forced || fresh != rs.static) {
		s.log.Warn("static settings changed; they take effect after a restart", "reason", reason)
	}
	rs.static = fresh
	// Warn about keys that were not there before only: a reload is often an
	// edit, and a typo made in it deserves its line, the old ones had theirs.
	now := keyWarnings(keys)
	for _, u := range keys.Unknown {
		if !rs.keyWarnings[u.String()] {
			s.log.Warn(u.String() + "; it has no effect")
		}
	}
	rs.keyWarnings = now
}

// keyWarnings is the set of unknown-key lines of a report.
func keyWarnings(k conf.KeyReport) map[string]bool {
	m := map[string]bool{}
	for _, u := range k.Unknown {
		m[u.String()] = true
	}
	return m
}

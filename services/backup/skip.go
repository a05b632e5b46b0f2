package backup

import (
	"context"
	"maps"
	"slices"
	"strings"
	"sync/atomic"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/qmq-go/qmq/backup"
	"github.com/qmq-go/qmq/conf"
)

// skipList is skip_backup.properties as the follower applies it. QMQ
// reloads the file while its backup runs; so does this one: run polls the
// file's size and modification time (conf.Watch) and swaps the whole set
// at once, so every batch is filtered by one version of the file, never
// half of an edit. The set applies to what the follower writes after the
// swap (filtering happens when a batch is written, not when it is read
// ahead from the slave).
type skipList struct {
	path     string // "" = fixed: nothing to watch
	interval time.Duration
	log      hclog.Logger
	m        *metrics
	cur      atomic.Pointer[map[string]bool] // never nil; read-only once stored
}

func newSkipList(initial map[string]bool, path string, interval time.Duration, log hclog.Logger, m *metrics) *skipList {
	l := &skipList{path: path, interval: interval, log: log, m: m}
	l.store(initial)
	return l
}

func (l *skipList) store(set map[string]bool) {
	if set == nil {
		set = map[string]bool{}
	}
	l.cur.Store(&set)
	l.m.skipSubjects.Set(float64(len(set)))
}

// get is the current set; callers must not modify it.
func (l *skipList) get() map[string]bool { return *l.cur.Load() }

// run follows the file until ctx ends; the caller (Server.Run) owns it.
func (l *skipList) run(ctx context.Context) {
	if l.path == "" {
		return
	}
	// The file may have changed between LoadSettings and now: compare
	// once, quietly when it did not.
	l.reload("start", false)
	conf.Watch(ctx, []string{l.path}, l.interval, nil, func(reason string) { l.reload(reason, true) })
}

// reload reads the file and applies it. A file that does not parse keeps
// the previous set (the error names the file and line); counted either way
// when always, else only when the set changed.
func (l *skipList) reload(reason string, always bool) {
	next, err := loadSkip(l.path)
	prev := l.get()
	if err != nil {
		l.m.skipReloads.WithLabelValues("error").Inc()
		l.log.Error("skip_backup.properties changed but cannot be read; keeping the previous list until the file is fixed",
			"error", err, "skipped_subjects", len(prev), "reason", reason)
		return
	}
	added, removed := diffSets(prev, next)
	if len(added) == 0 && len(removed) == 0 {
		if always {
			l.m.skipReloads.WithLabelValues("ok").Inc()
			l.log.Debug("skip_backup.properties reloaded: no subject changed", "file", l.path, "reason", reason)
		}
		return
	}
	l.store(next)
	l.m.skipReloads.WithLabelValues("ok").Inc()
	l.log.Info("skip_backup.properties reloaded: messages indexed from now on follow it",
		"file", l.path, "reason", reason, "no_longer_backed_up", strings.Join(added, ","), "backed_up_again", strings.Join(removed, ","),
		"skipped_subjects", len(next))
}

// diffSets returns the subjects of next not in prev (added) and of prev
// not in next (removed), sorted.
func diffSets(prev, next map[string]bool) (added, removed []string) {
	for _, s := range slices.Sorted(maps.Keys(next)) {
		if !prev[s] {
			added = append(added, s)
		}
	}
	for _, s := range slices.Sorted(maps.Keys(prev)) {
		if !next[s] {
			removed = append(removed, s)
		}
	}
	return added, removed
}

// skipMessages drops the entries of skipped subjects but their dead
// letters, as QMQ (its index listener checks the skip list after handing
// dead letters on).
func skipMessages(msgs []backup.Message, skip map[string]bool) []backup.Message {
	out := msgs[:0]
	for _, m := range msgs {
		if m.Kind == backup.KindDead || !skip[m.Subject] {
			out = append(out, m)
		}
	}
	return out
}

// skipRecords drops the consume records of skipped subjects (and of their
// retry copies), as QMQ's action log processor.
func skipRecords(recs []backup.Record, skip map[string]bool) []backup.Record {
	out := recs[:0]
	for _, r := range recs {
		if subject, _, _ := splitSubject(r.Subject); !skip[subject] {
			out = append(out, r)
		}
	}
	return out
}

package consumerlog

import (
	"cmp"
	"errors"
	"fmt"
	"maps"
	"os"
	"slices"
	"sync"
	"time"

	"github.com/qmq-go/qmq/storage/segment"
)

// Every open consumer log holds a file and a mapping of its newest segment,
// one per subject: with tens of thousands of subjects a broker ran out of
// file descriptors ("too many open files" on its next accept, its next
// message-log segment and every new subject's log: the broker stopped
// taking messages; bench/scale.sh at 20,000 subjects with the limit at
// 20,000). The Manager therefore keeps at most Config.MaxOpenLogs logs open
// and closes the least recently used ones beyond it (without an fsync),
// then opened again on their next use (the lazy open every log has after a
// restart, so nothing else changes). A closed log costs no descriptor and
// no mapping; reopening one costs an open, a map and the binary search of
// recoverEnd; closing one costs no fsync (its files are synced with the
// next checkpoint's Flush). That is cheap for logs idle for a
// while and ruinous for a working set larger than the bound (every write
// then reopens a log: 10,000 subjects written in turn under a bound of
// 5,000 left the dispatcher gigabytes behind), so the default bound is
// three quarters of the descriptor limit, above what a broker could keep
// open without it, and the broker warns when it starts closing logs: the
// fix is a larger descriptor limit.

// touch records a use of s (a put, get or bounds): the Manager's epoch,
// which advances at every open and every release pass, so the least
// recently used logs are those with the smallest stamp. It writes only when
// the stamp changes, so readers of a busy subject do not share a written
// cache line.
func (s *subjectLog) touch() {
	if e := s.m.epoch.Load(); s.lastUse.Load() != e {
		s.lastUse.Store(e)
	}
}

// opened stamps the log the Manager just opened (self) and, beyond
// MaxOpenLogs, releases the least recently used others. The caller holds
// no lock of another subject, but may hold self's writeMu (a put opens its
// log under it): self is never released here.
func (m *Manager) opened(self *subjectLog) {
	self.lastUse.Store(m.epoch.Add(1))
	if m.maxOpen > 0 && m.openLogs.Load() > int64(m.maxOpen) {
		m.releaseIdle(self)
	}
}

// releaseIdle closes the least recently used open logs until a tenth of
// MaxOpenLogs is free (so that passes are rare), all but self. One pass at
// a time; a caller that finds one under way leaves it to finish (and so no
// two releasers ever wait for each other's subject locks).
func (m *Manager) releaseIdle(self *subjectLog) {
	if !m.releasing.CompareAndSwap(false, true) {
		return
	}
	defer m.releasing.Store(false)
	target := int64(m.maxOpen) - int64(m.maxOpen)/10
	type candidate struct {
		s       *subjectLog
		lastUse int64 // read once: uses go on while the pass sorts
	}
	var open []candidate
	for _, s := range m.snapshot() {
		if s != self && s.isOpen.Load() {
			open = append(open, candidate{s, s.lastUse.Load()})
		}
	}
	slices.SortFunc(open, func(a, b candidate) int { return cmp.Compare(a.lastUse, b.lastUse) })
	m.epoch.Add(1) // uses from now on count as newer than every stamp above
	released := 0
	for _, c := range open {
		s := c.s
		if m.openLogs.Load() <= target {
			break
		}
		if s.release() {
			released++
		}
	}
	m.metrics.releasedLogs(released)
	if now := time.Now().Unix(); now-m.warnedAt.Load() >= 600 {
		m.warnedAt.Store(now)
		m.logger.Warn("more subjects' consumer logs in use than may be open at once: idle ones are closed and reopened on their next use, which slows the broker if they are not idle; raise the process's file descriptor limit (ulimit -n, systemd LimitNOFILE): the bound is three quarters of it",
			"max_open", m.maxOpen, "closed_now", released, "descriptor_limit", fileLimit())
	}
	m.logger.Debug("closed idle consumer logs", "closed", released, "open", m.openLogs.Load(), "max_open", m.maxOpen)
}

// release closes s's log if it is open, leaving s to be opened again on
// its next use. It reports whether it closed the log.
func (s *subjectLog) release() bool {
	s.writeMu.Lock()
	defer s.writeMu.Unlock()
	s.rw.Lock()
	defer s.rw.Unlock()
	if s.closed || s.log == nil {
		return false
	}
	// Closed without an fsync: the files it owes the disk are synced by the
	// next Manager.Flush (the checkpoint's), with the open logs. A release
	// pass used to flush each log it closed, in the goroutine that opened a
	// log (the dispatcher): with more busy subjects than the bound every
	// write reopened a log and paid an fsync for another, and the
	// dispatcher fell minutes behind.
	s.releasedMin = s.log.MinOffset() / UnitSize
	s.released = true
	s.m.owe(s.log.CloseUnsynced())
	s.log = nil
	s.isOpen.Store(false)
	s.m.openLogs.Add(-1)
	return true
}

// owe records what a released log still owes the disk, for the next Flush.
// It is called before the log is seen closed (under the subject's rw), so
// a Flush that finds the log closed finds its files here.
func (m *Manager) owe(u segment.Unsynced) {
	if len(u.Files) == 0 && u.Dir == "" {
		return
	}
	m.owedMu.Lock()
	defer m.owedMu.Unlock()
	if m.owedFiles == nil {
		m.owedFiles, m.owedDirs = map[string]bool{}, map[string]bool{}
	}
	for _, f := range u.Files {
		m.owedFiles[f] = true
	}
	if u.Dir != "" {
		m.owedDirs[u.Dir] = true
	}
}

// syncOwed makes durable what released logs owe: their files, then their
// directories. What fails stays owed for the next Flush.
func (m *Manager) syncOwed() error {
	m.owedMu.Lock()
	files, dirs := m.owedFiles, m.owedDirs
	m.owedFiles, m.owedDirs = nil, nil
	m.owedMu.Unlock()
	if len(files) == 0 && len(dirs) == 0 {
		return nil
	}
	var (
		mu     sync.Mutex
		failed segment.Unsynced
		errs   []error
	)
	paths := slices.Collect(maps.Keys(files))
	parallel(len(paths), func(i int) {
		if err := segment.SyncFile(m.fs, paths[i]); err != nil {
			mu.Lock()
			failed.Files = append(failed.Files, paths[i])
			errs = append(errs, fmt.Errorf("sync closed consumer log segment: %w", err))
			mu.Unlock()
		}
	})
	for dir := range dirs {
		if err := m.fs.SyncDir(dir); err != nil && !errors.Is(err, os.ErrNotExist) {
			m.owe(segment.Unsynced{Dir: dir})
			errs = append(errs, fmt.Errorf("sync consumer log directory %s: %w", dir, err))
		}
	}
	m.owe(failed)
	return errors.Join(errs...)
}

// DefaultMaxOpenLogs is the default bound of open consumer logs for one of
// brokers processes sharing this process's descriptor limit (qmq dev runs
// a master and its slave in one): three quarters of the limit, shared, at
// least 256 each.
func DefaultMaxOpenLogs(brokers int) int {
	return max(256, fileLimit()*3/4/max(brokers, 1))
}

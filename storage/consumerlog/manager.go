package consumerlog

import (
	"errors"
	"fmt"
	"path/filepath"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/qmq-go/qmq/storage/vfs"
)

// DefaultUnitsPerSegment is QMQ's segment size in units (220 MB files).
const DefaultUnitsPerSegment = 10_000_000

// ErrClosed is returned by every operation after Close.
var ErrClosed = errors.New("consumer log manager closed")

// Config configures a Manager.
type Config struct {
	FS              vfs.FS // nil: the OS
	Dir             string // <store.root>/consumerlog
	UnitsPerSegment int64  // units per segment file; 0: DefaultUnitsPerSegment
	Logger          hclog.Logger
	Registerer      prometheus.Registerer // nil: no metrics registered
	// MaxOpenLogs bounds the consumer logs open at once (each holds a file
	// descriptor and a mapping); the least recently used beyond it are
	// closed and reopened on use. 0: three quarters of the process's file
	// descriptor limit, at least 256; negative: no bound.
	MaxOpenLogs int
}

// Manager owns the consumer logs of every subject. All methods are safe for
// concurrent use; Puts to one subject are serialized by the Manager (the
// owner normally has a single replay goroutine anyway).
type Manager struct {
	fs          vfs.FS
	dir         string
	segmentSize int64
	unitsPerSeg int64
	logger      hclog.Logger
	metrics     *metrics

	// dirDirty is set when a subject directory was created and not yet
	// covered by a sync of dir.
	dirDirty atomic.Bool

	mu       sync.RWMutex
	subjects map[string]*subjectLog
	closed   bool

	// Open logs and their bound (release.go).
	maxOpen   int
	openLogs  atomic.Int64
	epoch     atomic.Int64
	releasing atomic.Bool
	warnedAt  atomic.Int64 // unix seconds of the last "too many subjects" warning

	// The logs whose end moved since the last EachChangedMaxSequence
	// (changes.go).
	changesMu sync.Mutex
	changes   []*subjectLog

	// What released logs owe the disk, synced by the next Flush
	// (release.go).
	owedMu              sync.Mutex
	owedFiles, owedDirs map[string]bool
}

// Open lists the subjects under cfg.Dir (creating it if needed) without
// opening their logs; each is opened and its end recovered on first use.
func Open(cfg Config) (*Manager, error) {
	if cfg.Dir == "" {
		return nil, errors.New("consumerlog: Config.Dir is empty")
	}
	if cfg.FS == nil {
		cfg.FS = vfs.Default()
	}
	if cfg.UnitsPerSegment == 0 {
		cfg.UnitsPerSegment = DefaultUnitsPerSegment
	}
	if cfg.UnitsPerSegment < 1 {
		return nil, fmt.Errorf("consumerlog: UnitsPerSegment %d < 1", cfg.UnitsPerSegment)
	}
	if cfg.Logger == nil {
		cfg.Logger = hclog.NewNullLogger()
	}
	if cfg.MaxOpenLogs == 0 {
		cfg.MaxOpenLogs = DefaultMaxOpenLogs(1)
	}
	m := &Manager{
		maxOpen:     max(cfg.MaxOpenLogs, 0),
		fs:          cfg.FS,
		dir:         cfg.Dir,
		unitsPerSeg: cfg.UnitsPerSegment,
		segmentSize: cfg.UnitsPerSegment * UnitSize,
		logger:      cfg.Logger,
		subjects:    make(map[string]*subjectLog),
	}
	if err := m.fs.MkdirAll(m.dir, 0o755); err != nil {
		return nil, fmt.Errorf("open consumer logs: create %s: %w", m.dir, err)
	}
	entries, err := m.fs.ReadDir(m.dir)
	if err != nil {
		return nil, fmt.Errorf("open consumer logs: list %s: %w", m.dir, err)
	}
	for _, e := range entries {
		if !e.IsDir() {
			continue
		}
		subject, ok := unescapeSubject(e.Name())
		if !ok {
			m.logger.Warn("ignoring directory that is not an escaped subject name", "dir", filepath.Join(m.dir, e.Name()))
			continue
		}
		s := m.newSubject(subject, e.Name())
		s.onDisk.Store(true)
		s.diskSegments, s.diskBytes = m.countSegmentFiles(s.dir)
		m.subjects[subject] = s
	}
	m.metrics, err = newMetrics(cfg.Registerer, m)
	if err != nil {
		return nil, fmt.Errorf("open consumer logs: %w", err)
	}
	m.logger.Debug("consumer logs listed", "dir", m.dir, "subjects", len(m.subjects))
	return m, nil
}

// lookup returns the subject's state, or nil if the subject was never seen.
// It does not allocate (the hot path of Get).
func (m *Manager) lookup(subject string) (*subjectLog, error) {
	m.mu.RLock()
	s, closed := m.subjects[subject], m.closed
	m.mu.RUnlock()
	if closed {
		return nil, ErrClosed
	}
	return s, nil
}

// lookupOrAdd returns the subject's state, adding it if needed.
func (m *Manager) lookupOrAdd(subject string) (*subjectLog, error) {
	if s, err := m.lookup(subject); s != nil || err != nil {
		return s, err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.closed {
		return nil, ErrClosed
	}
	if s := m.subjects[subject]; s != nil {
		return s, nil
	}
	name, err := escapeSubject(subject)
	s := m.newSubject(subject, name)
	s.nameErr = err
	m.subjects[subject] = s
	return s, nil
}

func (m *Manager) newSubject(subject, name string) *subjectLog {
	s := &subjectLog{m: m, subject: subject, pendingTruncate: noPendingTruncate}
	if name != "" {
		s.dir = filepath.Join(m.dir, name)
	}
	return s
}

// Put records that sequence seq of subject is e. seq equal to the next
// sequence appends; seq beyond it first fills the skipped sequences with
// blank units (on an empty log the log simply starts at seq's segment);
// seq below it is ignored, so replaying an overlap is harmless.
func (m *Manager) Put(subject string, seq int64, e Entry) error {
	if seq < 0 {
		return fmt.Errorf("put %s/%d: negative sequence", subject, seq)
	}
	if err := validateEntry(e); err != nil {
		return fmt.Errorf("put %s/%d: %w", subject, seq, err)
	}
	s, err := m.lookupOrAdd(subject)
	if err != nil {
		return err
	}
	return s.put(seq, e)
}

// PutBytes is Put for a subject held as bytes, such as a message-log record's
// subject aliasing the mapping. On the replay hot path it avoids a string
// allocation per record once the subject's log exists; anything unusual
// (new subject, invalid input, closed manager) takes Put's path.
func (m *Manager) PutBytes(subject []byte, seq int64, e Entry) error {
	m.mu.RLock()
	s, closed := m.subjects[string(subject)], m.closed
	m.mu.RUnlock()
	if s == nil || closed || seq < 0 || validateEntry(e) != nil {
		return m.Put(string(subject), seq, e)
	}
	return s.put(seq, e)
}

// Get returns the entry of sequence seq. found is false for sequences
// beyond the end, below the (retention-raised) start, or blank. It costs
// one map lookup and one read of the mapping, and does not allocate once
// the subject's log is open.
func (m *Manager) Get(subject string, seq int64) (e Entry, found bool, err error) {
	s, err := m.lookup(subject)
	if s == nil {
		return Entry{}, false, err
	}
	return s.get(seq)
}

// MaxSequence returns the largest sequence in subject's log, -1 when empty.
func (m *Manager) MaxSequence(subject string) int64 {
	s, _ := m.lookup(subject)
	if s == nil {
		return -1
	}
	next, _ := s.bounds()
	return next - 1
}

// MinSequence returns the smallest sequence subject's log still holds
// (raised by DeleteBefore); MaxSequence+1 when the log is empty.
func (m *Manager) MinSequence(subject string) int64 {
	s, _ := m.lookup(subject)
	if s == nil {
		return 0
	}
	_, minSeq := s.bounds()
	return minSeq
}

// EachMaxSequence calls fn with the largest sequence of every subject
// whose log holds one, in no order. It is what a message checkpoint
// captures, once per subject: Subjects sorted every name and MaxSequence
// looked each up again, which with tens of thousands of subjects took the
// dispatcher milliseconds per capture.
func (m *Manager) EachMaxSequence(fn func(subject string, maxSeq int64)) {
	for _, s := range m.snapshot() {
		if !s.onDisk.Load() {
			continue
		}
		if next, _ := s.bounds(); next > 0 {
			fn(s.subject, next-1)
		}
	}
}

// Subjects returns the subjects that have a consumer log, sorted.
func (m *Manager) Subjects() []string {
	m.mu.RLock()
	defer m.mu.RUnlock()
	out := make([]string, 0, len(m.subjects))
	for subject, s := range m.subjects {
		if s.onDisk.Load() {
			out = append(out, subject)
		}
	}
	slices.Sort(out)
	return out
}

// Changed returns a channel that is closed the next time subject's max
// sequence advances (or the Manager closes). To wait without missing an
// advance, take the channel first, then check MaxSequence, then wait.
// Waiters share the channel: no goroutine or timer is created per waiter.
func (m *Manager) Changed(subject string) <-chan struct{} {
	s, err := m.lookupOrAdd(subject)
	if err != nil {
		c := make(chan struct{})
		close(c)
		return c
	}
	return s.notify.wait()
}

// TruncateAfter keeps only sequences <= maxSeq of subject (recovery: the
// owner truncates to the message checkpoint and replays). It never goes
// below the log's start; a subject not opened yet is truncated when it is.
func (m *Manager) TruncateAfter(subject string, maxSeq int64) error {
	s, err := m.lookup(subject)
	if s == nil {
		return err
	}
	return s.truncateAfter(maxSeq)
}

// Flush makes every Put so far durable (msync and fsync of each subject
// written since the last Flush).
func (m *Manager) Flush() error {
	var errs []error
	if m.dirDirty.Swap(false) {
		if err := m.fs.SyncDir(m.dir); err != nil {
			m.dirDirty.Store(true)
			errs = append(errs, fmt.Errorf("flush consumer logs: sync %s: %w", m.dir, err))
		}
	}
	var dirty []*subjectLog
	for _, s := range m.snapshot() {
		if s.dirty() {
			dirty = append(dirty, s)
		}
	}
	errs = append(errs, flushAll(dirty))
	// After the open logs: one released while flushAll ran is skipped
	// there, and it recorded what it owes before it was seen closed.
	errs = append(errs, m.syncOwed())
	return errors.Join(errs...)
}

// flushParallelism is how many consumer logs are fsynced at once. One fsync
// at a time costs a journal commit each; concurrent fsyncs share commits, so
// with a thousand dirty subjects a flush takes a fraction of the time.
const flushParallelism = 16

func flushAll(logs []*subjectLog) error {
	var (
		mu   sync.Mutex
		errs []error
	)
	parallel(len(logs), func(i int) {
		if err := logs[i].flush(); err != nil {
			mu.Lock()
			errs = append(errs, err)
			mu.Unlock()
		}
	})
	return errors.Join(errs...)
}

// parallel calls fn(0) … fn(n-1) from up to flushParallelism goroutines
// and returns when all have returned.
func parallel(n int, fn func(i int)) {
	if n <= 1 {
		for i := range n {
			fn(i)
		}
		return
	}
	var (
		wg   sync.WaitGroup
		next atomic.Int64
	)
	for range min(flushParallelism, n) {
		wg.Go(func() {
			for {
				i := next.Add(1) - 1
				if i >= int64(n) {
					return
				}
				fn(int(i))
			}
		})
	}
	wg.Wait()
}

// DeleteBefore deletes, in every subject, the oldest segments last modified
// before before, never a subject's newest segment. It returns the number of
// segments deleted; the subjects' MinSequence rises accordingly.
func (m *Manager) DeleteBefore(before time.Time) (int, error) {
	var (
		total int
		errs  []error
	)
	for _, s := range m.snapshot() {
		n, err := s.deleteBefore(before)
		total += n
		if err != nil {
			errs = append(errs, err)
		}
	}
	m.metrics.deletedSegments(total)
	return total, errors.Join(errs...)
}

// UnmapIdle unmaps the sealed segments nobody read since the previous call
// (see segment.Log.UnmapIdle); the owner calls it periodically, e.g. from
// its retention loop, so subjects with a long history do not keep every
// segment mapped. It returns the number of segments unmapped.
func (m *Manager) UnmapIdle() int {
	n := 0
	for _, s := range m.snapshot() {
		s.rw.RLock()
		if s.log != nil {
			n += s.log.UnmapIdle()
		}
		s.rw.RUnlock()
	}
	return n
}

// Close flushes and closes every open log and wakes every Changed waiter.
func (m *Manager) Close() error {
	m.mu.Lock()
	if m.closed {
		m.mu.Unlock()
		return nil
	}
	m.closed = true
	m.mu.Unlock()
	var errs []error
	for _, s := range m.snapshot() {
		if err := s.close(); err != nil {
			errs = append(errs, err)
		}
	}
	errs = append(errs, m.syncOwed())
	if m.dirDirty.Swap(false) {
		if err := m.fs.SyncDir(m.dir); err != nil {
			errs = append(errs, fmt.Errorf("close consumer logs: sync %s: %w", m.dir, err))
		}
	}
	m.metrics.unregister()
	return errors.Join(errs...)
}

func (m *Manager) snapshot() []*subjectLog {
	m.mu.RLock()
	defer m.mu.RUnlock()
	out := make([]*subjectLog, 0, len(m.subjects))
	for _, s := range m.subjects {
		out = append(out, s)
	}
	return out
}

// countSegmentFiles counts a subject's segment files and bytes for the
// metrics of subjects not opened yet.
func (m *Manager) countSegmentFiles(dir string) (count, bytes int64) {
	entries, err := m.fs.ReadDir(dir)
	if err != nil {
		return 0, 0
	}
	for _, e := range entries {
		if !isSegmentName(e.Name()) || e.IsDir() {
			continue
		}
		count++
		if info, err := e.Info(); err == nil {
			bytes += info.Size()
		}
	}
	return count, bytes
}

// isSegmentName reports whether name is a segment file name: the base
// offset in 20 decimal digits (storage/segment's and QMQ's naming).
func isSegmentName(name string) bool {
	if len(name) != 20 {
		return false
	}
	for i := 0; i < len(name); i++ {
		if name[i] < '0' || name[i] > '9' {
			return false
		}
	}
	return true
}

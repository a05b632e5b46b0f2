package delaystore

import (
	"errors"
	"fmt"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/qmq-go/qmq/services/delay/wheel"
	"github.com/qmq-go/qmq/storage/segment"
)

// ErrClosed is returned after Close.
var ErrClosed = errors.New("delaystore: closed")

// Message is one delay message.
type Message struct {
	ScheduleTime int64 // unix milliseconds, > 0
	Subject      string
	MessageID    string
	// Payload is the producer's encoded message, CRC included, unchanged.
	Payload []byte
}

// Entry is one scheduled message of the loaded window, as Due returns it:
// its schedule time, its sequence (the offset of its record in the message
// log, unique and the same on every replica) and where its record lies in
// its schedule bucket. 32 bytes.
type Entry struct {
	ScheduleTime int64
	Sequence     int64
	offset       int64
	size         int32
}

func (e Entry) item() wheel.Item {
	return wheel.Item{Time: e.ScheduleTime, Seq: e.Sequence, Offset: e.offset, Size: e.size}
}

func entryOf(it wheel.Item) Entry {
	return Entry{ScheduleTime: it.Time, Sequence: it.Seq, offset: it.Offset, size: it.Size}
}

// Store is the delay server's storage engine. See the package documentation.
type Store struct {
	cfg         Config
	log         hclog.Logger
	scaleMs     int64
	scheduleDir string
	ckptDir     string
	metrics     *metrics

	msgs *segment.Log // the message log (WAL)
	disp *segment.Log // the dispatch log

	appendMu   sync.Mutex // the message log's writer
	dispMu     sync.Mutex // the dispatch log's writer
	msgNotify  atomic.Pointer[chan struct{}]
	dispNotify atomic.Pointer[chan struct{}]
	lastDisk   atomic.Int64 // unix ms of the last free-space check
	diskErr    atomic.Pointer[error]

	// replayMu serializes replay, bucket loading, cancels and bucket
	// deletion; it is taken before mu.
	replayMu   sync.Mutex
	replayed   int64                        // message-log offset replayed into buckets
	loadedUpTo int64                        // every bucket with id <= loadedUpTo is in the wheel
	skip       map[int64]map[int64]struct{} // bucket id -> sequences dispatched or cancelled before the bucket was loaded
	ckptState  string                       // the last checkpoint written

	bmu     sync.RWMutex
	buckets map[int64]*bucket

	mu       sync.Mutex // the wheel and the counts
	wheel    *wheel.Wheel
	inflight int64
	wake     chan struct{} // closed when entries are added
	// The pending messages of the whole store, per subject and in all
	// (counts.go).
	totals       map[string]*subjectTotal
	pendingTotal int64

	stop      chan struct{}
	wg        sync.WaitGroup
	closeOnce sync.Once
	closed    atomic.Bool
}

// Directory names under Config.Root.
const (
	messageDir    = "message_log"
	dispatchDir   = "dispatch_log"
	scheduleDir   = "schedule_log"
	checkpointDir = "checkpoint"
)

func (s *Store) now() int64 { return s.cfg.Now().UnixMilli() }

// Open opens or creates the store under cfg.Root and recovers it: torn
// tails of every log are cut, the message log is replayed from the
// checkpoint into the schedule buckets, and the undelivered entries of the
// buckets up to now+LoadAhead are loaded into the wheel.
func Open(cfg Config) (*Store, error) {
	if err := cfg.normalize(); err != nil {
		return nil, err
	}
	begin := time.Now()
	s := &Store{
		cfg:         cfg,
		log:         cfg.Logger.Named("delaystore"),
		scaleMs:     cfg.SegmentScale.Milliseconds(),
		scheduleDir: filepath.Join(cfg.Root, scheduleDir),
		ckptDir:     filepath.Join(cfg.Root, checkpointDir),
		skip:        map[int64]map[int64]struct{}{},
		buckets:     map[int64]*bucket{},
		wheel:       wheel.New(1000),
		totals:      map[string]*subjectTotal{},
		wake:        make(chan struct{}),
		stop:        make(chan struct{}),
	}
	var err error
	if s.metrics, err = newMetrics(cfg.Registerer, s); err != nil {
		return nil, fmt.Errorf("delay store %s: %w", cfg.Root, err)
	}
	fs := cfg.FS
	for _, d := range []string{cfg.Root, s.scheduleDir, s.ckptDir} {
		if err := fs.MkdirAll(d, 0o755); err != nil {
			s.metrics.unregister()
			return nil, fmt.Errorf("delay store: create %s: %w", d, err)
		}
	}
	if err := checkScale(fs, cfg.Root, int(cfg.SegmentScale/time.Minute)); err != nil {
		s.metrics.unregister()
		return nil, err
	}
	if err := resumeTruncation(cfg); err != nil { // truncate.go
		s.metrics.unregister()
		return nil, err
	}
	cp := replayCheckpoint{buckets: map[int64]bucketMark{}}
	ckptPath := filepath.Join(s.ckptDir, ckptFile)
	if data, err := readFile(fs, ckptPath); err != nil {
		s.metrics.unregister()
		return nil, fmt.Errorf("delay store: read %s: %w", ckptPath, err)
	} else if data != nil {
		var err error
		if cp, err = decodeCheckpoint(data); err != nil {
			// Everything is rebuilt from the logs (buckets are rescanned,
			// sequences already in a bucket are not written twice).
			s.log.Warn("replay checkpoint unreadable: rescanning every bucket", "path", ckptPath, "error", err)
			cp = replayCheckpoint{buckets: map[int64]bucketMark{}}
		}
	}
	ok := false
	defer func() {
		if !ok {
			s.closeLogs()
			s.metrics.unregister()
		}
	}()
	if err = s.openMessageLog(cp.replayed); err != nil {
		return nil, err
	}
	s.replayed = max(cp.replayed, s.msgs.MinOffset())
	if end := s.msgs.WrotePosition(); s.replayed > end {
		return nil, fmt.Errorf("delay store %s: the message log ends at %d but offset %d was already replayed into the schedule buckets: "+
			"acknowledged messages were lost (restore the message log or remove the store to rebuild it from a replica)", cfg.Root, end, s.replayed)
	}
	if err = s.openBuckets(cp); err != nil {
		return nil, err
	}
	if err = s.openDispatchLog(); err != nil {
		return nil, err
	}
	if err = s.initCounts(); err != nil {
		return nil, err
	}
	if err = s.replay(); err != nil {
		return nil, err
	}
	s.replayMu.Lock()
	s.loadedUpTo = s.bucketID(s.now() + cfg.LoadAhead.Milliseconds())
	err = s.loadUpTo(s.loadedUpTo, true)
	if err == nil {
		err = s.checkpointLocked()
	}
	if err == nil {
		s.closeIdle(true) // buckets outside the window stay closed until written
	}
	s.replayMu.Unlock()
	if err != nil {
		return nil, err
	}
	s.metrics.openSeconds.Set(time.Since(begin).Seconds())
	s.log.Info("delay store opened", "root", cfg.Root, "entries", s.wheel.Len(), "pending", s.pendingTotal, "subjects", len(s.totals), "buckets", len(s.buckets),
		"message_log_end", s.msgs.WrotePosition(), "dispatch_log_end", s.disp.WrotePosition(), "took", time.Since(begin))
	ok = true
	s.wg.Add(2)
	go s.flusher()
	go s.housekeeper()
	return s, nil
}

func (s *Store) openMessageLog(replayed int64) error {
	var err error
	s.msgs, err = segment.Open(segment.Config{
		FS:           s.cfg.FS,
		Dir:          filepath.Join(s.cfg.Root, messageDir),
		SegmentSize:  s.cfg.MessageSegmentSize,
		SizeKey:      "per.segment.file.size",
		Filler:       fillEOF,
		Logger:       s.log,
		WriteThrough: true,
	})
	if err != nil {
		return fmt.Errorf("delay store: open message log: %w", err)
	}
	if s.msgs.SegmentCount() == 0 && replayed > 0 {
		// Nothing on disk but a checkpoint: continue where it ends.
		return s.msgs.SetStart(replayed)
	}
	_, err = recoverLog(s.msgs, "message log", replayed, true, recHeaderSize, messageUnit, nil)
	return err
}

// openDispatchLog recovers the dispatch log and collects the sequences that
// loading must skip: those of buckets still to be scanned, and those whose
// message was not replayed yet (a replica copies the two logs separately).
func (s *Store) openDispatchLog() error {
	var err error
	s.disp, err = segment.Open(segment.Config{
		FS:          s.cfg.FS,
		Dir:         filepath.Join(s.cfg.Root, dispatchDir),
		SegmentSize: s.cfg.DispatchSegmentSize,
		SizeKey:     "dispatch segment size",
		Logger:      s.log,
	})
	if err != nil {
		return fmt.Errorf("delay store: open dispatch log: %w", err)
	}
	_, err = recoverLog(s.disp, "dispatch log", s.disp.MinOffset(), true, dispRecordSize, dispatchUnit, func(_ int64, b []byte) error {
		r, _ := decodeDisp(b)
		id := s.bucketID(r.scheduleTime)
		if bk := s.buckets[id]; (bk != nil && !bk.done) || r.seq >= s.replayed {
			s.addSkip(id, r.seq)
		}
		return nil
	})
	return err
}

func (s *Store) addSkip(id, seq int64) {
	m := s.skip[id]
	if m == nil {
		m = map[int64]struct{}{}
		s.skip[id] = m
	}
	m[seq] = struct{}{}
}

// loadUpTo loads every bucket with an id in (s.loadedUpTo, upTo], or all
// up to upTo when all is set. replayMu is held.
func (s *Store) loadUpTo(upTo int64, all bool) error {
	s.bmu.RLock()
	var todo []*bucket
	for id, b := range s.buckets {
		if id <= upTo && (all || id > s.loadedUpTo) {
			todo = append(todo, b)
		}
	}
	s.bmu.RUnlock()
	for _, b := range todo {
		if err := s.loadBucket(b, all); err != nil {
			return err
		}
	}
	return nil
}

func (s *Store) wakeLocked() {
	close(s.wake)
	s.wake = make(chan struct{})
}

func notify(p *atomic.Pointer[chan struct{}]) {
	if ch := p.Swap(nil); ch != nil {
		close(*ch)
	}
}

func appended(p *atomic.Pointer[chan struct{}]) <-chan struct{} {
	for {
		if ch := p.Load(); ch != nil {
			return *ch
		}
		ch := make(chan struct{})
		if p.CompareAndSwap(nil, &ch) {
			return ch
		}
	}
}

// Close stops the background work, flushes the logs, writes a checkpoint
// and closes every file.
func (s *Store) Close() error {
	var err error
	s.closeOnce.Do(func() {
		s.closed.Store(true)
		close(s.stop)
		s.wg.Wait()
		var errs []error
		if e := s.msgs.Flush(); e != nil {
			errs = append(errs, e)
		}
		if e := s.disp.Flush(); e != nil {
			errs = append(errs, e)
		}
		if len(errs) == 0 {
			if e := s.replay(); e != nil {
				errs = append(errs, e)
			}
			s.replayMu.Lock()
			if e := s.checkpointLocked(); e != nil {
				errs = append(errs, e)
			}
			s.replayMu.Unlock()
		}
		if e := s.closeLogs(); e != nil {
			errs = append(errs, e)
		}
		s.metrics.unregister()
		err = errors.Join(errs...)
	})
	return err
}

func (s *Store) closeLogs() error {
	var errs []error
	if s.msgs != nil {
		errs = append(errs, s.msgs.Close())
	}
	if s.disp != nil {
		errs = append(errs, s.disp.Close())
	}
	s.bmu.Lock()
	for _, b := range s.buckets {
		if l := b.log.Load(); l != nil {
			errs = append(errs, l.Close())
		}
	}
	s.bmu.Unlock()
	return errors.Join(errs...)
}

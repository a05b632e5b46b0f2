package actionlog

import (
	"encoding/binary"
	"errors"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/qmq-go/qmq/storage/segment"
	"github.com/qmq-go/qmq/storage/vfs"
)

const (
	// DefaultSegmentSize is QMQ's action log segment size.
	DefaultSegmentSize = 100 << 20
	// DefaultFlushInterval is QMQ's asynchronous flush period.
	DefaultFlushInterval = 500 * time.Millisecond
	// unmapIdleInterval is how often sealed segments nobody reads are unmapped.
	unmapIdleInterval = time.Minute
)

// ErrClosed is returned by Append after Close.
var ErrClosed = segment.ErrClosed

// Config configures the action log.
type Config struct {
	FS          vfs.FS // nil: the OS
	Dir         string // <store.root>/actionlog
	SegmentSize int64  // 0: DefaultSegmentSize; must hold the largest record
	// FlushInterval is the period of the background flush (msync + fsync).
	// 0 means DefaultFlushInterval; negative disables it (the owner calls Flush).
	FlushInterval time.Duration
	Logger        hclog.Logger          // nil: no logging
	Registerer    prometheus.Registerer // nil: no metrics registered
}

// Log is the action log. Append is safe for concurrent use (appends are
// serialized); any number of Iterators may read concurrently.
type Log struct {
	cfg     Config
	seg     *segment.Log
	log     hclog.Logger
	metrics *metrics
	// recoveredTorn records that Open found and cut a damaged record.
	recoveredTorn bool

	mu sync.Mutex // serializes appends

	notifyMu sync.Mutex
	appended chan struct{} // closed on the next append or on Close
	taken    bool          // appended was handed out: the next append must close it
	closed   bool

	closeOnce sync.Once
	closeErr  error
	stop      chan struct{}
	done      chan struct{}
}

// Open opens or creates the action log in cfg.Dir and recovers it: records
// are validated from the start of the second-to-last segment (everything
// before was flushed before that segment began, as QMQ assumes) and the log
// is truncated at the first torn, zeroed or otherwise invalid record.
func Open(cfg Config) (*Log, error) {
	if cfg.SegmentSize == 0 {
		cfg.SegmentSize = DefaultSegmentSize
	}
	if cfg.SegmentSize < MinFillerSize+HeaderSize+offlineFixed+TrailerSize {
		return nil, fmt.Errorf("action log %s: segment size %d too small", cfg.Dir, cfg.SegmentSize)
	}
	if cfg.FlushInterval == 0 {
		cfg.FlushInterval = DefaultFlushInterval
	}
	if cfg.Logger == nil {
		cfg.Logger = hclog.NewNullLogger()
	}
	seg, err := segment.Open(segment.Config{FS: cfg.FS, Dir: cfg.Dir, SegmentSize: cfg.SegmentSize,
		SizeKey: "actionlog.segment.size", Filler: fillEOF, Logger: cfg.Logger})
	if err != nil {
		return nil, fmt.Errorf("open action log: %w", err)
	}
	l := &Log{cfg: cfg, seg: seg, log: cfg.Logger, appended: make(chan struct{}),
		stop: make(chan struct{}), done: make(chan struct{})}
	truncated, err := l.recover()
	if err != nil {
		seg.Close()
		return nil, err
	}
	if l.metrics, err = newMetrics(cfg.Registerer, l, truncated); err != nil {
		seg.Close()
		return nil, fmt.Errorf("open action log %s: %w", cfg.Dir, err)
	}
	if cfg.FlushInterval > 0 {
		go l.flusher()
	} else {
		close(l.done)
	}
	return l, nil
}

// fillEOF writes the EOF record at the start of a segment's unused tail. A
// tail shorter than the record stays zero: readers skip tails that short
// without looking. The rest of the tail is left as is (zeros in a fresh or
// recovered segment); readers never look past the EOF record.
func fillEOF(b []byte) {
	if len(b) < MinFillerSize {
		return
	}
	binary.BigEndian.PutUint32(b, Magic)
	b[4] = byte(RecordEOF)
}

// recover scans the last two segments and truncates after the last valid
// record. It returns the number of bytes cut (including the zero tail of the
// last segment, so it is an upper bound of what was lost).
func (l *Log) recover() (int64, error) {
	segs := l.seg.Segments()
	if len(segs) == 0 {
		return 0, nil
	}
	start := segs[max(0, len(segs)-2)].BaseOffset
	pos, records, torn, err := l.scan(start)
	if err != nil {
		return 0, err
	}
	l.recoveredTorn = torn
	end := l.seg.WrotePosition()
	if pos == end {
		l.log.Info("action log recovered", "dir", l.cfg.Dir, "from", start, "end", pos, "records", records)
		return 0, nil
	}
	if err := l.seg.Truncate(pos); err != nil {
		return 0, fmt.Errorf("recover action log %s: %w", l.cfg.Dir, err)
	}
	if torn {
		l.log.Warn("action log recovered, torn tail truncated", "dir", l.cfg.Dir, "from", start, "end", pos, "records", records)
	} else {
		l.log.Info("action log recovered", "dir", l.cfg.Dir, "from", start, "end", pos, "records", records)
	}
	return end - pos, nil
}

// scan validates records from pos to the end of the log and returns the
// offset after the last valid one, and whether non-zero bytes follow it (a
// torn or damaged record rather than the clean zero tail of a segment).
func (l *Log) scan(pos int64) (end int64, records int, torn bool, err error) {
	for {
		segEnd := l.seg.SegmentEnd(pos)
		if segEnd < 0 {
			return pos, records, false, nil // the end of the last segment
		}
		if segEnd-pos < MinFillerSize {
			pos = segEnd
			continue
		}
		v, err := l.seg.Read(pos, int(segEnd-pos))
		if err != nil {
			return 0, 0, false, fmt.Errorf("recover action log %s at %d: %w", l.cfg.Dir, pos, err)
		}
		b := v.Bytes()
		_, rt, n, err := DecodeAction(b)
		if err != nil {
			torn = slices.ContainsFunc(b[:min(len(b), MaxRecordSize)], func(c byte) bool { return c != 0 })
		}
		v.Release()
		switch {
		case err != nil:
			return pos, records, torn, nil
		case rt == RecordEOF:
			pos = segEnd
		default:
			pos += int64(n)
			if rt == RecordAction {
				records++
			}
		}
	}
}

// Append writes the actions as one reservation and publishes them together,
// so readers see all of them or none. (A batch larger than a segment is
// split into several reservations; if one fails, the earlier ones stay.) It
// returns the offset after the last record. Durability follows the flush
// policy: the bytes are in the page cache now and on disk after the next
// flush.
func (l *Log) Append(actions []Action) (endOffset int64, err error) {
	if len(actions) == 0 {
		return l.seg.WrotePosition(), nil
	}
	var small [16]int // typical batches need no allocation
	sizes := small[:min(len(actions), len(small))]
	if len(actions) > len(small) {
		sizes = make([]int, len(actions))
	}
	for i := range actions {
		if err := actions[i].validate(); err != nil {
			return 0, err
		}
		sizes[i] = encodedSize(&actions[i])
		if int64(sizes[i]) > l.cfg.SegmentSize {
			return 0, fmt.Errorf("%w: record of %d bytes does not fit a %d-byte segment", ErrInvalidAction, sizes[i], l.cfg.SegmentSize)
		}
	}
	start := time.Now()
	l.mu.Lock()
	defer l.mu.Unlock()
	for i := 0; i < len(actions); {
		j, n := i, 0
		for j < len(actions) && int64(n+sizes[j]) <= l.cfg.SegmentSize {
			n += sizes[j]
			j++
		}
		chunk := actions[i:j]
		if err := l.flushBeforeRoll(n); err != nil {
			if i > 0 {
				l.notify()
			}
			return 0, err
		}
		off, err := l.seg.Append(n, func(b []byte) {
			for k := range chunk {
				b = b[encodeInto(b, &chunk[k]):]
			}
		})
		if err != nil {
			if i > 0 {
				l.notify()
			}
			return 0, fmt.Errorf("append to action log %s: %w", l.cfg.Dir, err)
		}
		l.metrics.appended(chunk, n)
		endOffset = off + int64(n)
		i = j
	}
	l.metrics.appendLatency(time.Since(start))
	l.notify()
	return endOffset, nil
}

// flushBeforeRoll keeps the invariant recovery relies on: every segment
// before the last two is durable. When an append of n bytes is about to
// start a new segment, the segment it seals becomes the second-to-last, so
// everything before that one must be flushed first. With the default sizes
// (100 MiB segments, a flush every 500 ms) this never waits in practice; it
// matters when flushes fail or are disabled.
func (l *Log) flushBeforeRoll(n int) error {
	wrote := l.seg.WrotePosition()
	if end := l.seg.SegmentEnd(wrote); end >= 0 && wrote+int64(n) <= end {
		return nil // fits the active segment
	}
	segs := l.seg.Segments()
	if len(segs) == 0 || l.seg.FlushedPosition() >= segs[len(segs)-1].BaseOffset {
		return nil
	}
	if err := l.Flush(); err != nil {
		return fmt.Errorf("append to action log %s: flush before starting a segment: %w", l.cfg.Dir, err)
	}
	return nil
}

func (l *Log) notify() {
	l.notifyMu.Lock()
	defer l.notifyMu.Unlock()
	// Without waiters the channel is kept: no allocation per append.
	if l.taken && !l.closed {
		close(l.appended)
		l.appended = make(chan struct{})
		l.taken = false
	}
}

// Appended returns a channel closed by the next Append (or by Close). Take it
// before reading to the end, then wait on it: an append that lands between
// the two is not missed.
func (l *Log) Appended() <-chan struct{} {
	l.notifyMu.Lock()
	defer l.notifyMu.Unlock()
	l.taken = true
	return l.appended
}

// WrotePosition is the end of the published records.
func (l *Log) WrotePosition() int64 { return l.seg.WrotePosition() }

// FlushedPosition is the end of the records known durable.
func (l *Log) FlushedPosition() int64 { return l.seg.FlushedPosition() }

// MinOffset is the first offset still stored (retention raises it).
func (l *Log) MinOffset() int64 { return l.seg.MinOffset() }

// Segments describes the segment files, ascending (for retention by age).
func (l *Log) Segments() []segment.SegmentInfo { return l.seg.Segments() }

// Flush makes every record appended so far durable.
func (l *Log) Flush() error {
	start := time.Now()
	err := l.seg.Flush()
	l.metrics.flushed(time.Since(start), err)
	if err != nil {
		return fmt.Errorf("flush action log %s: %w", l.cfg.Dir, err)
	}
	return nil
}

// DeleteSegmentsBefore deletes the segments that end at or before offset
// (never the last one): retention, once the action checkpoint is past them.
func (l *Log) DeleteSegmentsBefore(offset int64) (int, error) {
	n, err := l.seg.DeleteSegmentsBefore(offset)
	if err != nil {
		return n, fmt.Errorf("action log %s: %w", l.cfg.Dir, err)
	}
	if n > 0 {
		l.log.Info("action log segments deleted", "dir", l.cfg.Dir, "count", n, "before", offset)
	}
	return n, nil
}

// flusher flushes every FlushInterval until Close.
func (l *Log) flusher() {
	defer close(l.done)
	tick := time.NewTicker(l.cfg.FlushInterval)
	defer tick.Stop()
	lastUnmap := time.Now()
	for {
		select {
		case <-l.stop:
			return
		case now := <-tick.C:
			if l.seg.WrotePosition() > l.seg.FlushedPosition() {
				if err := l.Flush(); err != nil && !errors.Is(err, segment.ErrClosed) {
					l.log.Error("action log flush failed", "error", err)
				}
			}
			if now.Sub(lastUnmap) >= unmapIdleInterval {
				lastUnmap = now
				l.seg.UnmapIdle()
			}
		}
	}
}

// Close stops the flusher, flushes, closes the segments, wakes Appended
// waiters and unregisters the metrics. Iterators fail afterwards.
func (l *Log) Close() error {
	l.closeOnce.Do(func() {
		close(l.stop)
		<-l.done
		l.mu.Lock() // wait for an Append in progress
		if err := l.seg.Close(); err != nil {
			l.closeErr = fmt.Errorf("close action log: %w", err)
		}
		l.mu.Unlock()
		l.notifyMu.Lock()
		l.closed = true
		close(l.appended)
		l.notifyMu.Unlock()
		l.metrics.unregister()
	})
	return l.closeErr
}

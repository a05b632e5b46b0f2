package messagelog

import (
	"context"
	"errors"
	"fmt"
	"hash/crc32"
	"math"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/qmq-go/qmq/storage/segment"
	"github.com/qmq-go/qmq/storage/vfs"
)

// Defaults.
const (
	DefaultSegmentSize   = 1 << 30
	DefaultFlushInterval = 500 * time.Millisecond
)

// ErrClosed is returned after Close.
var ErrClosed = errors.New("messagelog: closed")

// Message is one message to append.
type Message struct {
	Subject   string
	Payload   []byte // the client's message minus its leading CRC; not empty
	Timestamp int64  // milliseconds; 0 = now
}

// Appended describes an appended message, as its consumer-log entry needs it.
type Appended struct {
	Offset     int64
	Size       int32
	HeaderSize int16
	Sequence   int64
	Timestamp  int64
}

// Start is where recovery may begin, from the message checkpoint (zero value:
// no checkpoint, scan everything).
type Start struct {
	Offset       int64
	MaxSequences map[string]int64
}

// Config configures a Log.
type Config struct {
	FS            vfs.FS // nil: vfs.Default()
	Dir           string
	SegmentSize   int64         // 0: DefaultSegmentSize
	FlushSync     bool          // Append returns after an fsync covering it
	FlushInterval time.Duration // background flush period; 0: DefaultFlushInterval
	// ResidentBytes: see segment.Config.ResidentBytes (0 = unbounded).
	ResidentBytes int64
	Logger        hclog.Logger
	Registerer    prometheus.Registerer // nil: metrics are not registered
}

// Log is the message log. Append is safe for concurrent use; so are Read,
// Iterate and the rest.
type Log struct {
	cfg     Config
	seg     *segment.Log
	log     hclog.Logger
	metrics *metrics

	appendMu  sync.Mutex
	nextSeq   map[string]*int64 // guarded by appendMu
	raised    map[string]int64  // floors from RaiseSequences and the start checkpoint (see raw.go), guarded by appendMu
	raisedNew map[string]int64  // the floors raised since the last TakeRaisedChanges, guarded by appendMu

	notify atomic.Pointer[chan struct{}] // Appended(): closed on the next append

	// Group commit: see waitFlushed. kick asks the flusher for a flush.
	kick    chan struct{}
	gcMu    sync.Mutex
	running *flushGen // the flush in progress, if any
	next    *flushGen // the flush that waiters not covered by running wait for

	// failed is the first flush error. After it the log refuses appends
	// (fail-stop): a failed fsync may have dropped dirty pages, and later
	// successful fsyncs would then acknowledge records behind a hole that
	// recovery truncates at. Reopening the log recovers.
	failed atomic.Pointer[error]

	stop      chan struct{}
	done      chan struct{}
	closeOnce sync.Once
	closed    atomic.Bool
}

// Open opens the log in cfg.Dir, recovers it (see the package documentation)
// and starts its flusher.
func Open(cfg Config, start Start) (*Log, error) {
	if cfg.FS == nil {
		cfg.FS = vfs.Default()
	}
	if cfg.SegmentSize == 0 {
		cfg.SegmentSize = DefaultSegmentSize
	}
	if cfg.SegmentSize < MinRecordSize+fixedHeaderSize || cfg.SegmentSize > math.MaxInt32 {
		// Record sizes are i32 in the format and in the consumer log.
		return nil, fmt.Errorf("message log %s: segment size %d out of range", cfg.Dir, cfg.SegmentSize)
	}
	if cfg.FlushInterval <= 0 {
		cfg.FlushInterval = DefaultFlushInterval
	}
	if cfg.Logger == nil {
		cfg.Logger = hclog.NewNullLogger()
	}
	l := &Log{
		cfg:     cfg,
		log:     cfg.Logger,
		nextSeq: map[string]*int64{},
		kick:    make(chan struct{}, 1),
		stop:    make(chan struct{}),
		done:    make(chan struct{}),
	}
	seg, err := segment.Open(segment.Config{
		FS:            cfg.FS,
		Dir:           cfg.Dir,
		SegmentSize:   cfg.SegmentSize,
		SizeKey:       "messagelog.segment.size",
		Filler:        fillEOF(func() int64 { return time.Now().UnixMilli() }),
		ResidentBytes: cfg.ResidentBytes,
		WriteThrough:  true, // see segment.Config.WriteThrough
		Logger:        cfg.Logger,
	})
	if err != nil {
		return nil, fmt.Errorf("open message log: %w", err)
	}
	l.seg = seg
	if err := l.recover(start); err != nil {
		seg.Close()
		return nil, err
	}
	l.RaiseSequences(start.MaxSequences) // kept for checkpoints (see RaisedSequences)
	m, err := newMetrics(cfg.Registerer, l)
	if err != nil {
		seg.Close()
		return nil, fmt.Errorf("message log %s: %w", cfg.Dir, err)
	}
	l.metrics = m
	go l.flusher()
	return l, nil
}

// Append writes msgs as one reservation (never split across segments),
// assigning each message the next sequence of its subject. With FlushSync it
// returns after an fsync covering the batch; if ctx ends or the fsync fails
// first, it returns the batch's Appended values with the error: the batch is
// in the log but may not be durable.
func (l *Log) Append(ctx context.Context, msgs []Message) ([]Appended, error) {
	if len(msgs) == 0 {
		return nil, nil
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	begin := time.Now()
	var crcBuf [8]uint32
	crcs := crcBuf[:0]
	if len(msgs) > len(crcBuf) {
		crcs = make([]uint32, 0, len(msgs))
	}
	total := 0
	now := int64(0)
	for i := range msgs {
		m := &msgs[i]
		if n := len(m.Subject); n == 0 || n > MaxSubjectLen || strings.IndexByte(m.Subject, 0) >= 0 {
			return nil, fmt.Errorf("message log: invalid subject %q", m.Subject)
		}
		if len(m.Payload) == 0 {
			return nil, fmt.Errorf("message log: empty payload for subject %q", m.Subject)
		}
		if m.Timestamp < 0 {
			return nil, fmt.Errorf("message log: negative timestamp %d", m.Timestamp)
		}
		if m.Timestamp == 0 && now == 0 {
			now = begin.UnixMilli()
		}
		crcs = append(crcs, crc32.ChecksumIEEE(m.Payload)) // outside the lock
		total += recordSize(len(m.Subject), len(m.Payload))
	}
	if int64(total) > l.cfg.SegmentSize {
		return nil, fmt.Errorf("message log: batch of %d bytes exceeds the segment size %d", total, l.cfg.SegmentSize)
	}
	out := make([]Appended, len(msgs))

	l.appendMu.Lock()
	if l.closed.Load() {
		l.appendMu.Unlock()
		return nil, ErrClosed
	}
	if err := l.failure(); err != nil {
		l.appendMu.Unlock()
		return nil, err
	}
	base, err := l.seg.Append(total, func(b []byte) {
		pos := 0
		for i := range msgs {
			m := &msgs[i]
			ts := m.Timestamp
			if ts == 0 {
				ts = now
			}
			seq := l.takeSequence(m.Subject)
			size := recordSize(len(m.Subject), len(m.Payload))
			encodeRecord(b[pos:pos+size], ts, seq, m.Subject, crcs[i], m.Payload)
			out[i] = Appended{
				Offset:     int64(pos),
				Size:       int32(size),
				HeaderSize: int16(size - len(m.Payload)),
				Sequence:   seq,
				Timestamp:  ts,
			}
			pos += size
		}
	})
	l.appendMu.Unlock()
	if err != nil {
		return nil, fmt.Errorf("message log append: %w", err)
	}
	for i := range out {
		out[i].Offset += base
	}
	if l.notify.Load() != nil {
		if ch := l.notify.Swap(nil); ch != nil {
			close(*ch)
		}
	}
	if l.cfg.FlushSync {
		if err := l.waitFlushed(ctx, base+int64(total)); err != nil {
			return out, err
		}
	}
	l.metrics.appendSeconds.Observe(time.Since(begin).Seconds())
	return out, nil
}

// takeSequence returns and advances subject's next sequence (appendMu held).
func (l *Log) takeSequence(subject string) int64 {
	p := l.nextSeq[subject]
	if p == nil {
		p = new(int64)
		l.nextSeq[string([]byte(subject))] = p // do not retain the caller's buffer
	}
	seq := *p
	*p = seq + 1
	return seq
}

// flushGen is one flush by the flusher: it covers every record ending at or
// below target, and done is closed when it finishes.
type flushGen struct {
	target int64
	done   chan struct{}
}

// waitFlushed blocks until an fsync covers end. It does not flush itself: if
// the flush in progress covers end it waits for that one, otherwise it queues
// for the next one and kicks the flusher. Every appender that arrives during
// a flush therefore shares the next fsync (group commit), and each flush wakes
// only the waiters it covers.
func (l *Log) waitFlushed(ctx context.Context, end int64) error {
	for {
		if l.seg.FlushedPosition() >= end {
			return nil
		}
		if err := l.failure(); err != nil {
			return err
		}
		l.gcMu.Lock()
		g := l.running
		queued := g == nil || g.target < end
		if queued {
			if l.next == nil {
				l.next = &flushGen{done: make(chan struct{})}
			}
			g = l.next
		}
		l.gcMu.Unlock()
		if queued {
			select {
			case l.kick <- struct{}{}:
			default: // a flush is already requested
			}
		}
		select {
		case <-g.done:
		case <-ctx.Done():
			return ctx.Err()
		case <-l.done:
			if l.seg.FlushedPosition() >= end {
				return nil
			}
			return ErrClosed
		}
	}
}

// flusher flushes every FlushInterval and whenever a synchronous appender
// asks, until Close.
func (l *Log) flusher() {
	defer close(l.done)
	ticker := time.NewTicker(l.cfg.FlushInterval)
	defer ticker.Stop()
	for {
		select {
		case <-l.stop:
			l.flushOnce()
			return
		case <-l.kick:
		case <-ticker.C:
		}
		l.flushOnce()
	}
}

func (l *Log) flushOnce() {
	l.gcMu.Lock()
	g := l.next
	l.next = nil
	if g == nil {
		g = &flushGen{done: make(chan struct{})}
	}
	// Everything published now is covered: the segment flush reads the write
	// position again later.
	g.target = l.seg.WrotePosition()
	l.running = g
	l.gcMu.Unlock()

	begin := time.Now()
	err := l.flush()
	if err != nil && !errors.Is(err, segment.ErrClosed) {
		l.log.Error("message log flush failed", "dir", l.cfg.Dir, "error", err)
	}
	l.metrics.flushSeconds.Observe(time.Since(begin).Seconds())

	l.gcMu.Lock()
	l.running = nil
	l.gcMu.Unlock()
	close(g.done)
}

// Flush makes everything appended so far durable.
func (l *Log) Flush() error { return l.flush() }

func (l *Log) flush() error {
	if err := l.failure(); err != nil {
		return err
	}
	err := l.seg.Flush()
	if err == nil || errors.Is(err, segment.ErrClosed) {
		return err
	}
	err = fmt.Errorf("message log flush: %w", err)
	l.failed.CompareAndSwap(nil, &err)
	return err
}

// failure is the error that stopped the log, if any.
func (l *Log) failure() error {
	if p := l.failed.Load(); p != nil {
		return fmt.Errorf("message log %s failed, reopen to recover: %w", l.cfg.Dir, *p)
	}
	return nil
}

// Read returns the record at offset, whose size comes from the consumer log.
// The record aliases the mapping until Release. It does not allocate and does
// not recompute the CRC (records were validated when written or recovered;
// see Record.CheckCRC).
func (l *Log) Read(offset int64, size int32) (Record, error) {
	v, err := l.seg.Read(offset, int(size))
	if err != nil {
		return Record{}, err
	}
	rec, n, err := decode(v.Bytes(), false)
	if err == nil && (n != int(size) || rec.Attr != AttrMessage) {
		err = ErrSizeMismatch
	}
	if err != nil {
		v.Release()
		return Record{}, err
	}
	rec.Offset = offset
	rec.view = v
	return rec, nil
}

// WrotePosition is the end of the appended records.
func (l *Log) WrotePosition() int64 { return l.seg.WrotePosition() }

// FlushedPosition is the end of the records known durable.
func (l *Log) FlushedPosition() int64 { return l.seg.FlushedPosition() }

// Appended returns a channel closed on the next append (take it before
// checking WrotePosition to never miss a wake-up).
func (l *Log) Appended() <-chan struct{} {
	for {
		if p := l.notify.Load(); p != nil {
			return *p
		}
		ch := make(chan struct{})
		if l.notify.CompareAndSwap(nil, &ch) {
			return ch
		}
	}
}

// NextSequence is the sequence the next message of subject will get.
func (l *Log) NextSequence(subject string) int64 {
	l.appendMu.Lock()
	defer l.appendMu.Unlock()
	if p := l.nextSeq[subject]; p != nil {
		return *p
	}
	return 0
}

// MaxSequences returns every subject's highest assigned sequence.
func (l *Log) MaxSequences() map[string]int64 {
	l.appendMu.Lock()
	defer l.appendMu.Unlock()
	out := make(map[string]int64, len(l.nextSeq))
	for s, p := range l.nextSeq {
		out[s] = *p - 1
	}
	return out
}

// Segments describes the segment files, ascending.
func (l *Log) Segments() []segment.SegmentInfo { return l.seg.Segments() }

// DeleteSegmentsBefore deletes whole segments ending at or before offset
// (never the active one).
func (l *Log) DeleteSegmentsBefore(offset int64) (int, error) {
	return l.seg.DeleteSegmentsBefore(offset)
}

// MinOffset is the first offset still stored.
func (l *Log) MinOffset() int64 { return l.seg.MinOffset() }

// UnmapIdle releases mappings of segments unread since the previous call.
func (l *Log) UnmapIdle() int { return l.seg.UnmapIdle() }

// Close stops the flusher, flushes and closes the segments.
func (l *Log) Close() error {
	var err error
	l.closeOnce.Do(func() {
		l.appendMu.Lock()
		l.closed.Store(true)
		l.appendMu.Unlock()
		close(l.stop)
		<-l.done
		err = l.seg.Close()
		l.metrics.unregister()
	})
	return err
}

package pebblestore

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cockroachdb/pebble/v2"
	"github.com/hashicorp/go-hclog"

	"github.com/qmq-go/qmq/backup"
	"github.com/qmq-go/qmq/backup/dic"
	"github.com/qmq-go/qmq/backup/rowstore"
)

// Store is a backup.Store in a Pebble database.
type Store struct {
	*rowstore.Store
	tables *tables
	dict   dic.Dictionary
}

var _ backup.Store = (*Store)(nil)

var tablePrefix = map[rowstore.Table]byte{
	rowstore.Messages:    'm',
	rowstore.Records:     'r',
	rowstore.Dead:        'd',
	rowstore.DeadContent: 'c',
	rowstore.Details:     'b',
	rowstore.IDIndex:     'x',
	rowstore.IDOrdered:   'y',
}

const (
	dictPrefix   = 'D'
	expiryPrefix = 'e'
	dayLayout    = "20060102"
)

// Open opens (creating if needed) the store in s.Dir and starts its
// retention goroutine, which Close stops.
func Open(s Settings) (*Store, error) {
	if err := s.Validate(); err != nil {
		return nil, err
	}
	if s.Logger == nil {
		s.Logger = hclog.NewNullLogger()
	}
	cache := pebble.NewCache(s.CacheBytes)
	defer cache.Unref()
	opts := &pebble.Options{Cache: cache, Logger: pebbleLogger{s.Logger.Named("pebble")}}
	// Point lookups (dictionary, detail rows) read one key each; bloom
	// filters spare them most sstable reads.
	for i := range opts.Levels {
		opts.Levels[i].FilterPolicy = bloom10
	}
	// A follower writes at the broker's rate, three keys per message (one of
	// them, the id index, random over the key space). With Pebble's defaults
	// (4 MiB memtables, a 64 MiB Lbase) a million messages took 665 flushes
	// and a write amplification of 9, and compactions took 87% of the CPU
	// (62 µs per message, 17,000 msg/s: the backup fell behind the broker).
	// Larger memtables flush a tenth as often into larger L0 files, and a
	// larger Lbase rewrites less per L0 compaction: 14 µs per message, write
	// amplification 2 (TestPerfWriteRate; the figures are in docs/backup.md).
	// It costs memory: up to MemTableStopWritesThreshold memtables.
	opts.MemTableSize = uint64(s.MemTableBytes)
	opts.MemTableStopWritesThreshold = 4
	opts.L0CompactionThreshold = 4
	opts.L0StopWritesThreshold = 32
	opts.LBaseMaxBytes = 8 * s.MemTableBytes
	opts.TargetFileSizes[0] = s.MemTableBytes / 8
	db, err := pebble.Open(s.Dir, opts)
	if err != nil {
		return nil, fmt.Errorf("open the backup's Pebble store in %s: %w (is another backup using the directory?)", s.Dir, err)
	}
	t := &tables{db: db, settings: s, log: s.Logger, stop: make(chan struct{})}
	t.expiryIDs.Store(uint64(time.Now().UnixNano()))
	if s.Sync {
		t.wo = pebble.Sync
	} else {
		t.wo = pebble.NoSync
	}
	dict := dic.NewKV(dictKV{t}, "Pebble store "+s.Dir)
	st := &Store{
		Store:  rowstore.New(t, dict, rowstore.Options{Location: s.Location, IDIndex: s.IDIndex, Name: "Pebble store " + s.Dir}),
		tables: t,
		dict:   dict,
	}
	if s.RetentionDays > 0 {
		t.wg.Add(1)
		go t.retentionLoop()
	}
	return st, nil
}

// Dictionary is the store's own dictionary.
func (s *Store) Dictionary() dic.Dictionary { return s.dict }

// DeleteExpired deletes the rows older than the retention now (the
// retention goroutine calls it on its own) and returns how many.
func (s *Store) DeleteExpired(ctx context.Context, now time.Time) (int, error) {
	return s.tables.deleteExpired(ctx, now)
}

// tables keeps rowstore's tables in one Pebble database.
type tables struct {
	db       *pebble.DB
	wo       *pebble.WriteOptions
	settings Settings
	log      hclog.Logger
	// expiryIDs numbers the expiry lists; it starts at the opening's time in
	// nanoseconds, above every id of an earlier run.
	expiryIDs atomic.Uint64

	closeOnce sync.Once
	mu        sync.RWMutex // held for reading by every operation; Close takes it to write
	closed    bool
	stop      chan struct{}
	wg        sync.WaitGroup
}

var errClosed = errors.New("the Pebble store is closed")

func (t *tables) enter() error {
	t.mu.RLock()
	if t.closed {
		t.mu.RUnlock()
		return fmt.Errorf("backup store in %s: %w", t.settings.Dir, errClosed)
	}
	return nil
}

func (t *tables) leave() { t.mu.RUnlock() }

func key(table rowstore.Table, k []byte) []byte {
	p, ok := tablePrefix[table]
	if !ok {
		panic("pebblestore: unknown table " + string(table))
	}
	b := make([]byte, 0, 1+len(k))
	return append(append(b, p), k...)
}

// expiryListKey names one write's expiry list for day: the day, a zero
// byte (a table byte is a letter, so old one-key-per-row entries and lists
// never mix up) and an id unique to the write (a counter started at the
// opening's time in nanoseconds, so a restart does not reuse one unless the
// clock went back; a reused id would overwrite an older list, whose rows
// would then outlive the retention).
func expiryListKey(day string, id uint64) []byte {
	b := make([]byte, 0, 2+len(day)+8)
	b = append(b, expiryPrefix)
	b = append(b, day...)
	b = append(b, 0)
	return binary.BigEndian.AppendUint64(b, id)
}

func (t *tables) Put(ctx context.Context, rows []rowstore.Row) error {
	if err := t.enter(); err != nil {
		return err
	}
	defer t.leave()
	if err := ctx.Err(); err != nil {
		return err
	}
	type kv struct {
		k, v []byte
		i    int
	}
	kvs := make([]kv, len(rows))
	for i, r := range rows {
		kvs[i] = kv{key(r.Table, r.Key), r.Value, i}
	}
	// One expiry list per day of the batch's rows, not a key per row: the
	// retention finds the rows of a day from a few keys, and a write costs
	// one more key rather than twice its keys.
	var lists map[string][]byte
	if t.settings.RetentionDays > 0 {
		lists = map[string][]byte{}
		// A batch's rows are almost all of one day: format a day once, not
		// per row.
		var day string
		var dayStart, dayEnd time.Time
		for i, r := range rows {
			if at := r.Time.UTC(); at.Before(dayStart) || !at.Before(dayEnd) {
				dayStart = time.Date(at.Year(), at.Month(), at.Day(), 0, 0, 0, 0, time.UTC)
				dayEnd = dayStart.AddDate(0, 0, 1)
				day = dayStart.Format(dayLayout)
			}
			lists[day] = binary.AppendUvarint(lists[day], uint64(len(kvs[i].k)))
			lists[day] = append(lists[day], kvs[i].k...)
		}
	}
	// In key order, the memtable's skip list inserts each key next to the
	// one before it (its inserter keeps the last position): a follower's
	// rows are runs of ascending keys per subject, and inserting them in
	// arrival order walked the list from the top for every key (the largest
	// cost of a write once compactions were tuned). A key written twice in
	// one batch keeps its last value: equal keys stay in arrival order (by
	// index; a stable sort cost twice as much).
	slices.SortFunc(kvs, func(a, b kv) int {
		if c := bytes.Compare(a.k, b.k); c != 0 {
			return c
		}
		return a.i - b.i
	})
	b := t.db.NewBatch()
	defer b.Close()
	for _, e := range kvs {
		if err := b.Set(e.k, e.v, nil); err != nil {
			return err
		}
	}
	for day, list := range lists {
		if err := b.Set(expiryListKey(day, t.expiryIDs.Add(1)), list, nil); err != nil {
			return err
		}
	}
	if err := t.db.Apply(b, t.wo); err != nil {
		return fmt.Errorf("write %d rows to the Pebble store in %s: %w", len(rows), t.settings.Dir, err)
	}
	return nil
}

// Sync makes the Puts that returned durable. Without Settings.Sync they
// are in Pebble's write-ahead log but maybe not on disk (or, after a
// kill -9, not even in the file: Pebble buffers the log in the process);
// a synced write of an empty log record flushes and fsyncs the log up to
// it, and so every write before it (the log is written in commit order,
// and a log Pebble switched away from was synced when it was closed).
func (t *tables) Sync(ctx context.Context) error {
	if err := t.enter(); err != nil {
		return err
	}
	defer t.leave()
	if t.wo == pebble.Sync {
		return nil // every Put was synced
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	if err := t.db.LogData(nil, pebble.Sync); err != nil {
		return fmt.Errorf("sync the Pebble store in %s: %w", t.settings.Dir, err)
	}
	return nil
}

func (t *tables) Get(_ context.Context, table rowstore.Table, k []byte) ([]byte, bool, error) {
	if err := t.enter(); err != nil {
		return nil, false, err
	}
	defer t.leave()
	return t.get(key(table, k))
}

func (t *tables) get(k []byte) ([]byte, bool, error) {
	v, closer, err := t.db.Get(k)
	if errors.Is(err, pebble.ErrNotFound) {
		return nil, false, nil
	}
	if err != nil {
		return nil, false, fmt.Errorf("read the Pebble store in %s: %w", t.settings.Dir, err)
	}
	out := append([]byte(nil), v...)
	closer.Close()
	return out, true, nil
}

func (t *tables) Scan(ctx context.Context, s rowstore.Scan, fn func(k, v []byte) bool) error {
	if err := t.enter(); err != nil {
		return err
	}
	defer t.leave()
	it, err := t.db.NewIterWithContext(ctx, &pebble.IterOptions{LowerBound: key(s.Table, s.Start), UpperBound: key(s.Table, s.Stop)})
	if err != nil {
		return fmt.Errorf("read the Pebble store in %s: %w", t.settings.Dir, err)
	}
	n := 0
	for ok := it.First(); ok; ok = it.Next() {
		if n++; n%1024 == 0 {
			if err := ctx.Err(); err != nil {
				it.Close()
				return err
			}
		}
		v, err := it.ValueAndErr()
		if err != nil {
			it.Close()
			return fmt.Errorf("read the Pebble store in %s: %w", t.settings.Dir, err)
		}
		if !fn(it.Key()[1:], v) {
			break
		}
	}
	if err := it.Close(); err != nil {
		return fmt.Errorf("read the Pebble store in %s: %w", t.settings.Dir, err)
	}
	return nil
}

// Close stops the retention goroutine, waits for the operations under way
// and closes the database (flushing its memtable).
func (t *tables) Close() error {
	var err error
	t.closeOnce.Do(func() {
		close(t.stop)
		t.wg.Wait()
		t.mu.Lock()
		t.closed = true
		t.mu.Unlock()
		err = t.db.Close()
	})
	return err
}

// dictKV keeps the dictionary under dictPrefix, always synced.
type dictKV struct{ t *tables }

func (d dictKV) Get(k []byte) ([]byte, bool, error) {
	if err := d.t.enter(); err != nil {
		return nil, false, err
	}
	defer d.t.leave()
	return d.t.get(append([]byte{dictPrefix}, k...))
}

func (d dictKV) PutSync(pairs [][2][]byte) error {
	if err := d.t.enter(); err != nil {
		return err
	}
	defer d.t.leave()
	b := d.t.db.NewBatch()
	defer b.Close()
	for _, p := range pairs {
		if err := b.Set(append([]byte{dictPrefix}, p[0]...), p[1], nil); err != nil {
			return err
		}
	}
	return d.t.db.Apply(b, pebble.Sync)
}

type pebbleLogger struct{ l hclog.Logger }

func (p pebbleLogger) Infof(format string, args ...any)  { p.l.Debug(fmt.Sprintf(format, args...)) }
func (p pebbleLogger) Errorf(format string, args ...any) { p.l.Error(fmt.Sprintf(format, args...)) }
func (p pebbleLogger) Fatalf(format string, args ...any) {
	p.l.Error(fmt.Sprintf(format, args...))
	panic(fmt.Sprintf(format, args...))
}

package pebblestore

import (
	"context"
	"errors"
	"fmt"
	"sync"
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
	db, err := pebble.Open(s.Dir, opts)
	if err != nil {
		return nil, fmt.Errorf("open the backup's Pebble store in %s: %w (is another backup using the directory?)", s.Dir, err)
	}
	t := &tables{db: db, settings: s, log: s.Logger, stop: make(chan struct{})}
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

func expiryKey(day string, table rowstore.Table, k []byte) []byte {
	b := make([]byte, 0, 2+len(day)+len(k))
	b = append(b, expiryPrefix)
	b = append(b, day...)
	b = append(b, tablePrefix[table])
	return append(b, k...)
}

func (t *tables) Put(ctx context.Context, rows []rowstore.Row) error {
	if err := t.enter(); err != nil {
		return err
	}
	defer t.leave()
	if err := ctx.Err(); err != nil {
		return err
	}
	b := t.db.NewBatch()
	defer b.Close()
	for _, r := range rows {
		if err := b.Set(key(r.Table, r.Key), r.Value, nil); err != nil {
			return err
		}
		if t.settings.RetentionDays > 0 {
			if err := b.Set(expiryKey(r.Time.UTC().Format(dayLayout), r.Table, r.Key), nil, nil); err != nil {
				return err
			}
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

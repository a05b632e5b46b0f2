package rowstore

import (
	"context"
	"errors"
	"fmt"
	"sync/atomic"
	"time"

	"github.com/qmq-go/qmq/backup"
	"github.com/qmq-go/qmq/backup/dic"
	"github.com/qmq-go/qmq/backup/rowkey"
)

// Options of a Store.
type Options struct {
	// Location is the time zone of the keys' yyMMddHHmmss; it must be the
	// one every other reader and writer of the tables uses (QMQ's JVM
	// default zone). Nil means time.Local.
	Location *time.Location
	// IDIndex writes and reads the qmq_backup_id table for message-id
	// queries (Pebble); without it such queries filter the subject's time
	// range with QMQ's regexp (HBase).
	IDIndex bool
	// Now is the clock for the default time range; nil means time.Now.
	Now func() time.Time
	// Name says which store this is, in errors ("Pebble store at /data/backup").
	Name string
}

// DefaultRange is how far back a query without msgCreateTimeBegin looks,
// as QMQ.
const DefaultRange = 30 * 24 * time.Hour

// Store is a backup.Store over Tables.
type Store struct {
	t      Tables
	dict   dic.Dictionary
	opts   Options
	closed atomic.Bool
}

var _ backup.Store = (*Store)(nil)

// New is a Store over t with names mapped by dict. Close closes t.
func New(t Tables, dict dic.Dictionary, opts Options) *Store {
	if opts.Location == nil {
		opts.Location = time.Local
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.Name == "" {
		opts.Name = "backup store"
	}
	return &Store{t: t, dict: dict, opts: opts}
}

// Tables is the store's backend.
func (s *Store) Tables() Tables { return s.t }

// Sync makes every Put that returned durable.
func (s *Store) Sync(ctx context.Context) error {
	if err := s.check(); err != nil {
		return err
	}
	if err := s.t.Sync(ctx); err != nil {
		return fmt.Errorf("%s: sync: %w", s.opts.Name, err)
	}
	return nil
}

// Close closes the backend; later calls fail.
func (s *Store) Close() error {
	if s.closed.Swap(true) {
		return nil
	}
	return s.t.Close()
}

var errClosed = errors.New("the store is closed")

func (s *Store) check() error {
	if s.closed.Load() {
		return fmt.Errorf("%s: %w", s.opts.Name, errClosed)
	}
	return nil
}

// FieldError is a query's error that names the field at fault (in QMQ's
// JSON spelling: subject, len, msgCreateTimeBegin, start, …); it wraps
// backup.ErrBadQuery or backup.ErrNotFound. The HTTP API reports the field.
type FieldError struct {
	Name string // the field
	Msg  string
	Err  error // backup.ErrBadQuery or backup.ErrNotFound
}

func (e *FieldError) Error() string { return e.Name + ": " + e.Msg }
func (e *FieldError) Unwrap() error { return e.Err }

// Field is the name of the field at fault.
func (e *FieldError) Field() string { return e.Name }

func badQuery(field, format string, args ...any) error {
	return &FieldError{Name: field, Msg: fmt.Sprintf(format, args...), Err: backup.ErrBadQuery}
}

func (s *Store) timeKey(t time.Time) string { return rowkey.TimeKey(t, s.opts.Location) }

// prefixEnd is the first key after every key starting with p: our keys are
// ASCII, so p + 0xff.
func prefixEnd(p []byte) []byte { return append(append([]byte(nil), p...), 0xff) }

func concat(parts ...string) []byte {
	var b []byte
	for _, p := range parts {
		b = append(b, p...)
	}
	return b
}

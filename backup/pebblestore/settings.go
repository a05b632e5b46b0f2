package pebblestore

import (
	"fmt"
	"time"

	"github.com/hashicorp/go-hclog"
)

// Settings of a Pebble store.
type Settings struct {
	// Dir is the database directory (created if missing).
	Dir string
	// RetentionDays: rows older than this many days are deleted
	// (backup.retention.days); 0 keeps everything.
	RetentionDays int
	// RetentionCheckInterval is how often old rows are looked for.
	RetentionCheckInterval time.Duration
	// Sync fsyncs every Put before it returns. Without it a Put is durable
	// only after the next Store.Sync (what the follower does before each
	// checkpoint: `qmq backup` runs without it).
	Sync bool
	// IDIndex keeps qmq_backup_id for fast message-id queries.
	IDIndex bool
	// CacheBytes is Pebble's block cache.
	CacheBytes int64
	// MemTableBytes is the size of one of Pebble's memtables (up to four
	// are in memory while flushes run behind writes). Smaller saves memory
	// and costs compaction CPU per message written.
	MemTableBytes int64
	// Location is the zone of the row keys' times (nil: time.Local).
	Location *time.Location
	Logger   hclog.Logger
}

// DefaultSettings keeps 30 days (QMQ's query range), syncs every write and
// keeps the id index.
func DefaultSettings() Settings {
	return Settings{
		RetentionDays:          30,
		RetentionCheckInterval: time.Hour,
		Sync:                   true,
		IDIndex:                true,
		CacheBytes:             64 << 20,
		MemTableBytes:          64 << 20,
	}
}

// Validate checks s.
func (s Settings) Validate() error {
	switch {
	case s.Dir == "":
		return fmt.Errorf("pebble store: no directory (store.root)")
	case s.RetentionDays < 0 || s.RetentionDays > 100*365:
		return fmt.Errorf("pebble store: backup.retention.days %d is not 0 (keep all) .. 36500", s.RetentionDays)
	case s.RetentionDays > 0 && s.RetentionCheckInterval < time.Second:
		return fmt.Errorf("pebble store: retention check interval %s is under 1s", s.RetentionCheckInterval)
	case s.CacheBytes < 0:
		return fmt.Errorf("pebble store: cache size %d is negative", s.CacheBytes)
	case s.MemTableBytes < 1<<20 || s.MemTableBytes > 1<<30:
		return fmt.Errorf("pebble store: memtable size %d is not 1 MiB .. 1 GiB", s.MemTableBytes)
	}
	return nil
}

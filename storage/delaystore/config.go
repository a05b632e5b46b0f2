package delaystore

import (
	"fmt"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/qmq-go/qmq/storage/vfs"
)

// Config configures a Store. DefaultConfig gives QMQ's defaults
// (delay.properties, reference §10).
type Config struct {
	Root string
	FS   vfs.FS // nil: vfs.Default()
	// SegmentScale is the span of one schedule bucket (segment.scale.minute,
	// 5..60 minutes, whole minutes). It is stored under Root on first use and
	// a different value is refused afterwards: bucket names would no longer
	// match their contents.
	SegmentScale time.Duration
	// MessageSegmentSize is the segment size of the message log and of the
	// schedule buckets (per.segment.file.size). Replicas need the same value.
	MessageSegmentSize int64
	// DispatchSegmentSize is the dispatch log's segment size, a multiple of
	// 32 (0: DefaultDispatchSegmentSize). Replicas need the same value.
	DispatchSegmentSize int64
	// MaxMessageSize bounds one message's payload (per.message.size).
	MaxMessageSize int
	// FlushSync makes Append, MarkDispatched and Cancel return after an
	// fsync covering them; otherwise a background flush runs every
	// FlushInterval.
	FlushSync     bool
	FlushInterval time.Duration
	// LoadAhead: the loader keeps every bucket starting before now+LoadAhead
	// in the wheel (load.in.advance.min, default (scale+1)/2 minutes).
	LoadAhead time.Duration
	// Retention (log.expired.delete.enable gates all deletion): a schedule
	// bucket is deleted ScheduleCleanAfter after its end once every entry in
	// it was dispatched or cancelled; a dispatch-log segment DispatchLogKeep
	// after its last record once no bucket it refers to remains; a
	// message-log segment MessageLogRetention after it was last written once
	// it was replayed into the buckets.
	DispatchLogKeep     time.Duration
	ScheduleCleanAfter  time.Duration
	MessageLogRetention time.Duration
	DeleteExpired       bool
	// DiskFreeMin refuses Append while the file system holding Root has less
	// free space (0: no check). Dispatch records are still written.
	DiskFreeMin int64
	Now         func() time.Time // nil: time.Now
	Logger      hclog.Logger
	Registerer  prometheus.Registerer
}

// Defaults not named by delay.properties.
const (
	DefaultMessageSegmentSize  = 64 << 20
	DefaultDispatchSegmentSize = 4 << 20
	DefaultMaxMessageSize      = 16 << 20
	DefaultFlushInterval       = 500 * time.Millisecond
)

// DefaultConfig returns QMQ's defaults for a store under root.
func DefaultConfig(root string) Config {
	return Config{
		Root:                root,
		SegmentScale:        60 * time.Minute,
		MessageSegmentSize:  DefaultMessageSegmentSize,
		DispatchSegmentSize: DefaultDispatchSegmentSize,
		MaxMessageSize:      DefaultMaxMessageSize,
		FlushInterval:       DefaultFlushInterval,
		LoadAhead:           30 * time.Minute, // (60+1)/2 minutes
		DispatchLogKeep:     72 * time.Hour,
		ScheduleCleanAfter:  24 * time.Hour,
		MessageLogRetention: 72 * time.Hour,
	}
}

// maxFieldBytes bounds subject and message id (u16 lengths).
const maxFieldBytes = maxFieldLen

func (c *Config) normalize() error {
	if c.Root == "" {
		return fmt.Errorf("delay store: Root is empty")
	}
	if c.FS == nil {
		c.FS = vfs.Default()
	}
	if c.SegmentScale == 0 {
		c.SegmentScale = 60 * time.Minute
	}
	if c.SegmentScale < 5*time.Minute || c.SegmentScale > 60*time.Minute || c.SegmentScale%time.Minute != 0 {
		return fmt.Errorf("delay store %s: segment.scale.minute %v must be whole minutes in 5..60", c.Root, c.SegmentScale)
	}
	if c.MessageSegmentSize == 0 {
		c.MessageSegmentSize = DefaultMessageSegmentSize
	}
	if c.DispatchSegmentSize == 0 {
		c.DispatchSegmentSize = DefaultDispatchSegmentSize
	}
	if c.DispatchSegmentSize <= 0 || c.DispatchSegmentSize%int64(dispRecordSize) != 0 {
		return fmt.Errorf("delay store %s: dispatch segment size %d must be a positive multiple of %d", c.Root, c.DispatchSegmentSize, dispRecordSize)
	}
	if c.MaxMessageSize == 0 {
		c.MaxMessageSize = DefaultMaxMessageSize
	}
	// A record (two 64 KiB fields at most) must fit one segment, or it could
	// never be appended.
	if worst := int64(recFixedSize + 2*maxFieldBytes + c.MaxMessageSize); c.MaxMessageSize <= 0 || worst > c.MessageSegmentSize || c.MessageSegmentSize > 1<<31-1 {
		return fmt.Errorf("delay store %s: per.message.size %d needs segments of at least %d bytes (per.segment.file.size %d, at most 2 GiB)",
			c.Root, c.MaxMessageSize, worst, c.MessageSegmentSize)
	}
	if c.FlushInterval <= 0 {
		c.FlushInterval = DefaultFlushInterval
	}
	if c.LoadAhead <= 0 {
		c.LoadAhead = (c.SegmentScale + time.Minute) / 2
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	if c.Logger == nil {
		c.Logger = hclog.NewNullLogger()
	}
	return nil
}

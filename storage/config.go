package storage

import (
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/qmq-go/qmq/conf"
	"github.com/qmq-go/qmq/storage/vfs"
)

// Config configures a Store. ReadConfig fills it from broker.properties keys.
type Config struct {
	Root string // store.root
	FS   vfs.FS // nil = the OS

	MessageSegmentSize     int64 // messagelog.segment.size (ours; QMQ: 1 GiB fixed)
	ActionSegmentSize      int64 // actionlog.segment.size (ours; QMQ: 100 MiB fixed)
	ConsumerLogSegmentUnit int64 // consumerlog.segment.units (ours; QMQ: 10,000,000 fixed)

	// MessageResidentBytes (messagelog.resident.bytes, ours): how much of the message log behind the
	// flush point stays mapped into the broker (RSS); older pages stay in the page cache only.
	MessageResidentBytes int64

	FlushSync     bool          // flush.sync (ours, like RocketMQ SYNC_FLUSH): appends return after fsync
	FlushInterval time.Duration // flush.interval.ms (ours; QMQ: 500 ms)

	MessageCheckpointInterval int           // message.checkpoint.interval: records between message checkpoints
	CheckpointMaxAge          time.Duration // a checkpoint is also written at least this often (QMQ: 1 min)
	// CheckpointMinGap (checkpoint.min.interval.ms, ours) spaces message checkpoints: each fsyncs every
	// dirty consumer log (one file per subject), which with a thousand busy subjects cost a tenth of the
	// broker's CPU at 1 s. Recovery replays what came after the last checkpoint: at most this long of
	// messages (replay runs at about 1.5 GB/s).
	CheckpointMinGap time.Duration
	CheckpointRetain int // checkpoint.retain.count

	MessageLogRetention    time.Duration // messagelog.retention.hours
	ConsumerLogRetention   time.Duration // consumerlog.retention.hours
	PullLogRetention       time.Duration // pulllog.retention.hours (action log segments)
	RetentionCheckInterval time.Duration // log.retention.check.interval.seconds
	DeleteExpired          bool          // log.expired.delete.enable
	// KeepUnacked (messagelog.retention.keep.unacked, ours) keeps message-log segments that still hold
	// messages a live consumer group has not acked, beyond the retention time (QMQ issues #114, #137).
	KeepUnacked bool
	// DiskMaxUsedRatio (disk.max.used.ratio, ours, like RocketMQ's diskMaxUsedSpaceRatio): when the disk
	// holding Root is fuller than this, expired segments are deleted even if KeepUnacked protects them.
	DiskMaxUsedRatio float64
	// DiskFreeMin (disk.free.min.bytes, ours) is the low watermark: below this much free space on the
	// disk holding Root the store refuses new messages (the broker turns read-only) so that what the
	// messages already stored still need (consumer-log pages, the action log's next segment,
	// checkpoints) can be written. 0 refuses only when a write fails for lack of space.
	DiskFreeMin int64
	// DiskCheckInterval (disk.check.interval.ms, ours): how often the free space is measured, which is
	// also how soon the store takes messages again after space is freed.
	DiskCheckInterval time.Duration

	Logger     hclog.Logger
	Registerer prometheus.Registerer
}

// DefaultConfig returns QMQ's defaults rooted at root.
func DefaultConfig(root string) Config {
	return Config{
		Root:                      root,
		MessageSegmentSize:        1 << 30,
		ActionSegmentSize:         100 << 20,
		ConsumerLogSegmentUnit:    10_000_000,
		MessageResidentBytes:      64 << 20,
		FlushInterval:             500 * time.Millisecond,
		MessageCheckpointInterval: 10_000,
		CheckpointMaxAge:          time.Minute,
		CheckpointMinGap:          5 * time.Second,
		CheckpointRetain:          5,
		MessageLogRetention:       72 * time.Hour,
		ConsumerLogRetention:      72 * time.Hour,
		PullLogRetention:          72 * time.Hour,
		RetentionCheckInterval:    60 * time.Second,
		DeleteExpired:             true,
		KeepUnacked:               false,
		DiskMaxUsedRatio:          0.90,
		DiskFreeMin:               256 << 20,
		DiskCheckInterval:         time.Second,
	}
}

// ReadConfig reads the storage keys of broker.properties (QMQ's names and defaults, plus ours).
func ReadConfig(r *conf.Reader) Config {
	c := DefaultConfig("/data")
	c.Root = r.String("store.root", c.Root)
	c.MessageSegmentSize = r.Int64("messagelog.segment.size", c.MessageSegmentSize, 1<<20, 1<<31-1) // record sizes are i32
	c.ActionSegmentSize = r.Int64("actionlog.segment.size", c.ActionSegmentSize, 1<<20, 4<<30)
	c.ConsumerLogSegmentUnit = r.Int64("consumerlog.segment.units", c.ConsumerLogSegmentUnit, 1000, 100_000_000)
	c.MessageResidentBytes = r.Int64("messagelog.resident.bytes", c.MessageResidentBytes, 0, 1<<40)
	c.FlushSync = r.Bool("flush.sync", c.FlushSync)
	c.FlushInterval = r.Millis("flush.interval.ms", c.FlushInterval, time.Millisecond, time.Minute)
	c.MessageCheckpointInterval = r.Int("message.checkpoint.interval", c.MessageCheckpointInterval, 1, 100_000_000)
	c.CheckpointRetain = r.Int("checkpoint.retain.count", c.CheckpointRetain, 1, 1000)
	c.CheckpointMinGap = r.Millis("checkpoint.min.interval.ms", c.CheckpointMinGap, 0, time.Hour)
	c.MessageLogRetention = time.Duration(r.Int64("messagelog.retention.hours", 72, 1, 100_000)) * time.Hour
	c.ConsumerLogRetention = time.Duration(r.Int64("consumerlog.retention.hours", 72, 1, 100_000)) * time.Hour
	c.PullLogRetention = time.Duration(r.Int64("pulllog.retention.hours", 72, 1, 100_000)) * time.Hour
	c.RetentionCheckInterval = r.Seconds("log.retention.check.interval.seconds", c.RetentionCheckInterval, time.Second, 24*time.Hour)
	c.DeleteExpired = r.Bool("log.expired.delete.enable", c.DeleteExpired)
	c.KeepUnacked = r.Bool("messagelog.retention.keep.unacked", c.KeepUnacked)
	c.DiskMaxUsedRatio = r.Float("disk.max.used.ratio", c.DiskMaxUsedRatio, 0.1, 0.99)
	c.DiskFreeMin = r.Int64("disk.free.min.bytes", c.DiskFreeMin, 0, 1<<50)
	c.DiskCheckInterval = r.Millis("disk.check.interval.ms", c.DiskCheckInterval, 10*time.Millisecond, time.Hour)
	return c
}

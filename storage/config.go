package storage

import (
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/qmq-go/qmq/storage/vfs"
)

// Config configures a Store. Each field names its broker.properties key;
// the broker's loader (services/broker) maps the keys onto DefaultConfig.
type Config struct {
	Root string // store.root
	FS   vfs.FS // nil = the OS

	MessageSegmentSize     int64 // messagelog.segment.size (ours; QMQ: 1 GiB fixed)
	ActionSegmentSize      int64 // actionlog.segment.size (ours; QMQ: 100 MiB fixed)
	ConsumerLogSegmentUnit int64 // consumerlog.segment.units (ours; QMQ: 10,000,000 fixed)
	// MaxOpenConsumerLogs (consumerlog.max.open, ours) bounds the consumer logs open at once (a file
	// descriptor and a mapping each); 0: three quarters of the process's descriptor limit.
	MaxOpenConsumerLogs int

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

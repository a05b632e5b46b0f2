package replication

import (
	"errors"
	"time"

	"github.com/qmq-go/qmq/protocol"
	"github.com/qmq-go/qmq/storage"
	"github.com/qmq-go/qmq/storage/checkpoint"
)

// QMQ's defaults (broker.properties), but for DefaultBatchSize.
const (
	DefaultSyncPort = 20882 // sync.port
	// DefaultBatchSize is sync.batch.size: 1 MiB where QMQ has 100000 bytes.
	// Each sync round trip carries at most that much, and with
	// wait.slave.wrote every send waits for a round trip: at QMQ's 100000 a
	// round trip held ~76 1-KiB messages under load and capped the group
	// (bench/ha-ratio.sh: 0.52 of a lone master's throughput; 0.68 at 1 MiB).
	DefaultBatchSize          = 1 << 20
	DefaultMessageSyncTimeout = 10 * time.Millisecond   // message.sync.timeout.ms
	DefaultSlaveSyncTimeout   = 3000 * time.Millisecond // slave.sync.timeout
	DefaultRetryInterval      = 2 * time.Second         // SlaveSyncTask's sleep after a failure
	DefaultHeartbeatInterval  = time.Second             // DEFAULT_HEARTBEAT_SLEEP_TIMEOUT_MS
)

// Limits of the master's sync.port (ours). A group has one slave, which
// keeps one connection and sends a heartbeat every second; its requests
// are a few dozen bytes.
const (
	DefaultSyncMaxConnections = 16          // sync.max.connections
	DefaultSyncIdleTimeout    = time.Minute // sync.idle.timeout.ms
	// syncMaxFrameSize and syncMemoryBudget bound what a peer of sync.port
	// can make the master hold: a slave's requests are far smaller.
	syncMaxFrameSize = 64 << 10
	syncMemoryBudget = 1 << 20
)

var errClosed = errors.New("replication: master closed")

// Settings configure replication; each field names its broker.properties key.
type Settings struct {
	BatchSize          int           // sync.batch.size: most bytes per SYNC_LOG_REQUEST response
	MessageSyncTimeout time.Duration // message.sync.timeout.ms: how long the master parks a request with nothing new
	SlaveSyncTimeout   time.Duration // slave.sync.timeout: the slave's timeout per request

	MaxConnections int           // sync.max.connections (ours): connections to sync.port at once
	IdleTimeout    time.Duration // sync.idle.timeout.ms (ours): a silent sync connection is closed
}

// DefaultSettings are QMQ's defaults (but for DefaultBatchSize) and ours.
// The broker's loader maps broker.properties keys onto them; sync.port and
// wait.slave.wrote are the broker's settings.
func DefaultSettings() Settings {
	return Settings{
		BatchSize:          DefaultBatchSize,
		MessageSyncTimeout: DefaultMessageSyncTimeout,
		SlaveSyncTimeout:   DefaultSlaveSyncTimeout,
		MaxConnections:     DefaultSyncMaxConnections,
		IdleTimeout:        DefaultSyncIdleTimeout,
	}
}

// MasterStore is what a Master reads; *storage.Store implements it.
type MasterStore interface {
	ReadRaw(kind storage.LogKind, offset int64, max int) (storage.RawView, error)
	LogEnd(kind storage.LogKind) int64
	LogAppended(kind storage.LogKind) <-chan struct{}
	ReplicaInfo() storage.ReplicaInfo
	ReplicaCheckpoints() (checkpoint.MessageCheckpoint, checkpoint.ActionCheckpoint)
	MessageTimestampAt(offset int64) (ts int64, ok bool)
}

// SlaveStore is what a Slave writes; *storage.Store implements it. It must
// get no other writes while the Slave runs.
type SlaveStore interface {
	AppendRaw(kind storage.LogKind, offset int64, b []byte) (int64, error)
	LogEnd(kind storage.LogKind) int64
	LogEmpty(kind storage.LogKind) bool
	SetLogStart(kind storage.LogKind, offset int64) error
	ReplicaInfo() storage.ReplicaInfo
	RaiseSequences(maxSequences map[string]int64)
	InstallActionCheckpoint(cp checkpoint.ActionCheckpoint) error
}

var (
	_ MasterStore = (*storage.Store)(nil)
	_ SlaveStore  = (*storage.Store)(nil)
)

// syncType is the SYNC_LOG_REQUEST type that copies kind.
func syncType(kind storage.LogKind) uint8 {
	if kind == storage.MessageLog {
		return protocol.SyncTypeMessage
	}
	return protocol.SyncTypeAction
}

// logLabel is kind as a metric label.
func logLabel(kind storage.LogKind) string {
	if kind == storage.MessageLog {
		return "message"
	}
	return "action"
}

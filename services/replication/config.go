package replication

import (
	"errors"
	"os"
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

// Log numbers one of the two logs a pair replicates: MessageLog (0) and
// SecondLog (1), which is the broker's action log and the delay server's
// dispatch log (Logs names them).
type Log uint8

// The replicated logs.
const (
	MessageLog Log = 0
	SecondLog  Log = 1
)

// Logs describes the two logs of a store: the SYNC_LOG_REQUEST type that
// copies the second one and the names errors and metrics use. The zero
// Logs is BrokerLogs, so that a broker need not say.
type Logs struct {
	// SecondSyncType is the second log's sync type: action (1) for a broker,
	// dispatch (4) for a delay server (QMQ's SyncType).
	SecondSyncType uint8
	Names          [2]string // by Log, for errors: "message log", "action log"
	SizeKeys       [2]string // by Log: the keys that set the segment sizes
	Labels         [2]string // by Log: metric labels
	ConfigFile     string    // where SizeKeys are set, for errors
}

// BrokerLogs are a broker's message log and action log.
func BrokerLogs() Logs {
	return Logs{SecondSyncType: protocol.SyncTypeAction,
		Names:    [2]string{storage.MessageLog.String(), storage.ActionLog.String()},
		SizeKeys: [2]string{storage.MessageLog.SizeKey(), storage.ActionLog.SizeKey()},
		Labels:   [2]string{"message", "action"}, ConfigFile: "broker.properties"}
}

// DelayLogs are a delay server's message log and dispatch log (QMQ's
// delay server syncs message_log and dispatch_log, sync type 4).
func DelayLogs() Logs {
	return Logs{SecondSyncType: protocol.SyncTypeDispatch,
		Names: [2]string{"delay message log", "dispatch log"},
		// The dispatch log's segment size is built in (4 MiB); only a
		// store written under another default could differ.
		SizeKeys: [2]string{"per.segment.file.size", "the dispatch segment size (built in)"},
		Labels:   [2]string{"message", "dispatch"}, ConfigFile: "delay.properties"}
}

func (l Logs) orDefault() Logs {
	if l.SecondSyncType == 0 {
		return BrokerLogs()
	}
	return l
}

// syncType is the SYNC_LOG_REQUEST type that copies log.
func (l Logs) syncType(log Log) uint8 {
	if log == MessageLog {
		return protocol.SyncTypeMessage
	}
	return l.SecondSyncType
}

// RawView is a zero-copy view of raw log bytes (storage.RawView,
// delaystore.RawView); the master calls Release exactly once.
type RawView interface {
	Bytes() []byte
	Len() int
	Release()
	// File returns the file holding Bytes() and its position there, or nil
	// (the master then copies Bytes instead of sendfile).
	File() (*os.File, int64)
}

// ReplicaInfo describes a store's two logs to a replica.
type ReplicaInfo struct {
	SegmentSize [2]int64 // by Log
	// Start is the oldest offset a replica can copy from: a segment base
	// from which on every segment has the configured size; -1 if the active
	// segment itself has another size.
	Start [2]int64
	End   [2]int64
}

// MasterStore is what a Master reads. ForBroker adapts *storage.Store;
// services/delay adapts *delaystore.Store.
type MasterStore interface {
	ReadRaw(log Log, offset int64, max int) (RawView, error)
	LogEnd(log Log) int64
	LogAppended(log Log) <-chan struct{}
	ReplicaInfo() ReplicaInfo
}

// SlaveStore is what a Slave writes. It must get no other writes while the
// Slave runs.
type SlaveStore interface {
	AppendRaw(log Log, offset int64, b []byte) (int64, error)
	LogEnd(log Log) int64
	LogEmpty(log Log) bool
	SetLogStart(log Log, offset int64) error
	ReplicaInfo() ReplicaInfo
}

// CheckpointSource is optional for a MasterStore: the broker's checkpoints
// for the handshake. A master whose store has none sends empty ones.
type CheckpointSource interface {
	ReplicaCheckpoints() (checkpoint.MessageCheckpoint, checkpoint.ActionCheckpoint)
}

// CheckpointSink is optional for a SlaveStore: a broker slave raises its
// sequences to the master's and installs its pull-log table. A slave whose
// store is none ignores the master's checkpoints.
type CheckpointSink interface {
	RaiseSequences(maxSequences map[string]int64)
	InstallActionCheckpoint(cp checkpoint.ActionCheckpoint) error
}

// MessageTimestamper is optional for a MasterStore: the time of the
// message at a message-log offset, for Lag.MessageDelay. Without it the
// delay is the time since the slave was last caught up.
type MessageTimestamper interface {
	MessageTimestampAt(offset int64) (ts int64, ok bool)
}

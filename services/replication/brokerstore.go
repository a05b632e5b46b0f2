package replication

import (
	"github.com/qmq-go/qmq/storage"
	"github.com/qmq-go/qmq/storage/checkpoint"
)

// BrokerStore adapts a broker's *storage.Store to MasterStore and
// SlaveStore (with checkpoints and message timestamps): MessageLog is its
// message log, SecondLog its action log.
type BrokerStore struct{ S *storage.Store }

// ForBroker adapts st; replicate it with BrokerLogs (the zero Logs).
func ForBroker(st *storage.Store) BrokerStore { return BrokerStore{S: st} }

var (
	_ MasterStore        = BrokerStore{}
	_ SlaveStore         = BrokerStore{}
	_ CheckpointSource   = BrokerStore{}
	_ CheckpointSink     = BrokerStore{}
	_ MessageTimestamper = BrokerStore{}
)

func brokerKind(l Log) storage.LogKind {
	if l == MessageLog {
		return storage.MessageLog
	}
	return storage.ActionLog
}

func (b BrokerStore) ReadRaw(l Log, offset int64, max int) (RawView, error) {
	v, err := b.S.ReadRaw(brokerKind(l), offset, max)
	if err != nil {
		return nil, err
	}
	return v, nil
}

func (b BrokerStore) LogEnd(l Log) int64                         { return b.S.LogEnd(brokerKind(l)) }
func (b BrokerStore) LogAppended(l Log) <-chan struct{}          { return b.S.LogAppended(brokerKind(l)) }
func (b BrokerStore) LogEmpty(l Log) bool                        { return b.S.LogEmpty(brokerKind(l)) }
func (b BrokerStore) SetLogStart(l Log, off int64) error         { return b.S.SetLogStart(brokerKind(l), off) }
func (b BrokerStore) MessageTimestampAt(off int64) (int64, bool) { return b.S.MessageTimestampAt(off) }

func (b BrokerStore) AppendRaw(l Log, offset int64, p []byte) (int64, error) {
	return b.S.AppendRaw(brokerKind(l), offset, p)
}

func (b BrokerStore) ReplicaInfo() ReplicaInfo {
	i := b.S.ReplicaInfo()
	return ReplicaInfo{SegmentSize: [2]int64{i.MessageSegmentSize, i.ActionSegmentSize},
		Start: [2]int64{i.MessageStart, i.ActionStart}, End: [2]int64{i.MessageEnd, i.ActionEnd}}
}

func (b BrokerStore) ReplicaCheckpoints() (checkpoint.MessageCheckpoint, checkpoint.ActionCheckpoint) {
	return b.S.ReplicaCheckpoints()
}

func (b BrokerStore) RaiseSequences(maxSequences map[string]int64) { b.S.RaiseSequences(maxSequences) }

func (b BrokerStore) InstallActionCheckpoint(cp checkpoint.ActionCheckpoint) error {
	return b.S.InstallActionCheckpoint(cp)
}

package delay

import (
	"github.com/qmq-go/qmq/services/replication"
	"github.com/qmq-go/qmq/storage/delaystore"
)

// replStore adapts the delay store to services/replication: its message
// log is replication.MessageLog, its dispatch log replication.SecondLog
// (replicated with replication.DelayLogs, sync type dispatch=4 as QMQ's).
// It has no checkpoints to hand over: a slave rebuilds its schedule from
// the copied message log and applies the copied dispatch records.
type replStore struct{ s *delaystore.Store }

var (
	_ replication.MasterStore = replStore{}
	_ replication.SlaveStore  = replStore{}
)

func delayKind(l replication.Log) delaystore.LogKind {
	if l == replication.MessageLog {
		return delaystore.MessageLog
	}
	return delaystore.DispatchLog
}

func (r replStore) ReadRaw(l replication.Log, offset int64, max int) (replication.RawView, error) {
	v, err := r.s.ReadRaw(delayKind(l), offset, max)
	if err != nil {
		return nil, err
	}
	return v, nil
}

func (r replStore) AppendRaw(l replication.Log, offset int64, b []byte) (int64, error) {
	return r.s.AppendRaw(delayKind(l), offset, b)
}

func (r replStore) LogEnd(l replication.Log) int64 { return r.s.LogEnd(delayKind(l)) }
func (r replStore) LogAppended(l replication.Log) <-chan struct{} {
	return r.s.LogAppended(delayKind(l))
}
func (r replStore) LogEmpty(l replication.Log) bool { return r.s.LogEmpty(delayKind(l)) }

func (r replStore) SetLogStart(l replication.Log, offset int64) error {
	return r.s.SetLogStart(delayKind(l), offset)
}

func (r replStore) ReplicaInfo() replication.ReplicaInfo {
	i := r.s.ReplicaInfo()
	return replication.ReplicaInfo{
		SegmentSize: [2]int64{i.MessageSegmentSize, i.DispatchSegmentSize},
		Start:       [2]int64{i.MessageStart, i.DispatchStart},
		End:         [2]int64{i.MessageEnd, i.DispatchEnd},
	}
}

package storage

import (
	"bytes"
	"context"
	"errors"
	"testing"
	"time"

	"github.com/qmq-go/qmq/internal/logtest"
	"github.com/qmq-go/qmq/storage/actionlog"
	"github.com/qmq-go/qmq/storage/checkpoint"
	"github.com/qmq-go/qmq/storage/messagelog"
	"github.com/qmq-go/qmq/storage/pulllog"
)

// copyLog copies master's log into replica until it has everything, like
// the replication slave: raw reads of at most max bytes appended at the
// replica's end. If install is set, the master's table is installed when
// the replica's action log reaches its offset.
func copyLog(t testing.TB, master, replica *Store, kind LogKind, max int, install *checkpoint.ActionCheckpoint) {
	t.Helper()
	for {
		off := replica.LogEnd(kind)
		if install != nil && off == install.Offset {
			if err := replica.InstallActionCheckpoint(*install); err != nil {
				t.Fatal(err)
			}
			install = nil
		}
		v, err := master.ReadRaw(kind, off, max)
		if err != nil {
			t.Fatalf("%s: read raw at %d: %v", kind, off, err)
		}
		if v.Len() == 0 {
			return
		}
		b := v.Bytes()
		if install != nil && off < install.Offset && off+int64(len(b)) > install.Offset {
			b = b[:install.Offset-off]
		}
		end, err := replica.AppendRaw(kind, off, b)
		v.Release()
		if err != nil {
			t.Fatalf("%s: append raw at %d: %v", kind, off, err)
		}
		if end <= off {
			t.Fatalf("%s: no progress at %d", kind, off)
		}
	}
}

// replicaTestConfig has small segments so that copies cross many segment ends.
func replicaTestConfig(root string) Config {
	c := testConfig(root)
	c.MessageSegmentSize = 64 << 10
	c.ActionSegmentSize = 32 << 10
	return c
}

func sameTables(t testing.TB, a, b *Store) {
	t.Helper()
	var ta, tb []byte
	a.PullLog(func(tbl *pulllog.Table) { ta = tbl.Marshal() })
	b.PullLog(func(tbl *pulllog.Table) { tb = tbl.Marshal() })
	if !bytes.Equal(ta, tb) {
		t.Fatalf("pull-log tables differ (%d and %d bytes)", len(ta), len(tb))
	}
}

func pullsFor(subject string, from, n int64) []actionlog.Action {
	var out []actionlog.Action
	for i := from; i < from+n; i++ {
		out = append(out, actionlog.Action{Type: actionlog.Pull, Subject: subject, Group: "g", ConsumerID: "c1",
			Timestamp: 1, FirstPullSeq: i, LastPullSeq: i, FirstMsgSeq: i, LastMsgSeq: i})
		if i%3 == 2 {
			out = append(out, actionlog.Action{Type: actionlog.RangeAck, Subject: subject, Group: "g", ConsumerID: "c1",
				Timestamp: 1, FirstPullSeq: i - 2, LastPullSeq: i})
		}
	}
	return out
}

func TestReplicaCopyServesMessagesAndActions(t *testing.T) {
	master := openStore(t, replicaTestConfig(t.TempDir()))
	defer master.Close()
	replicaCfg := replicaTestConfig(t.TempDir())
	replica := openStore(t, replicaCfg)
	subjects := []string{"order.created", "pay/done"}
	appendN(t, master, subjects, 3000)
	if err := master.ApplyActions(pullsFor("order.created", 0, 20000)); err != nil {
		t.Fatal(err)
	}
	copyLog(t, master, replica, MessageLog, 100000, nil)
	copyLog(t, master, replica, ActionLog, 100000, nil)
	want := map[string]int64{"order.created": 1500, "pay/done": 1500}
	checkAll(t, replica, subjects, want)
	sameTables(t, master, replica)
	logtest.SameSegments(t, master.cfg.dir("messagelog"), replica.cfg.dir("messagelog"))
	logtest.SameSegments(t, master.cfg.dir("actionlog"), replica.cfg.dir("actionlog"))

	// Reopened, the replica recovers like any store and continues copying.
	if err := replica.Close(); err != nil {
		t.Fatal(err)
	}
	replica = openStore(t, replicaCfg)
	defer replica.Close()
	appendN(t, master, subjects, 200)
	copyLog(t, master, replica, MessageLog, 5000, nil)
	want = map[string]int64{"order.created": 1600, "pay/done": 1600}
	checkAll(t, replica, subjects, want)
	// A promoted replica continues the sequences.
	res, err := replica.Append(context.Background(), []messagelog.Message{{Subject: "pay/done", Payload: []byte("x")}})
	if err != nil || res[0].Sequence != 1600 {
		t.Fatalf("append on the replica: %+v %v", res, err)
	}
}

func TestReplicaStartsAtMasterOldestSegment(t *testing.T) {
	masterCfg := replicaTestConfig(t.TempDir())
	masterCfg.CheckpointMaxAge = time.Hour // the test saves action checkpoints itself (saves must not run concurrently)
	master := openStore(t, masterCfg)
	defer master.Close()
	subjects := []string{"a", "b"}
	// only.old's one message is in a segment retention deletes.
	if _, err := master.Append(context.Background(), []messagelog.Message{{Subject: "only.old", Payload: []byte("old")}}); err != nil {
		t.Fatal(err)
	}
	appendN(t, master, subjects, 5000)
	if err := master.ApplyActions(pullsFor("a", 0, 30000)); err != nil {
		t.Fatal(err)
	}
	msgSegs, actSegs := master.msgs.Segments(), master.actions.Segments()
	if _, err := master.msgs.DeleteSegmentsBefore(msgSegs[2].BaseOffset); err != nil {
		t.Fatal(err)
	}
	if err := master.saveActionCheckpoint(); err != nil { // retention saves one before deleting
		t.Fatal(err)
	}
	if _, err := master.actions.DeleteSegmentsBefore(actSegs[1].BaseOffset); err != nil {
		t.Fatal(err)
	}
	if err := master.ApplyActions(pullsFor("b", 0, 3000)); err != nil {
		t.Fatal(err)
	}
	info := master.ReplicaInfo()
	if info.MessageStart != msgSegs[2].BaseOffset || info.ActionStart != actSegs[1].BaseOffset ||
		info.MessageSegmentSize != 64<<10 || info.MessageEnd != master.MessageLogEnd() {
		t.Fatalf("replica info %+v", info)
	}
	if _, err := master.ReadRaw(MessageLog, 0, 100); !errors.Is(err, ErrBeforeStart) {
		t.Fatalf("read of a deleted segment: %v", err)
	}
	if _, err := master.ReadRaw(ActionLog, master.ActionLogEnd()+1, 100); !errors.Is(err, ErrBeyondEnd) {
		t.Fatalf("read beyond the end: %v", err)
	}
	mcp, acp := master.ReplicaCheckpoints()
	if mcp.MaxSequences["only.old"] != 0 || acp.Offset != master.ActionLogEnd() {
		t.Fatalf("checkpoints: %+v, action at %d", mcp.MaxSequences, acp.Offset)
	}

	replicaCfg := replicaTestConfig(t.TempDir())
	replica := openStore(t, replicaCfg)
	for _, kind := range []LogKind{MessageLog, ActionLog} {
		if !replica.LogEmpty(kind) {
			t.Fatalf("%s of a new store not empty", kind)
		}
	}
	if err := replica.SetLogStart(MessageLog, info.MessageStart); err != nil {
		t.Fatal(err)
	}
	if err := replica.SetLogStart(ActionLog, info.ActionStart); err != nil {
		t.Fatal(err)
	}
	replica.RaiseSequences(mcp.MaxSequences)
	// Killed (closed) before its action log reaches the master's snapshot:
	// it reopens at its own start and is re-installed later.
	half := info.ActionStart + (acp.Offset-info.ActionStart)/2
	for replica.ActionLogEnd() < half {
		off := replica.ActionLogEnd()
		v, err := master.ReadRaw(ActionLog, off, 1000)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := replica.AppendRaw(ActionLog, off, v.Bytes()); err != nil {
			t.Fatal(err)
		}
		v.Release()
	}
	if err := replica.Close(); err != nil {
		t.Fatal(err)
	}
	replica = openStore(t, replicaCfg)
	defer replica.Close()
	if replica.msgs.MinOffset() != info.MessageStart || replica.actions.MinOffset() != info.ActionStart {
		t.Fatalf("reopened replica starts at %d/%d", replica.msgs.MinOffset(), replica.actions.MinOffset())
	}
	copyLog(t, master, replica, MessageLog, 30000, nil)
	copyLog(t, master, replica, ActionLog, 30000, &acp)
	logtest.SameSegments(t, master.cfg.dir("messagelog"), replica.cfg.dir("messagelog"))
	logtest.SameSegments(t, master.cfg.dir("actionlog"), replica.cfg.dir("actionlog"))
	sameTables(t, master, replica)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := replica.WaitDispatched(ctx, replica.MessageLogEnd()); err != nil {
		t.Fatal(err)
	}
	for _, s := range subjects {
		if replica.MaxSequence(s) != master.MaxSequence(s) {
			t.Fatalf("%s: replica max sequence %d, master %d", s, replica.MaxSequence(s), master.MaxSequence(s))
		}
		rec, err := replica.Read(s, master.MaxSequence(s))
		if err != nil {
			t.Fatal(err)
		}
		rec.Release()
	}
	// The sequence of a subject with no copied message survives restarts.
	if replica.MaxSequence("only.old") != -1 {
		t.Fatal("only.old was copied")
	}
	if err := replica.Close(); err != nil {
		t.Fatal(err)
	}
	for range 2 {
		replica = openStore(t, replicaCfg)
		if err := replica.Close(); err != nil {
			t.Fatal(err)
		}
	}
	replica = openStore(t, replicaCfg)
	res, err := replica.Append(context.Background(), []messagelog.Message{{Subject: "only.old", Payload: []byte("new")}})
	if err != nil || res[0].Sequence != 1 {
		t.Fatalf("append after restarts: %+v %v", res, err)
	}
}

func TestReplicaAppendRejectsMismatch(t *testing.T) {
	master := openStore(t, replicaTestConfig(t.TempDir()))
	defer master.Close()
	appendN(t, master, []string{"a"}, 10)
	replica := openStore(t, replicaTestConfig(t.TempDir()))
	defer replica.Close()
	v, err := master.ReadRaw(MessageLog, 0, 1<<20)
	if err != nil {
		t.Fatal(err)
	}
	defer v.Release()
	if _, err := replica.AppendRaw(MessageLog, 5, v.Bytes()); err == nil {
		t.Fatal("append at the wrong offset accepted")
	}
	if err := replica.InstallActionCheckpoint(checkpoint.ActionCheckpoint{Offset: 99}); err == nil {
		t.Fatal("install at the wrong offset accepted")
	}
	if _, err := replica.AppendRaw(MessageLog, 0, v.Bytes()); err != nil {
		t.Fatal(err)
	}
	if err := replica.SetLogStart(MessageLog, 1<<20); err == nil {
		t.Fatal("SetLogStart on a non-empty log accepted")
	}
}

package replication

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/qmq-go/qmq/internal/logtest"
	"github.com/qmq-go/qmq/internal/testlog"
	"github.com/qmq-go/qmq/storage"
	"github.com/qmq-go/qmq/storage/actionlog"
	"github.com/qmq-go/qmq/storage/messagelog"
	"github.com/qmq-go/qmq/storage/pulllog"
)

// storeConfig has small segments so that copies cross many segment ends.
func storeConfig(root string) storage.Config {
	c := storage.DefaultConfig(root)
	c.MessageSegmentSize = 64 << 10
	c.ActionSegmentSize = 32 << 10
	c.ConsumerLogSegmentUnit = 1000
	c.MessageResidentBytes = 0
	c.FlushInterval = 20 * time.Millisecond
	c.MessageCheckpointInterval = 200
	c.CheckpointMaxAge = 200 * time.Millisecond
	c.RetentionCheckInterval = time.Hour
	return c
}

func openStore(t testing.TB, cfg storage.Config) *storage.Store {
	t.Helper()
	s, err := storage.Open(cfg)
	if err != nil {
		t.Fatalf("open store %s: %v", cfg.Root, err)
	}
	return s
}

func testLogger(t testing.TB, name string, sink *testlog.Buffer) hclog.Logger {
	switch {
	case sink != nil:
		return hclog.New(&hclog.LoggerOptions{Name: name, Level: hclog.Info, Output: sink})
	case testing.Verbose():
		return hclog.New(&hclog.LoggerOptions{Name: name, Level: hclog.Info, Output: os.Stderr})
	}
	return hclog.NewNullLogger()
}

// running is a started Master or Slave with its stop.
type running struct {
	cancel context.CancelFunc
	done   chan struct{}
}

func (r *running) stop() {
	r.cancel()
	<-r.done
}

func startMaster(t testing.TB, store *storage.Store, addr string, mutate func(*MasterConfig)) (*Master, *running) {
	t.Helper()
	cfg := MasterConfig{Addr: addr, Store: ForBroker(store), Logger: testLogger(t, "master", nil)}
	if mutate != nil {
		mutate(&cfg)
	}
	var m *Master
	var err error
	for range 50 { // a restarted master may find its port in TIME_WAIT briefly
		if m, err = NewMaster(cfg); err == nil {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	r := &running{cancel: cancel, done: make(chan struct{})}
	go func() { defer close(r.done); m.Run(ctx) }()
	t.Cleanup(r.stop)
	return m, r
}

func startSlave(t testing.TB, addr string, store *storage.Store, mutate func(*SlaveConfig)) (*Slave, *running) {
	t.Helper()
	cfg := SlaveConfig{MasterAddr: addr, Store: ForBroker(store), RetryInterval: 100 * time.Millisecond,
		HeartbeatInterval: 100 * time.Millisecond, Logger: testLogger(t, "slave", nil)}
	if mutate != nil {
		mutate(&cfg)
	}
	s, err := NewSlave(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	r := &running{cancel: cancel, done: make(chan struct{})}
	go func() { defer close(r.done); s.Run(ctx) }()
	t.Cleanup(r.stop)
	return s, r
}

// freeAddr returns a loopback address nothing listens on (yet).
func freeAddr(t testing.TB) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	return addr
}

// waitCaughtUp waits until slave's logs end where master's do.
func waitCaughtUp(t testing.TB, master, slave *storage.Store, timeout time.Duration) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		mm, ma := master.LogEnd(storage.MessageLog), master.LogEnd(storage.ActionLog)
		sm, sa := slave.LogEnd(storage.MessageLog), slave.LogEnd(storage.ActionLog)
		if mm == sm && ma == sa {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("slave did not catch up in %s: message log %d/%d, action log %d/%d", timeout, sm, mm, sa, ma)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// sameFiles fails unless both stores' message-log and action-log segment
// files are identical.
func sameFiles(t testing.TB, masterRoot, slaveRoot string) {
	t.Helper()
	for _, dir := range []string{"messagelog", "actionlog"} {
		logtest.SameSegments(t, filepath.Join(masterRoot, dir), filepath.Join(slaveRoot, dir))
	}
}

// sameTables fails unless both pull-log tables are equal.
func sameTables(t testing.TB, a, b *storage.Store) {
	t.Helper()
	var ta, tb []byte
	a.PullLog(func(tbl *pulllog.Table) { ta = tbl.Marshal() })
	b.PullLog(func(tbl *pulllog.Table) { tb = tbl.Marshal() })
	if !bytes.Equal(ta, tb) {
		t.Fatalf("pull-log tables differ (%d and %d bytes)", len(ta), len(tb))
	}
}

func payload(subject string, seq int64) []byte {
	return []byte(fmt.Sprintf("%s#%d:%s", subject, seq, strings.Repeat("p", int(seq%500))))
}

// producer appends messages and actions to a master store.
type producer struct {
	store    *storage.Store
	subjects []string
	pulls    atomic.Int64
	msgs     atomic.Int64
}

// appendBatch appends one message per subject and one PULL + RANGE_ACK per
// subject, returning the message log's end after the batch.
func (p *producer) appendBatch(t testing.TB) int64 {
	msgs := make([]messagelog.Message, len(p.subjects))
	for i, s := range p.subjects {
		msgs[i] = messagelog.Message{Subject: s, Payload: payload(s, p.msgs.Add(1))}
	}
	out, err := p.store.Append(context.Background(), msgs)
	if err != nil {
		t.Error(err)
		return 0
	}
	var actions []actionlog.Action
	for i, s := range p.subjects {
		n := p.pulls.Add(1)
		actions = append(actions,
			actionlog.Action{Type: actionlog.Pull, Subject: s, Group: "g", ConsumerID: "c", Timestamp: time.Now().UnixMilli(),
				FirstPullSeq: n, LastPullSeq: n, FirstMsgSeq: out[i].Sequence, LastMsgSeq: out[i].Sequence},
			actionlog.Action{Type: actionlog.RangeAck, Subject: s, Group: "g", ConsumerID: "c", Timestamp: time.Now().UnixMilli(),
				FirstPullSeq: n, LastPullSeq: n})
	}
	if err := p.store.ApplyActions(actions); err != nil {
		t.Error(err)
	}
	last := out[len(out)-1]
	return last.Offset + int64(last.Size)
}

// checkServes fails unless slave serves every message of master by subject
// and sequence, with the same bytes.
func checkServes(t testing.TB, master, slave *storage.Store) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if err := slave.WaitDispatched(ctx, slave.MessageLogEnd()); err != nil {
		t.Fatal(err)
	}
	for _, subject := range master.Subjects() {
		if got, want := slave.MaxSequence(subject), master.MaxSequence(subject); got != want {
			t.Fatalf("%s: slave max sequence %d, master %d", subject, got, want)
		}
		for seq := master.MinSequence(subject); seq <= master.MaxSequence(subject); seq++ {
			mr, err := master.Read(subject, seq)
			if errors.Is(err, storage.ErrNotFound) { // deleted by retention: the slave never had it
				if _, err := slave.Read(subject, seq); !errors.Is(err, storage.ErrNotFound) {
					t.Fatalf("slave read %s/%d, deleted on the master: %v", subject, seq, err)
				}
				continue
			}
			if err != nil {
				t.Fatalf("master read %s/%d: %v", subject, seq, err)
			}
			sr, err := slave.Read(subject, seq)
			if err != nil {
				t.Fatalf("slave read %s/%d: %v", subject, seq, err)
			}
			if !bytes.Equal(mr.Payload, sr.Payload) || mr.Offset != sr.Offset {
				t.Fatalf("%s/%d differs between master and slave", subject, seq)
			}
			mr.Release()
			sr.Release()
		}
	}
}

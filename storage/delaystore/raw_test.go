package delaystore

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/qmq-go/qmq/storage"
	"github.com/qmq-go/qmq/storage/segment"
)

// copyLog copies kind from master to slave with ReadRaw/AppendRaw in small
// reads, as services/replication would.
func copyLog(t *testing.T, master, slave *Store, kind LogKind) {
	t.Helper()
	if slave.LogEmpty(kind) && slave.LogEnd(kind) == 0 {
		if err := slave.SetLogStart(kind, master.LogStart(kind)); err != nil {
			t.Fatal(err)
		}
	}
	for {
		off := slave.LogEnd(kind)
		v, err := master.ReadRaw(kind, off, 3000)
		if err != nil {
			t.Fatalf("%s: read raw at %d: %v", kind, off, err)
		}
		if v.Len() == 0 {
			v.Release()
			return
		}
		end, err := slave.AppendRaw(kind, off, v.Bytes())
		v.Release()
		if err != nil {
			t.Fatalf("%s: append raw at %d: %v", kind, off, err)
		}
		if end == off {
			t.Fatalf("%s: no progress at %d", kind, off)
		}
	}
}

func sameFiles(t *testing.T, a, b string) {
	t.Helper()
	for _, name := range listDir(t, a) {
		x, err := os.ReadFile(filepath.Join(a, name))
		if err != nil {
			t.Fatal(err)
		}
		y, err := os.ReadFile(filepath.Join(b, name))
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(x, y) {
			t.Fatalf("%s differs between master and slave", name)
		}
	}
}

// TestReplication: a slave copying both logs byte for byte rebuilds its
// buckets and wheel; after promotion it returns exactly the undelivered.
func TestReplication(t *testing.T) {
	c := newClock(t0)
	mdir, sdir := t.TempDir(), t.TempDir()
	mcfg := testConfig(t, mdir, c)
	mcfg.MessageSegmentSize = 160 << 10
	mcfg.MaxMessageSize = 1 << 10
	mcfg.DispatchSegmentSize = 32 * 16
	scfg := mcfg
	scfg.Root = sdir
	master, slave := mustOpen(t, mcfg), mustOpen(t, scfg)
	defer master.Close()
	appendMany(t, master, 2000, func(i int) int64 { return c.At(time.Duration(i%100) * time.Second) })
	c.Add(50 * time.Second)
	es := drain(t, master, 20*time.Millisecond)
	if err := master.MarkDispatched(es); err != nil {
		t.Fatal(err)
	}
	if ok, err := master.Cancel("order.changed", "0000000000001999"); !ok || err != nil {
		t.Fatalf("cancel: %v %v", ok, err)
	}
	// Dispatch records first: they wait for their messages.
	copyLog(t, master, slave, DispatchLog)
	copyLog(t, master, slave, MessageLog)
	sameFiles(t, filepath.Join(mdir, messageDir), filepath.Join(sdir, messageDir))
	sameFiles(t, filepath.Join(mdir, dispatchDir), filepath.Join(sdir, dispatchDir))
	if ms, ss := master.Stats(), slave.Stats(); ss.InWheel != ms.InWheel || ss.MessageLogEnd != ms.MessageLogEnd {
		t.Fatalf("slave %+v, master %+v", ss, ms)
	}
	// Offsets out of range and mismatches.
	if _, err := master.ReadRaw(MessageLog, master.LogEnd(MessageLog)+1, 100); !errors.Is(err, storage.ErrBeyondEnd) {
		t.Fatalf("beyond end: %v", err)
	}
	var mm *segment.OffsetMismatchError
	if _, err := slave.AppendRaw(MessageLog, 5, []byte("x")); !errors.As(err, &mm) {
		t.Fatalf("mismatch: %v", err)
	}
	if _, err := slave.AppendRaw(DispatchLog, slave.LogEnd(DispatchLog), bytes.Repeat([]byte{1}, 32)); err == nil {
		t.Fatal("garbage accepted")
	}
	// Promotion: the slave restarts and delivers the rest.
	if err := slave.Close(); err != nil {
		t.Fatal(err)
	}
	slave = mustOpen(t, scfg)
	defer slave.Close()
	c.Add(100 * time.Second)
	rest := drain(t, slave, 20*time.Millisecond)
	if len(rest)+len(es)+1 != 2000 {
		t.Fatalf("slave delivers %d, master delivered %d", len(rest), len(es))
	}
	done := map[int64]bool{}
	for _, e := range es {
		done[e.Sequence] = true
	}
	for _, e := range rest {
		if done[e.Sequence] {
			t.Fatalf("entry %d delivered twice", e.Sequence)
		}
		m, err := slave.Read(e)
		if err != nil || m.MessageID == "0000000000001999" {
			t.Fatalf("read %v: %+v", err, m)
		}
	}
}

package storage

import (
	"context"
	"errors"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/qmq-go/qmq/internal/testutil"
	"github.com/qmq-go/qmq/storage/messagelog"
	"github.com/qmq-go/qmq/storage/vfs"
)

// fakeDisk is the OS's file system with a free space the test sets and
// block allocation failing with ENOSPC while full is set.
type fakeDisk struct {
	free atomic.Int64
	full atomic.Bool
}

func (d *fakeDisk) fs() vfs.FS {
	fs := vfs.NewErrorFS(vfs.Default(), func(op, path string) error {
		if op == vfs.OpAllocate && d.full.Load() {
			return syscall.ENOSPC
		}
		return nil
	})
	return vfs.NewUsageFS(fs, func(string) (vfs.Usage, error) { return vfs.Usage{Total: 1 << 30, Free: d.free.Load()}, nil })
}

// TestStoreDiskFull: the store refuses appends with a *DiskFullError below
// disk.free.min.bytes and after a segment the disk could not allocate, keeps
// refusing until the space that segment needs is free, then takes messages
// again by itself; a restart finds every message that was accepted.
func TestStoreDiskFull(t *testing.T) {
	disk := &fakeDisk{}
	disk.free.Store(100 << 20)
	cfg := testConfig(t.TempDir())
	cfg.FS = disk.fs()
	cfg.DiskFreeMin = 1 << 20
	cfg.DiskCheckInterval = 10 * time.Millisecond
	s := openStore(t, cfg)
	defer func() { s.Close() }()
	subjects := []string{"s1", "s2"}
	appendN(t, s, subjects, 10)
	ctx := context.Background()
	refused := func() *DiskFullError {
		t.Helper()
		end := s.MessageLogEnd()
		_, err := s.Append(ctx, []messagelog.Message{{Subject: "s1", Payload: []byte("refused")}})
		var fe *DiskFullError
		if !errors.As(err, &fe) || !errors.Is(err, ErrDiskFull) {
			t.Fatalf("append on a full disk: %v, want a *DiskFullError", err)
		}
		if s.MessageLogEnd() != end {
			t.Fatalf("a refused append moved the message log end from %d to %d", end, s.MessageLogEnd())
		}
		return fe
	}

	// Below the low watermark.
	changed := s.DiskChanged()
	disk.free.Store(512 << 10)
	testutil.Eventually(t, 5*time.Second, "the store to see the disk full", func() bool { return s.DiskFull() != nil })
	<-changed
	fe := refused()
	if fe.Needed != cfg.DiskFreeMin || fe.Free != 512<<10 || fe.Path != cfg.Root || !strings.Contains(fe.Error(), "disk.free.min.bytes") {
		t.Fatalf("refusal below the reserve: %+v (%v)", fe, fe)
	}
	if v := metricValue(t, s.m.diskFull); v != 1 {
		t.Fatalf("qmq_store_disk_full = %v while full", v)
	}
	disk.free.Store(100 << 20)
	testutil.Eventually(t, 5*time.Second, "the store to take messages again", func() bool { return s.DiskFull() == nil })
	appendN(t, s, subjects, 10)

	// The next segment cannot be allocated: fill the first one.
	disk.full.Store(true)
	want := map[string]int64{"s1": 10, "s2": 10}
	var err error
	for i := 0; err == nil; i++ {
		if i == 100_000 {
			t.Fatal("appends never needed a new segment, or the disk's refusal was not seen")
		}
		subject := subjects[i%2]
		if _, err = s.Append(ctx, []messagelog.Message{{Subject: subject, Payload: payloadFor(subject, s.msgs.NextSequence(subject))}}); err == nil {
			want[subject]++
		}
	}
	if !errors.As(err, &fe) || fe.Needed != cfg.MessageSegmentSize || !strings.Contains(fe.Error(), "messagelog.segment.size") {
		t.Fatalf("append needing a new segment on a full disk: %v", err)
	}
	t.Logf("refusal: %v", err)
	if s.DiskFull() == nil {
		t.Fatal("a refused segment did not mark the store full")
	}
	// More than the reserve but less than the segment on top of it: still full.
	disk.free.Store(cfg.DiskFreeMin + cfg.MessageSegmentSize/2)
	time.Sleep(10 * cfg.DiskCheckInterval)
	if fe := refused(); fe.Needed != cfg.MessageSegmentSize || fe.Free != cfg.DiskFreeMin+cfg.MessageSegmentSize/2 {
		t.Fatalf("refusal while the segment does not fit: %+v", fe)
	}
	// Space returns: the store recovers by itself and the roll succeeds.
	disk.full.Store(false)
	disk.free.Store(100 << 20)
	testutil.Eventually(t, 5*time.Second, "the store to take messages again", func() bool { return s.DiskFull() == nil })
	appendN(t, s, subjects, 10)
	want["s1"] += 5
	want["s2"] += 5
	checkAll(t, s, subjects, want)
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s = openStore(t, cfg)
	checkAll(t, s, subjects, want)
}

// TestStoreDiskFullBacksOff: a file system that reports enough free space
// but refuses the allocation anyway (a quota, no inodes) does not make the
// store flap between full and not every check: each refusal is held longer.
func TestStoreDiskFullBacksOff(t *testing.T) {
	disk := &fakeDisk{}
	disk.free.Store(100 << 20)
	disk.full.Store(true)
	cfg := testConfig(t.TempDir())
	cfg.FS = disk.fs()
	cfg.DiskFreeMin = 1 << 20
	cfg.DiskCheckInterval = 10 * time.Millisecond
	s := openStore(t, cfg)
	defer s.Close()
	var held []time.Duration
	for i := 0; i < 2; i++ {
		// The log is empty: the first append needs a segment.
		if _, err := s.Append(context.Background(), []messagelog.Message{{Subject: "s1", Payload: []byte("x")}}); !errors.Is(err, ErrDiskFull) {
			t.Fatalf("append %d: %v, want a disk-full refusal", i, err)
		}
		start := time.Now()
		testutil.Eventually(t, 5*time.Second, "the refusal to be retried", func() bool { return s.DiskFull() == nil })
		held = append(held, time.Since(start))
	}
	if held[0] < 900*time.Millisecond || held[1] < 1900*time.Millisecond {
		t.Fatalf("refusals held %v, want at least 1s then 2s", held)
	}
}

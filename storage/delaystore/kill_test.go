package delaystore

import (
	"errors"
	mrand "math/rand"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/qmq-go/qmq/storage/vfs"
)

// crashAfter runs f on a store over a CrashFS, cuts the power and reopens.
func crashAfter(t *testing.T, cfg Config, inject func(op, path string) error, f func(s *Store)) *Store {
	t.Helper()
	cfs := vfs.NewCrashFS(vfs.Default())
	var off atomic.Bool
	cfg.FS = vfs.NewErrorFS(cfs, func(op, path string) error {
		if off.Load() {
			return errors.New("powered off")
		}
		if inject != nil {
			return inject(op, path)
		}
		return nil
	})
	s := mustOpen(t, cfg)
	f(s)
	off.Store(true)
	if err := cfs.Crash(mrand.New(mrand.NewSource(1)), vfs.CrashOptions{TornTail: true, ZeroedTail: true}); err != nil {
		t.Fatal(err)
	}
	s.Close()
	cfg.FS = cfs
	return mustOpen(t, cfg)
}

// TestCrashBetweenAppendAndReplay: the message log is durable but writing
// the schedule bucket fails; after the crash the message is scheduled.
func TestCrashBetweenAppendAndReplay(t *testing.T) {
	c := newClock(t0)
	cfg := testConfig(t, t.TempDir(), c)
	var failBuckets atomic.Bool
	s := crashAfter(t, cfg, func(op, path string) error {
		if failBuckets.Load() && strings.Contains(path, scheduleDir) {
			return errors.New("bucket write failed")
		}
		return nil
	}, func(s *Store) {
		if _, err := s.Append([]Message{msg(1, c.At(time.Second))}); err != nil {
			t.Fatal(err)
		}
		failBuckets.Store(true)
		_, err := s.Append([]Message{msg(2, c.At(2*time.Hour))}) // a new bucket: its creation fails
		if err == nil {
			t.Fatal("replay into a failing bucket succeeded")
		}
	})
	defer s.Close()
	c.Add(3 * time.Hour)
	if err := s.loadDue(); err != nil {
		t.Fatal(err)
	}
	if got := drain(t, s, 20*time.Millisecond); len(got) != 2 {
		t.Fatalf("%d due after recovery, want both (the second was durable in the message log)", len(got))
	}
}

// TestCrashBetweenDueAndMark: handed out but not marked comes back; marked
// does not.
func TestCrashBetweenDueAndMark(t *testing.T) {
	c := newClock(t0)
	cfg := testConfig(t, t.TempDir(), c)
	var marked, unmarked Entry
	s := crashAfter(t, cfg, nil, func(s *Store) {
		if _, err := s.Append([]Message{msg(1, c.At(0)), msg(2, c.At(0))}); err != nil {
			t.Fatal(err)
		}
		es := drain(t, s, 20*time.Millisecond)
		if len(es) != 2 {
			t.Fatalf("%d due", len(es))
		}
		marked, unmarked = es[0], es[1]
		if err := s.MarkDispatched([]Entry{marked}); err != nil {
			t.Fatal(err)
		}
	})
	defer s.Close()
	got := drain(t, s, 20*time.Millisecond)
	if len(got) != 1 || got[0].Sequence != unmarked.Sequence {
		t.Fatalf("after recovery got %+v, want only %d (marked: %d)", got, unmarked.Sequence, marked.Sequence)
	}
}

// TestDiskFreeMin: appends are refused below the reserve; marks are not.
func TestDiskFreeMin(t *testing.T) {
	c := newClock(t0)
	cfg := testConfig(t, t.TempDir(), c)
	var free atomic.Int64
	free.Store(1 << 30)
	cfg.FS = vfs.NewUsageFS(vfs.Default(), func(string) (vfs.Usage, error) { return vfs.Usage{Total: 1 << 40, Free: free.Load()}, nil })
	cfg.DiskFreeMin = 1 << 20
	s := mustOpen(t, cfg)
	defer s.Close()
	if _, err := s.Append([]Message{msg(1, c.At(0))}); err != nil {
		t.Fatal(err)
	}
	free.Store(1 << 10)
	s.lastDisk.Store(0)
	if _, err := s.Append([]Message{msg(2, c.At(0))}); err == nil || !strings.Contains(err.Error(), "disk full") {
		t.Fatalf("append below the reserve: %v", err)
	}
	es := drain(t, s, 20*time.Millisecond)
	if err := s.MarkDispatched(es); err != nil || len(es) != 1 {
		t.Fatalf("mark below the reserve: %v (%d)", err, len(es))
	}
}

func TestMetricsRegister(t *testing.T) {
	c := newClock(t0)
	reg := prometheus.NewRegistry()
	cfg := testConfig(t, t.TempDir(), c)
	cfg.Registerer = reg
	s := mustOpen(t, cfg)
	if _, err := s.Append([]Message{msg(1, c.At(0))}); err != nil {
		t.Fatal(err)
	}
	mfs, err := reg.Gather()
	if err != nil || len(mfs) == 0 {
		t.Fatalf("gather: %v", err)
	}
	s.Close()
	s = mustOpen(t, cfg) // Close unregistered everything
	s.Close()
}

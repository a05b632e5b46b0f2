package storage

import (
	"errors"
	mrand "math/rand"
	"math/rand/v2"
	"os"
	"sync/atomic"
	"testing"
	"time"

	"github.com/qmq-go/qmq/storage/actionlog"
	"github.com/qmq-go/qmq/storage/pulllog"
	"github.com/qmq-go/qmq/storage/vfs"
)

// registerGroup records where a new group of subject s starts, as the broker
// does on the group's first pull: after the newest message.
func registerGroup(t *testing.T, st *Store, group string) int64 {
	t.Helper()
	last := st.MaxSequence("s")
	if _, err := st.ApplyActionsDurable([]actionlog.Action{{Type: actionlog.Reset, Subject: "s", Group: group, ConsumerID: "c1",
		Timestamp: time.Now().UnixMilli(), LastMsgSeq: last}}); err != nil {
		t.Fatal(err)
	}
	return last + 1
}

// checkGroupResumes checks that the group, never pulled, resumes at start
// and that from there it reads exactly the messages sent after it registered.
func checkGroupResumes(t *testing.T, st *Store, group string, start, end int64) {
	t.Helper()
	var maxPulled int64
	var ok bool
	st.PullLog(func(tb *pulllog.Table) { maxPulled, ok = tb.GroupMaxPulledMsgSeq("s", group) })
	if !ok {
		t.Fatalf("group %s forgotten: it would start at the newest message and miss %d messages sent after it registered", group, end-start)
	}
	if maxPulled+1 != start {
		t.Fatalf("group %s resumes at %d, want %d (where it registered)", group, maxPulled+1, start)
	}
	for seq := start; seq < end; seq++ {
		rec, err := st.Read("s", seq)
		if err != nil {
			t.Fatalf("read s/%d: %v", seq, err)
		}
		if string(rec.Payload) != string(payloadFor("s", seq)) {
			t.Fatalf("s/%d: payload %.40q", seq, rec.Payload)
		}
		rec.Release()
	}
	if got := st.MaxSequence("s"); got != end-1 {
		t.Fatalf("max sequence %d, want %d", got, end-1)
	}
}

// TestGroupStartSurvivesRestart: a group registered (RESET written on its
// first pull) before messages arrive resumes, after a restart, at the first
// message sent after it registered, not at the newest one.
func TestGroupStartSurvivesRestart(t *testing.T) {
	cfg := testConfig(t.TempDir())
	st := openStore(t, cfg)
	appendN(t, st, []string{"s"}, 5) // before the group: not for it
	waitDispatched(t, st)
	start := registerGroup(t, st, "g")
	// A group registered on an empty subject starts at its first message.
	emptyStart := int64(-1)
	if _, err := st.ApplyActionsDurable([]actionlog.Action{{Type: actionlog.Reset, Subject: "empty", Group: "g", ConsumerID: "c1", LastMsgSeq: emptyStart}}); err != nil {
		t.Fatal(err)
	}
	appendN(t, st, []string{"s"}, 20)
	if err := st.Close(); err != nil {
		t.Fatal(err)
	}
	st = openStore(t, cfg)
	defer st.Close()
	checkGroupResumes(t, st, "g", start, 25)
	st.PullLog(func(tb *pulllog.Table) {
		if m, ok := tb.GroupMaxPulledMsgSeq("empty", "g"); !ok || m != emptyStart {
			t.Fatalf("group of the empty subject: %d,%v", m, ok)
		}
	})
}

// TestGroupStartSurvivesPowerLoss: the action log is flushed every
// flush.interval.ms, but a group's start must not wait for that: messages
// synced (flush.sync) after the group registered would otherwise survive a
// power loss that takes the start away.
func TestGroupStartSurvivesPowerLoss(t *testing.T) {
	rng := rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), 3))
	for iter := range 4 {
		dir, err := os.MkdirTemp("/dev/shm", "qmq-groupstart-test-")
		if err != nil {
			dir = t.TempDir()
		} else {
			t.Cleanup(func() { os.RemoveAll(dir) })
		}
		cfs := vfs.NewCrashFS(vfs.Default())
		var crashed atomic.Bool
		// After the crash the old store only closes: nothing it writes may
		// reach the "disk" the next one recovers from.
		gate := vfs.NewErrorFS(cfs, func(op, path string) error {
			if crashed.Load() {
				return errors.New("powered off")
			}
			return nil
		})
		cfg := testConfig(dir)
		cfg.FS = gate
		cfg.FlushSync = true             // acknowledged messages are on disk
		cfg.FlushInterval = time.Hour    // nothing else is flushed in the background
		cfg.CheckpointMaxAge = time.Hour // nor checkpointed
		cfg.MessageCheckpointInterval = 1e9
		st := openStore(t, cfg)
		appendN(t, st, []string{"s"}, 3+rng.IntN(5))
		waitDispatched(t, st)
		start := registerGroup(t, st, "g")
		appendN(t, st, []string{"s"}, 10+rng.IntN(20))
		// The consumer log is written behind the message log: read the
		// end only once every appended message is dispatched, or a
		// message that is on disk would count as a ghost after recovery.
		waitDispatched(t, st)
		end := st.MaxSequence("s") + 1
		crashed.Store(true)
		if err := cfs.Crash(mrand.New(mrand.NewSource(rng.Int64())), vfs.CrashOptions{TornTail: rng.IntN(2) == 0, ReorderedTail: rng.IntN(3) == 0, ZeroedTail: rng.IntN(2) == 0}); err != nil {
			t.Fatal(err)
		}
		_ = st.Close() // fails: the disk is gone
		cfg.FS = cfs
		st = openStore(t, cfg)
		checkGroupResumes(t, st, "g", start, end)
		if err := st.Close(); err != nil {
			t.Fatal(err)
		}
		t.Logf("iteration %d: group registered at %d recovered with the %d messages after it", iter, start, end-start)
	}
}

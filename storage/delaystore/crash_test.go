package delaystore

import (
	"context"
	"errors"
	"fmt"
	mrand "math/rand"
	"os"
	"sync/atomic"
	"testing"
	"time"

	"github.com/qmq-go/qmq/storage/vfs"
)

// crashModel is what the test knows: every message it tried to append (by
// id), which appends were acknowledged, which entries were marked
// dispatched or cancelled with success.
type crashModel struct {
	sent      map[string]Message
	acked     map[string]bool
	finished  map[string]bool // marked dispatched or cancelled: never again
	attempted map[string]bool // mark or cancel failed: maybe recorded, maybe not
	next      int
}

// crashWorkload runs random operations until one fails (the power went
// off) or n operations are done.
func crashWorkload(t *testing.T, s *Store, c *clock, m *crashModel, rng *mrand.Rand, n int) {
	var inflight []Entry
	for op := 0; op < n; op++ {
		switch k := rng.Intn(10); {
		case k < 4:
			batch := make([]Message, 1+rng.Intn(8))
			for i := range batch {
				id := fmt.Sprintf("m%d", m.next)
				m.next++
				// Mostly soon, some in later buckets, some a little in the past.
				at := c.At(time.Duration(rng.Intn(120)-10) * time.Second)
				if rng.Intn(5) == 0 {
					at = c.At(time.Duration(rng.Intn(40)) * time.Minute)
				}
				batch[i] = Message{ScheduleTime: at, Subject: []string{"order", "pay", "ship"}[rng.Intn(3)], MessageID: id,
					Payload: payloadOf(id, rng.Intn(3000))}
				m.sent[id] = batch[i]
			}
			if _, err := s.Append(batch); err != nil {
				return
			}
			for _, b := range batch {
				m.acked[b.MessageID] = true
			}
		case k < 6:
			c.Add(time.Duration(rng.Intn(20)) * time.Second)
			if rng.Intn(3) == 0 {
				if err := s.loadDue(); err != nil {
					return
				}
			}
			ctx, cancel := context.WithTimeout(context.Background(), time.Millisecond)
			es, err := s.Due(ctx, 50)
			cancel()
			if err != nil && !errors.Is(err, context.DeadlineExceeded) {
				return
			}
			for _, e := range es {
				if e.ScheduleTime > c.At(0) {
					t.Fatalf("entry %d due at %d returned at %d", e.Sequence, e.ScheduleTime, c.At(0))
				}
				msg, err := s.Read(e)
				if err != nil {
					return
				}
				if m.finished[msg.MessageID] {
					t.Fatalf("%s returned after it was marked dispatched or cancelled", msg.MessageID)
				}
				checkMessage(t, m, msg)
			}
			inflight = append(inflight, es...)
		case k < 8 && len(inflight) > 0:
			n := 1 + rng.Intn(len(inflight))
			var ids []string
			for _, e := range inflight[:n] {
				msg, err := s.Read(e)
				if err != nil {
					return
				}
				ids = append(ids, msg.MessageID)
			}
			if err := s.MarkDispatched(inflight[:n]); err != nil {
				for _, id := range ids {
					m.attempted[id] = true // maybe recorded
				}
				return
			}
			for _, id := range ids {
				m.finished[id] = true
			}
			inflight = inflight[n:]
		case k == 8 && m.next > 0:
			id := fmt.Sprintf("m%d", rng.Intn(m.next))
			msg := m.sent[id]
			ok, err := s.Cancel(msg.Subject, id)
			if err != nil {
				m.attempted[id] = true // maybe recorded
				return
			}
			if ok {
				m.finished[id] = true
			}
		}
	}
}

func payloadOf(id string, n int) []byte {
	b := make([]byte, 1+n)
	for i := range b {
		b[i] = id[i%len(id)] ^ byte(i)
	}
	return b
}

func checkMessage(t *testing.T, m *crashModel, got Message) {
	t.Helper()
	want, ok := m.sent[got.MessageID]
	if !ok {
		t.Fatalf("unknown message %q", got.MessageID)
	}
	if want.Subject != got.Subject || want.ScheduleTime != got.ScheduleTime || string(want.Payload) != string(got.Payload) {
		t.Fatalf("message %s damaged", got.MessageID)
	}
}

// verifyRecovered advances the clock step by step over the whole schedule
// and drains: nothing early, nothing finished, nothing twice, every acked
// unfinished message. It marks what it gets so the next generation starts
// clean.
func verifyRecovered(t *testing.T, s *Store, c *clock, m *crashModel) {
	t.Helper()
	seen := map[string]bool{}
	for step := 0; step < 50*60/30+5; step++ {
		if err := s.loadDue(); err != nil {
			t.Fatal(err)
		}
		for {
			ctx, cancel := context.WithTimeout(context.Background(), time.Millisecond)
			es, err := s.Due(ctx, 500)
			cancel()
			if err != nil {
				break
			}
			for _, e := range es {
				if e.ScheduleTime > c.At(0) {
					t.Fatalf("recovered entry due at %d returned at %d", e.ScheduleTime, c.At(0))
				}
				msg, err := s.Read(e)
				if err != nil {
					t.Fatalf("read recovered entry: %v", err)
				}
				checkMessage(t, m, msg)
				if m.finished[msg.MessageID] {
					t.Fatalf("%s returned after recovery although marked dispatched or cancelled", msg.MessageID)
				}
				if seen[msg.MessageID] {
					t.Fatalf("%s returned twice", msg.MessageID)
				}
				seen[msg.MessageID] = true
			}
			if err := s.MarkDispatched(es); err != nil {
				t.Fatal(err)
			}
		}
		c.Add(30 * time.Second)
	}
	for id := range m.acked {
		if !m.finished[id] && !seen[id] && !m.attempted[id] {
			t.Fatalf("acknowledged message %s (due %d) lost", id, m.sent[id].ScheduleTime)
		}
	}
	for id := range seen {
		m.finished[id] = true
	}
}

// TestCrashPowerLoss cuts the power at a random file-system operation in
// the middle of appends, replays, dispatches, marks and cancels, with torn,
// reordered and zeroed unsynced tails, and recovers from what a disk would
// keep, generation after generation on the same store.
func TestCrashPowerLoss(t *testing.T) {
	seed := time.Now().UnixNano()
	rng := mrand.New(mrand.NewSource(seed))
	t.Logf("seed %d", seed)
	iters := 6
	if testing.Short() {
		iters = 2
	}
	for iter := 0; iter < iters; iter++ {
		dir, err := os.MkdirTemp("/dev/shm", "qmq-delaystore-crash-")
		if err != nil {
			dir = t.TempDir()
		} else {
			t.Cleanup(func() { os.RemoveAll(dir) })
		}
		cfs := vfs.NewCrashFS(vfs.Default())
		c := newClock(t0)
		m := &crashModel{sent: map[string]Message{}, acked: map[string]bool{}, finished: map[string]bool{}, attempted: map[string]bool{}}
		for gen := 0; gen < 4; gen++ {
			var ops atomic.Int64
			limit := int64(50 + rng.Intn(3000))
			var off atomic.Bool
			gate := vfs.NewErrorFS(cfs, func(op, path string) error {
				if off.Load() || ops.Add(1) > limit {
					off.Store(true)
					return errors.New("powered off")
				}
				return nil
			})
			cfg := testConfig(t, dir, c)
			cfg.FS = gate
			cfg.MessageSegmentSize = 256 << 10
			cfg.MaxMessageSize = 8 << 10
			cfg.DispatchSegmentSize = 4 << 10
			cfg.SegmentScale = 5 * time.Minute
			cfg.LoadAhead = 2 * time.Minute
			cfg.FlushInterval = time.Hour // durability comes from FlushSync only
			s, err := Open(cfg)
			if err != nil {
				if !off.Load() {
					t.Fatalf("iteration %d generation %d: open: %v", iter, gen, err)
				}
			} else {
				crashWorkload(t, s, c, m, rng, 400)
			}
			off.Store(true)
			opts := vfs.CrashOptions{TornTail: rng.Intn(2) == 0, ReorderedTail: rng.Intn(3) == 0, ZeroedTail: rng.Intn(2) == 0, UnsyncedDirOps: rng.Intn(2) == 0}
			if err := cfs.Crash(mrand.New(mrand.NewSource(rng.Int63())), opts); err != nil {
				t.Fatal(err)
			}
			if s != nil {
				_ = s.Close() // the disk is gone: changes nothing
			}
			cfg.FS = cfs
			s, err = Open(cfg)
			if err != nil {
				t.Fatalf("iteration %d generation %d (crash after %d ops, %+v): recover: %v", iter, gen, limit, opts, err)
			}
			verifyRecovered(t, s, c, m)
			if err := s.Close(); err != nil {
				t.Fatal(err)
			}
			t.Logf("iteration %d generation %d: crash after %d fs ops; %d sent, %d acked, %d finished", iter, gen, limit, len(m.sent), len(m.acked), len(m.finished))
		}
	}
}

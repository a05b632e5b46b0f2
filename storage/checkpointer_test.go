package storage

import (
	"context"
	"maps"
	"math/rand/v2"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/qmq-go/qmq/internal/testutil"
	"github.com/qmq-go/qmq/storage/checkpoint"
	"github.com/qmq-go/qmq/storage/messagelog"
)

// TestCheckpointIncrementalMatchesFull: the checkpoints the checkpointer
// builds from the dispatcher's deltas claim exactly what reading every end
// would (captureCheckpoint), through rounds that write a few of many
// subjects and raise sequence floors of subjects with and without a
// consumer log, as a replica does.
func TestCheckpointIncrementalMatchesFull(t *testing.T) {
	cfg := testConfig(t.TempDir())
	cfg.MessageCheckpointInterval = 1
	s := openStore(t, cfg)
	defer s.Close()
	ctx := context.Background()
	rng := rand.New(rand.NewPCG(3, 9))
	for round := range 12 {
		var batch []messagelog.Message
		for range 1 + rng.IntN(40) {
			batch = append(batch, messagelog.Message{Subject: "s." + strconv.Itoa(rng.IntN(500)), Payload: []byte("x")})
		}
		if round%3 == 1 {
			// Floors, raised before the batch so that the capture at its
			// end follows them (a floor raised later is the next
			// capture's): one for a subject with a log (its end wins),
			// one for a subject without (kept), one below an existing
			// floor.
			s.RaiseSequences(map[string]int64{
				"s." + strconv.Itoa(rng.IntN(500)): 1_000,
				"floor." + strconv.Itoa(round):     int64(round * 10),
				"floor.1":                          3,
			})
		}
		app, err := s.Append(ctx, batch)
		if err != nil {
			t.Fatal(err)
		}
		end := app[len(app)-1].Offset + int64(app[len(app)-1].Size)
		if err := s.WaitDispatched(ctx, end); err != nil {
			t.Fatal(err)
		}
		var saved checkpoint.MessageCheckpoint
		testutil.Eventually(t, 10*time.Second, "a checkpoint at the dispatched end", func() bool {
			cp, found, err := checkpoint.LoadMessage(s.fs, cfg.dir("checkpoint"))
			saved = cp
			return err == nil && found && cp.Offset == end
		})
		want := s.captureCheckpoint(end)
		if !maps.Equal(saved.MaxSequences, want.MaxSequences) {
			t.Fatalf("round %d: the checkpoint claims\n%v\nreading every end gives\n%v", round, saved.MaxSequences, want.MaxSequences)
		}
	}
}

// TestCheckpointDeltaMerge: captures the checkpointer has not taken yet
// merge into one that stands for all of them; a full capture replaces
// what came before it.
func TestCheckpointDeltaMerge(t *testing.T) {
	d := &checkpointDelta{offset: 10, full: true, ends: map[string]int64{"a": 1, "b": 2}, raised: map[string]int64{"f": 5}}
	d.mergeNewer(&checkpointDelta{offset: 20, ends: map[string]int64{"b": 3, "c": 0}, raised: map[string]int64{"f": 4, "g": 7}})
	if !d.full || d.offset != 20 || !maps.Equal(d.ends, map[string]int64{"a": 1, "b": 3, "c": 0}) || !maps.Equal(d.raised, map[string]int64{"f": 5, "g": 7}) {
		t.Fatalf("merged: %+v", d)
	}
	d.mergeNewer(&checkpointDelta{offset: 30, full: true, ends: map[string]int64{"z": 9}})
	if !d.full || d.offset != 30 || !maps.Equal(d.ends, map[string]int64{"z": 9}) || d.raised != nil {
		t.Fatalf("after a full capture: %+v", d)
	}
	var p checkpointPicture
	p.apply(&checkpointDelta{offset: 1, full: true, ends: map[string]int64{"a": 4}, raised: map[string]int64{"a": 100, "f": 5}})
	p.apply(&checkpointDelta{offset: 2, ends: map[string]int64{"f": 6}, raised: map[string]int64{"g": 1}})
	p.apply(&checkpointDelta{offset: 3, raised: map[string]int64{"f": 50, "g": 2}})
	if want := map[string]int64{"a": 4, "f": 6, "g": 2}; !maps.Equal(p.maxSeqs, want) || p.offset != 3 {
		t.Fatalf("picture %v at %d, want %v at 3", p.maxSeqs, p.offset, want)
	}
	if got := p.sortedSubjects(); !slices.Equal(got, []string{"a", "f", "g"}) {
		t.Fatalf("sorted subjects %v", got)
	}
	p.apply(&checkpointDelta{offset: 4, ends: map[string]int64{"b": 0, "a": 5, "z": 1}})
	if got := p.sortedSubjects(); !slices.Equal(got, []string{"a", "b", "f", "g", "z"}) {
		t.Fatalf("sorted subjects after adding b, z: %v", got)
	}
}

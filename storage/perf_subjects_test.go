//go:build perf

package storage

import (
	"context"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/qmq-go/qmq/internal/testutil"
	"github.com/qmq-go/qmq/storage/messagelog"
)

// TestPerfDispatchLatencySubjects measures what many subjects *present*
// cost the produce path: with PERF_SUBJECTS subjects (default 33,333)
// created first, one message of 1 KiB is appended every 100 µs (10,000/s)
// to a single subject for PERF_SECONDS (default 20), and the time from
// Append to the consumer log covering it (WaitDispatched) is recorded. A
// message checkpoint is taken every checkpoint.min.interval.ms (default
// 5 s) meanwhile, so its cost shows in the tail. Run it with
// PERF_SUBJECTS=1 for the baseline in the same session:
//
//	go test -tags perf -run TestPerfDispatchLatencySubjects -v ./storage/
func TestPerfDispatchLatencySubjects(t *testing.T) {
	n := testutil.EnvInt(t, "PERF_SUBJECTS", 33_333)
	seconds := testutil.EnvInt(t, "PERF_SECONDS", 20)
	cfg := DefaultConfig(t.TempDir())
	s, err := Open(cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	ctx := context.Background()
	payload := []byte(strings.Repeat("q", 1024))
	start := time.Now()
	for i := 0; i < n; i += 1000 {
		var warm []messagelog.Message
		for j := i; j < min(i+1000, n); j++ {
			warm = append(warm, messagelog.Message{Subject: "perf.subject." + strconv.Itoa(j), Payload: payload})
		}
		app, err := s.Append(ctx, warm)
		if err != nil {
			t.Fatal(err)
		}
		a := app[len(app)-1]
		if err := s.WaitDispatched(ctx, a.Offset+int64(a.Size)); err != nil {
			t.Fatal(err)
		}
	}
	t.Logf("%d subjects created in %v", n, time.Since(start).Round(time.Millisecond))
	time.Sleep(cfg.CheckpointMinGap) // the creation's own checkpoint is not measured

	var lat []time.Duration
	tick := time.NewTicker(100 * time.Microsecond)
	defer tick.Stop()
	end := time.Now().Add(time.Duration(seconds) * time.Second)
	for time.Now().Before(end) {
		<-tick.C
		t0 := time.Now()
		app, err := s.Append(ctx, []messagelog.Message{{Subject: "perf.hot", Payload: payload}})
		if err != nil {
			t.Fatal(err)
		}
		if err := s.WaitDispatched(ctx, app[0].Offset+int64(app[0].Size)); err != nil {
			t.Fatal(err)
		}
		lat = append(lat, time.Since(t0))

	}
	slices.Sort(lat)
	q := func(p float64) time.Duration { return lat[min(len(lat)-1, int(p*float64(len(lat))))] }
	t.Logf("subjects=%d messages=%d append→dispatched p50=%v p99=%v p99.9=%v max=%v", n, len(lat),
		q(0.5), q(0.99), q(0.999), lat[len(lat)-1])
}

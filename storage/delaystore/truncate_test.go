package delaystore

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	mrand "math/rand"
	"os"
	"path/filepath"
	"sort"
	"sync/atomic"
	"testing"
	"time"

	"github.com/qmq-go/qmq/storage/vfs"
)

// truncFixture is a store that took part 1 (the replicated part, up to
// the cut), then part 2 (the tail a former master's slave never copied):
// sends into the same buckets as part 1 and dispatch records for both.
type truncFixture struct {
	cfg                  Config
	cutMsg, cutDisp      int64
	oldMsg, oldDisp      int64
	wantCut, wantOld     map[string]bool // undispatched ids after the cut / without it
	refDir               string          // a copy of the store at the cut point
	part2, dispatchedTwo []string
}

func truncConfig(t testing.TB, dir string, c *clock) Config {
	cfg := testConfig(t, dir, c)
	cfg.MessageSegmentSize = 144 << 10 // the tail spans two segments
	cfg.MaxMessageSize = 8 << 10
	cfg.DispatchSegmentSize = 1 << 10
	cfg.SegmentScale = 5 * time.Minute
	cfg.LoadAhead = 2 * time.Minute
	return cfg
}

// dispatchSome takes due entries and marks every other one dispatched.
func dispatchSome(t *testing.T, s *Store) []string {
	t.Helper()
	var ids []string
	var marked []Entry
	for i, e := range drain(t, s, 20*time.Millisecond) {
		if i%2 == 1 {
			continue
		}
		m, err := s.Read(e)
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, m.MessageID)
		marked = append(marked, e)
	}
	if err := s.MarkDispatched(marked); err != nil {
		t.Fatal(err)
	}
	return ids
}

func sendPart(t *testing.T, s *Store, c *clock, prefix string, n int) []string {
	t.Helper()
	var ids []string
	for i := 0; i < n; i += 10 {
		var batch []Message
		for j := i; j < min(i+10, n); j++ {
			// Some due at once, the rest spread over 40 minutes (8 buckets).
			at := c.At(-time.Second)
			if j%3 != 0 {
				at = c.At(time.Duration(j*37%2400) * time.Second)
			}
			m := msg(j, at)
			m.MessageID = fmt.Sprintf("%s-%d", prefix, j)
			m.Payload = payloadOf(m.MessageID, 200+j*13%900)
			batch = append(batch, m)
			ids = append(ids, m.MessageID)
		}
		if _, err := s.Append(batch); err != nil {
			t.Fatal(err)
		}
	}
	return ids
}

func newTruncFixture(t *testing.T, dir string) *truncFixture {
	t.Helper()
	c := newClock(t0)
	f := &truncFixture{cfg: truncConfig(t, dir, c), wantCut: map[string]bool{}, wantOld: map[string]bool{}}
	s := mustOpen(t, f.cfg)
	one := sendPart(t, s, c, "one", 120)
	done := map[string]bool{}
	for _, id := range dispatchSome(t, s) {
		done[id] = true
	}
	f.cutMsg, f.cutDisp = s.LogEnd(MessageLog), s.LogEnd(DispatchLog)
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	f.refDir = t.TempDir()
	copyTree(t, dir, f.refDir)
	for _, id := range one {
		if !done[id] {
			f.wantCut[id] = true
		}
	}
	c.Add(10 * time.Second) // part 1's undispatched due entries come again, and part 2's
	s = mustOpen(t, f.cfg)
	f.part2 = sendPart(t, s, c, "two", 150)
	f.dispatchedTwo = dispatchSome(t, s)
	for _, id := range f.dispatchedTwo {
		done[id] = true
	}
	f.oldMsg, f.oldDisp = s.LogEnd(MessageLog), s.LogEnd(DispatchLog)
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	for _, id := range append(one, f.part2...) {
		if !done[id] {
			f.wantOld[id] = true
		}
	}
	if f.oldMsg <= f.cutMsg || f.oldDisp <= f.cutDisp {
		t.Fatalf("fixture: part 2 added nothing (message log %d -> %d, dispatch log %d -> %d)", f.cutMsg, f.oldMsg, f.cutDisp, f.oldDisp)
	}
	return f
}

func copyTree(t testing.TB, from, to string) {
	t.Helper()
	err := filepath.Walk(from, func(path string, info os.FileInfo, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(from, path)
		dst := filepath.Join(to, rel)
		if info.IsDir() {
			return os.MkdirAll(dst, 0o755)
		}
		b, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		return os.WriteFile(dst, b, 0o644)
	})
	if err != nil {
		t.Fatal(err)
	}
}

// delivered opens cfg's store and collects every entry due over the next
// hour, failing on an entry returned twice.
func delivered(t *testing.T, cfg Config) (map[string]bool, [2]int64) {
	t.Helper()
	c := newClock(t0.Add(20 * time.Second))
	cfg.Now = c.Now
	s := mustOpen(t, cfg)
	defer s.Close()
	ends := [2]int64{s.LogEnd(MessageLog), s.LogEnd(DispatchLog)}
	got := map[string]bool{}
	for step := 0; step < 120; step++ {
		if err := s.loadDue(); err != nil {
			t.Fatal(err)
		}
		for {
			ctx, cancel := context.WithTimeout(context.Background(), time.Millisecond)
			es, err := s.Due(ctx, 1000)
			cancel()
			if err != nil {
				break
			}
			for _, e := range es {
				m, err := s.Read(e)
				if err != nil {
					t.Fatalf("read entry %d: %v", e.Sequence, err)
				}
				if got[m.MessageID] {
					t.Fatalf("%s delivered twice", m.MessageID)
				}
				if string(m.Payload) != string(payloadOf(m.MessageID, len(m.Payload)-1)) {
					t.Fatalf("%s damaged", m.MessageID)
				}
				got[m.MessageID] = true
			}
		}
		c.Add(30 * time.Second)
	}
	return got, ends
}

func sameSet(t *testing.T, what string, got, want map[string]bool) {
	t.Helper()
	var missing, extra []string
	for id := range want {
		if !got[id] {
			missing = append(missing, id)
		}
	}
	for id := range got {
		if !want[id] {
			extra = append(extra, id)
		}
	}
	sort.Strings(missing)
	sort.Strings(extra)
	if len(missing)+len(extra) > 0 {
		t.Fatalf("%s: %d missing %v, %d unexpected %v", what, len(missing), missing, len(extra), extra)
	}
}

// TestTruncateLogsCutsTail: a store cut at the ends it had after part 1
// has the logs of a copy taken then, byte for byte, and delivers exactly
// part 1's undispatched messages: no part-2 message (their bucket records
// are gone), and part 1's messages whose dispatch records were in the cut
// tail again.
func TestTruncateLogsCutsTail(t *testing.T) {
	dir := t.TempDir()
	f := newTruncFixture(t, dir)
	oldMsg, oldDisp, err := TruncateLogs(f.cfg, f.cutMsg, f.cutDisp)
	if err != nil {
		t.Fatal(err)
	}
	if oldMsg != f.oldMsg || oldDisp != f.oldDisp {
		t.Fatalf("TruncateLogs reports old ends %d/%d, want %d/%d", oldMsg, oldDisp, f.oldMsg, f.oldDisp)
	}
	for _, d := range []string{messageDir, dispatchDir} {
		sameLogFiles(t, filepath.Join(f.refDir, d), filepath.Join(dir, d))
	}
	if _, err := os.Stat(filepath.Join(dir, truncFile)); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("the truncation marker is left: %v", err)
	}
	got, ends := delivered(t, f.cfg)
	if ends != [2]int64{f.cutMsg, f.cutDisp} {
		t.Fatalf("ends after the cut %v, want %d/%d", ends, f.cutMsg, f.cutDisp)
	}
	sameSet(t, "delivered after the cut", got, f.wantCut)
	t.Logf("cut message log %d -> %d, dispatch log %d -> %d; %d messages delivered (%d sent in the cut tail, %d dispatch records cut)",
		oldMsg, f.cutMsg, oldDisp, f.cutDisp, len(got), len(f.part2), (oldDisp-f.cutDisp)/int64(dispRecordSize))

	// Again: nothing to cut.
	if o, d, err := TruncateLogs(f.cfg, f.cutMsg, f.cutDisp); err != nil || o != f.cutMsg || d != f.cutDisp {
		t.Fatalf("second TruncateLogs: %d %d %v", o, d, err)
	}
}

func sameLogFiles(t *testing.T, want, got string) {
	t.Helper()
	names, err := os.ReadDir(want)
	if err != nil {
		t.Fatal(err)
	}
	other, _ := os.ReadDir(got)
	if len(other) != len(names) {
		t.Fatalf("%s: %d files, the copy at the cut point %d", got, len(other), len(names))
	}
	for _, n := range names {
		a, _ := os.ReadFile(filepath.Join(want, n.Name()))
		b, err := os.ReadFile(filepath.Join(got, n.Name()))
		if err != nil || !bytes.Equal(a, b) {
			t.Fatalf("%s/%s differs from the copy at the cut point (%v)", got, n.Name(), err)
		}
	}
}

// TestTruncateLogsRefuses: a cut inside a record, or before what
// retention kept, is refused without changing anything.
func TestTruncateLogsRefuses(t *testing.T) {
	dir := t.TempDir()
	f := newTruncFixture(t, dir)
	if _, _, err := TruncateLogs(f.cfg, f.cutMsg+1, f.cutDisp); err == nil {
		t.Fatal("a cut inside a message record was accepted")
	} else {
		t.Log(err)
	}
	if _, _, err := TruncateLogs(f.cfg, f.cutMsg, f.cutDisp+1); err == nil {
		t.Fatal("a cut inside a dispatch record was accepted")
	}
	if _, err := os.Stat(filepath.Join(dir, truncFile)); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("a refused cut left its marker: %v", err)
	}
	got, ends := delivered(t, f.cfg)
	if ends != [2]int64{f.oldMsg, f.oldDisp} {
		t.Fatalf("ends after refused cuts %v, want %d/%d", ends, f.oldMsg, f.oldDisp)
	}
	sameSet(t, "delivered after refused cuts", got, f.wantOld)
}

// TestTruncateLogsCrash cuts the power after every k-th file-system
// operation of a truncation, with torn, reordered and zeroed unsynced
// writes, and opens what a disk would keep: the store is either the old
// one (every undispatched message of both parts) or the cut one (part 1's
// undispatched ones), never a mix, and nothing is delivered twice.
func TestTruncateLogsCrash(t *testing.T) {
	seed := time.Now().UnixNano()
	if v := os.Getenv("QMQ_TRUNC_SEED"); v != "" {
		fmt.Sscan(v, &seed)
	}
	rng := mrand.New(mrand.NewSource(seed))
	t.Logf("seed %d", seed)
	tmpl := t.TempDir()
	f := newTruncFixture(t, tmpl)

	// How many operations a whole truncation takes.
	var total atomic.Int64
	probe := t.TempDir()
	copyTree(t, tmpl, probe)
	cfg := f.cfg
	cfg.Root = probe
	cfg.FS = vfs.NewErrorFS(vfs.Default(), func(string, string) error { total.Add(1); return nil })
	if _, _, err := TruncateLogs(cfg, f.cutMsg, f.cutDisp); err != nil {
		t.Fatal(err)
	}
	n := total.Load()
	step := max(n/40, 1)
	if testing.Short() {
		step = max(n/10, 1)
	}
	if os.Getenv("QMQ_TRUNC_ALL") != "" {
		step = 1 // every operation
	}
	states := map[string]int{}
	for limit := int64(1); limit <= n+1; limit += step {
		dir := t.TempDir()
		copyTree(t, tmpl, dir)
		cfs := vfs.NewCrashFS(vfs.Default())
		var ops atomic.Int64
		cfg := f.cfg
		cfg.Root = dir
		cfg.FS = vfs.NewErrorFS(cfs, func(op, path string) error {
			if ops.Add(1) > limit {
				return errors.New("powered off")
			}
			return nil
		})
		_, _, terr := TruncateLogs(cfg, f.cutMsg, f.cutDisp)
		opts := vfs.CrashOptions{TornTail: rng.Intn(2) == 0, ReorderedTail: rng.Intn(3) == 0, ZeroedTail: rng.Intn(2) == 0, UnsyncedDirOps: rng.Intn(2) == 0}
		if err := cfs.Crash(mrand.New(mrand.NewSource(rng.Int63())), opts); err != nil {
			t.Fatal(err)
		}
		cfg.FS = cfs
		t.Logf("crash after %d of %d ops (%+v; truncation error: %v)", limit, n, opts, terr)
		got, ends := delivered(t, cfg)
		switch ends {
		case [2]int64{f.cutMsg, f.cutDisp}:
			sameSet(t, fmt.Sprintf("crash after %d of %d ops (%+v), cut state", limit, n, opts), got, f.wantCut)
			states["cut"]++
		case [2]int64{f.oldMsg, f.oldDisp}:
			sameSet(t, fmt.Sprintf("crash after %d of %d ops (%+v), old state", limit, n, opts), got, f.wantOld)
			states["old"]++
		default:
			t.Fatalf("crash after %d of %d ops (%+v; truncation error %v): ends %v are neither the old %d/%d nor the cut %d/%d",
				limit, n, opts, terr, ends, f.oldMsg, f.oldDisp, f.cutMsg, f.cutDisp)
		}
	}
	t.Logf("truncation takes %d fs operations; crashes recovered to %v", n, states)
	if states["old"] == 0 || states["cut"] == 0 {
		t.Fatalf("crash points reached only %v", states)
	}
}

// TestTruncateLogsCrashWhileFinishing cuts the power during a truncation
// and again during the Open that finishes it: the third Open still finds
// the old store or the cut one.
func TestTruncateLogsCrashWhileFinishing(t *testing.T) {
	seed := time.Now().UnixNano()
	if v := os.Getenv("QMQ_TRUNC_SEED"); v != "" {
		fmt.Sscan(v, &seed)
	}
	rng := mrand.New(mrand.NewSource(seed))
	t.Logf("seed %d", seed)
	tmpl := t.TempDir()
	f := newTruncFixture(t, tmpl)
	runs := 12
	if testing.Short() {
		runs = 4
	}
	states := map[string]int{}
	for run := 0; run < runs; run++ {
		dir := t.TempDir()
		copyTree(t, tmpl, dir)
		cfs := vfs.NewCrashFS(vfs.Default())
		gated := func(limit int64) vfs.FS {
			var ops atomic.Int64
			return vfs.NewErrorFS(cfs, func(op, path string) error {
				if ops.Add(1) > limit {
					return errors.New("powered off")
				}
				return nil
			})
		}
		cfg := f.cfg
		cfg.Root = dir
		// Past the marker (about 10 operations in), before the end.
		first := int64(10 + rng.Intn(130))
		cfg.FS = gated(first)
		_, _, terr := TruncateLogs(cfg, f.cutMsg, f.cutDisp)
		crash := func() vfs.CrashOptions {
			opts := vfs.CrashOptions{TornTail: rng.Intn(2) == 0, ReorderedTail: rng.Intn(3) == 0, ZeroedTail: rng.Intn(2) == 0, UnsyncedDirOps: rng.Intn(2) == 0}
			if err := cfs.Crash(mrand.New(mrand.NewSource(rng.Int63())), opts); err != nil {
				t.Fatal(err)
			}
			return opts
		}
		opts1 := crash()
		second := int64(1 + rng.Intn(150))
		cfg.FS = gated(second)
		if s, err := Open(cfg); err == nil {
			_ = s.Close() // finished within the budget; nothing is marked dispatched
		}
		opts2 := crash()
		cfg.FS = cfs
		t.Logf("run %d: crash after %d truncation ops (%+v; %v), then after %d ops of the Open finishing it (%+v)", run, first, opts1, terr, second, opts2)
		got, ends := delivered(t, cfg)
		switch ends {
		case [2]int64{f.cutMsg, f.cutDisp}:
			sameSet(t, fmt.Sprintf("run %d, cut state", run), got, f.wantCut)
			states["cut"]++
		case [2]int64{f.oldMsg, f.oldDisp}:
			sameSet(t, fmt.Sprintf("run %d, old state", run), got, f.wantOld)
			states["old"]++
		default:
			t.Fatalf("run %d: ends %v are neither the old %d/%d nor the cut %d/%d", run, ends, f.oldMsg, f.oldDisp, f.cutMsg, f.cutDisp)
		}
	}
	t.Logf("double crashes recovered to %v", states)
}

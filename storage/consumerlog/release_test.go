package consumerlog

import (
	"fmt"
	"path/filepath"
	"sync"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/qmq-go/qmq/storage/vfs"
)

// With more subjects in use than MaxOpenLogs, the least recently used logs
// are closed and reopened on use: never more than the bound open, every
// entry still there, and after a reopen of the whole Manager too.
func TestMaxOpenLogsBoundsOpenFiles(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "consumerlog")
	reg := prometheus.NewRegistry()
	m, err := Open(Config{FS: vfs.Default(), Dir: dir, UnitsPerSegment: testUnits, MaxOpenLogs: 10, Registerer: reg})
	if err != nil {
		t.Fatal(err)
	}
	const subjects, per = 60, 30
	name := func(i int) string { return fmt.Sprintf("subject.%d", i) }
	for seq := int64(0); seq < per; seq++ {
		for i := range subjects {
			if err := m.Put(name(i), seq, entryFor(name(i), seq)); err != nil {
				t.Fatal(err)
			}
			if n := m.openLogs.Load(); n > 10 {
				t.Fatalf("%d logs open, bound 10", n)
			}
		}
	}
	for i := range subjects {
		checkRange(t, m, name(i), 0, per-1)
		if got := m.MaxSequence(name(i)); got != per-1 {
			t.Fatalf("%s: MaxSequence %d, want %d", name(i), got, per-1)
		}
	}
	// Bounds of closed logs come from what release kept: asking every
	// subject's (the dispatcher does at each checkpoint) opens none.
	opened := m.openLogs.Load()
	for i := range subjects {
		if got, min := m.MaxSequence(name(i)), m.MinSequence(name(i)); got != per-1 || min != 0 {
			t.Fatalf("%s: MaxSequence %d, MinSequence %d; want %d, 0", name(i), got, min, per-1)
		}
	}
	if now := m.openLogs.Load(); now != opened {
		t.Fatalf("asking bounds opened logs: %d open before, %d after", opened, now)
	}
	var released dto.Metric
	if err := m.metrics.released.Write(&released); err != nil || released.GetCounter().GetValue() < subjects {
		t.Fatalf("qmq_consumerlog_released_total %v (%v), want at least %d", released.GetCounter().GetValue(), err, subjects)
	}
	// A subject used all along stays open while the others rotate.
	for i := range subjects {
		checkRange(t, m, name(0), 0, per-1)
		checkRange(t, m, name(i), 0, per-1)
	}
	if !m.subjects[name(0)].isOpen.Load() {
		t.Error("the subject read between every other subject was closed as idle")
	}
	if err := m.Close(); err != nil {
		t.Fatal(err)
	}
	if n := m.openLogs.Load(); n != 0 {
		t.Fatalf("%d logs counted open after Close", n)
	}
	m2 := openTest(t, vfs.Default(), dir, nil)
	defer m2.Close()
	for i := range subjects {
		checkRange(t, m2, name(i), 0, per-1)
	}
}

// Readers and writers of many subjects race the release of idle logs
// (run with -race): nothing is lost and nothing fails.
func TestReleaseRacesReadersAndWriters(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "consumerlog")
	m, err := Open(Config{FS: vfs.Default(), Dir: dir, UnitsPerSegment: testUnits, MaxOpenLogs: 3})
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	const writers, per = 8, 200
	var wg sync.WaitGroup
	for w := range writers {
		wg.Add(2)
		subject := fmt.Sprintf("s%d", w)
		go func() {
			defer wg.Done()
			for seq := int64(0); seq < per; seq++ {
				if err := m.Put(subject, seq, entryFor(subject, seq)); err != nil {
					t.Error(err)
					return
				}
			}
		}()
		go func() {
			defer wg.Done()
			for range per {
				next := m.MaxSequence(subject)
				if next < 0 {
					continue
				}
				if e, found, err := m.Get(subject, next); err != nil || !found || e != entryFor(subject, next) {
					t.Errorf("Get(%s, %d) = %+v, %v, %v", subject, next, e, found, err)
					return
				}
			}
		}()
	}
	wg.Wait()
	for w := range writers {
		checkRange(t, m, fmt.Sprintf("s%d", w), 0, per-1)
	}
}

// EachMaxSequence gives what Subjects and MaxSequence give, for open,
// closed (released) and never-written subjects alike.
func TestEachMaxSequenceMatchesMaxSequence(t *testing.T) {
	m, err := Open(Config{FS: vfs.Default(), Dir: filepath.Join(t.TempDir(), "consumerlog"), UnitsPerSegment: testUnits, MaxOpenLogs: 3})
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	for i := range 10 {
		putRange(t, m, fmt.Sprintf("s%d", i), 0, int64(i))
	}
	m.Changed("never.written") // known to the Manager, no log
	want := map[string]int64{}
	for _, s := range m.Subjects() {
		if seq := m.MaxSequence(s); seq >= 0 {
			want[s] = seq
		}
	}
	got := map[string]int64{}
	m.EachMaxSequence(func(s string, seq int64) { got[s] = seq })
	if fmt.Sprint(got) != fmt.Sprint(want) || len(got) != 10 {
		t.Fatalf("EachMaxSequence %v, Subjects+MaxSequence %v", got, want)
	}
}

// BenchmarkCaptureEnds: what a message checkpoint reads, with 30,000
// subjects — every subject's end.
func BenchmarkCaptureEnds(b *testing.B) {
	m, err := Open(Config{FS: vfs.Default(), Dir: filepath.Join(b.TempDir(), "consumerlog"), UnitsPerSegment: testUnits, MaxOpenLogs: 500})
	if err != nil {
		b.Fatal(err)
	}
	defer m.Close()
	for i := range 30_000 {
		s := fmt.Sprintf("bench.subject.%d", i)
		if err := m.Put(s, 0, entryFor(s, 0)); err != nil {
			b.Fatal(err)
		}
	}
	b.Run("Subjects+MaxSequence", func(b *testing.B) {
		for range b.N {
			ends := map[string]int64{}
			for _, s := range m.Subjects() {
				if seq := m.MaxSequence(s); seq >= 0 {
					ends[s] = seq
				}
			}
		}
	})
	b.Run("EachMaxSequence", func(b *testing.B) {
		for range b.N {
			ends := map[string]int64{}
			m.EachMaxSequence(func(s string, seq int64) { ends[s] = seq })
		}
	})
}

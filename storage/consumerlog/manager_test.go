package consumerlog

import (
	"bytes"
	"fmt"
	"math/rand"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/qmq-go/qmq/storage/vfs"
)

const testUnits = 1000 // units per segment in tests: 22,000-byte segments

// entryFor is the entry the tests put at seq, so readers can check any
// sequence without shared state.
func entryFor(subject string, seq int64) Entry {
	return Entry{
		Timestamp:  1_700_000_000_000 + seq,
		Offset:     seq*1000 + int64(len(subject)),
		Size:       int32(100 + seq%1000),
		HeaderSize: int16(40 + seq%50),
	}
}

func openTest(t testing.TB, fs vfs.FS, dir string, reg prometheus.Registerer) *Manager {
	t.Helper()
	m, err := Open(Config{FS: fs, Dir: dir, UnitsPerSegment: testUnits, Registerer: reg})
	if err != nil {
		t.Fatal(err)
	}
	return m
}

func putRange(t testing.TB, m *Manager, subject string, from, to int64) {
	t.Helper()
	for seq := from; seq <= to; seq++ {
		if err := m.Put(subject, seq, entryFor(subject, seq)); err != nil {
			t.Fatal(err)
		}
	}
}

func checkRange(t testing.TB, m *Manager, subject string, from, to int64) {
	t.Helper()
	for seq := from; seq <= to; seq++ {
		e, found, err := m.Get(subject, seq)
		if err != nil || !found || e != entryFor(subject, seq) {
			t.Fatalf("Get(%q, %d) = %+v, %v, %v; want %+v", subject, seq, e, found, err, entryFor(subject, seq))
		}
	}
}

func checkMissing(t testing.TB, m *Manager, subject string, seqs ...int64) {
	t.Helper()
	for _, seq := range seqs {
		if e, found, err := m.Get(subject, seq); found || err != nil {
			t.Fatalf("Get(%q, %d) = %+v, %v, %v; want not found", subject, seq, e, found, err)
		}
	}
}

func TestPutGet(t *testing.T) {
	m := openTest(t, nil, t.TempDir(), nil)
	defer m.Close()
	const s = "order.created"
	if got := m.MaxSequence(s); got != -1 {
		t.Fatalf("empty MaxSequence = %d", got)
	}
	putRange(t, m, s, 0, 2500) // three segments
	checkRange(t, m, s, 0, 2500)
	checkMissing(t, m, s, -1, 2501, 1<<40)
	if got := m.MaxSequence(s); got != 2500 {
		t.Fatalf("MaxSequence = %d", got)
	}
	if got := m.MinSequence(s); got != 0 {
		t.Fatalf("MinSequence = %d", got)
	}
	if got := m.Subjects(); !slices.Equal(got, []string{s}) {
		t.Fatalf("Subjects = %v", got)
	}
}

func TestPutOverlapIsIgnored(t *testing.T) {
	m := openTest(t, nil, t.TempDir(), nil)
	defer m.Close()
	putRange(t, m, "s", 0, 9)
	other := Entry{Timestamp: 1, Offset: 1, Size: 99, HeaderSize: 9}
	for seq := int64(0); seq <= 9; seq++ {
		if err := m.Put("s", seq, other); err != nil {
			t.Fatal(err)
		}
	}
	checkRange(t, m, "s", 0, 9)
	if got := m.MaxSequence("s"); got != 9 {
		t.Fatalf("MaxSequence = %d", got)
	}
}

func TestPutGapFillsBlanks(t *testing.T) {
	dir := t.TempDir()
	m := openTest(t, nil, dir, nil)
	putRange(t, m, "s", 0, 9)
	putRange(t, m, "s", 15, 15)     // gap inside a segment
	putRange(t, m, "s", 3500, 3500) // gap across segments
	checkRange(t, m, "s", 0, 9)
	checkMissing(t, m, "s", 10, 11, 14, 16, 999, 1000, 2999, 3499)
	checkRange(t, m, "s", 15, 15)
	checkRange(t, m, "s", 3500, 3500)
	if got := m.MaxSequence("s"); got != 3500 {
		t.Fatalf("MaxSequence = %d", got)
	}
	if err := m.Close(); err != nil {
		t.Fatal(err)
	}
	// Blanks are 0xFF on disk, which keeps them apart from unwritten zeros.
	raw, err := os.ReadFile(filepath.Join(dir, "s", "00000000000000000000"))
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(raw[10*UnitSize:15*UnitSize], bytes.Repeat([]byte{0xFF}, 5*UnitSize)) {
		t.Fatalf("gap bytes: % x", raw[10*UnitSize:15*UnitSize])
	}
	// And they survive a reopen: the end is after sequence 3500.
	m = openTest(t, nil, dir, nil)
	defer m.Close()
	if got := m.MaxSequence("s"); got != 3500 {
		t.Fatalf("after reopen MaxSequence = %d", got)
	}
	checkMissing(t, m, "s", 10, 3499)
	checkRange(t, m, "s", 3500, 3500)
}

func TestFirstPutAheadStartsAtItsSegment(t *testing.T) {
	dir := t.TempDir()
	m := openTest(t, nil, dir, nil)
	defer m.Close()
	putRange(t, m, "late", 5500, 5510)
	if got := m.MinSequence("late"); got != 5000 {
		t.Fatalf("MinSequence = %d, want 5000 (start of the segment holding 5500)", got)
	}
	checkMissing(t, m, "late", 0, 4999, 5000, 5499)
	checkRange(t, m, "late", 5500, 5510)
	entries, err := os.ReadDir(filepath.Join(dir, "late"))
	if err != nil {
		t.Fatal(err)
	}
	if len(entries) != 1 || entries[0].Name() != fmt.Sprintf("%020d", 5000*UnitSize) {
		t.Fatalf("segment files %v", entries)
	}
}

func TestPutRejectsInvalid(t *testing.T) {
	m := openTest(t, nil, t.TempDir(), nil)
	defer m.Close()
	good := entryFor("s", 0)
	for name, put := range map[string]func() error{
		"negative sequence": func() error { return m.Put("s", -1, good) },
		"zero entry":        func() error { return m.Put("s", 0, Entry{}) },
		"blank entry":       func() error { return m.Put("s", 0, Entry{-1, -1, -1, -1}) },
		"empty subject":     func() error { return m.Put("", 0, good) },
		"long subject":      func() error { return m.Put(string(bytes.Repeat([]byte{'/'}, 200)), 0, good) },
	} {
		if err := put(); err == nil {
			t.Errorf("%s accepted", name)
		}
	}
	if got := m.Subjects(); len(got) != 0 {
		t.Fatalf("Subjects = %v", got)
	}
}

func TestUnknownSubjectCreatesNothing(t *testing.T) {
	dir := t.TempDir()
	m := openTest(t, nil, dir, nil)
	defer m.Close()
	checkMissing(t, m, "nobody", 0)
	_ = m.Changed("nobody")
	if m.MaxSequence("nobody") != -1 || m.MinSequence("nobody") != 0 {
		t.Fatal("bounds of an unknown subject")
	}
	if err := m.TruncateAfter("nobody", 3); err != nil {
		t.Fatal(err)
	}
	if n, err := m.DeleteBefore(time.Now().Add(time.Hour)); n != 0 || err != nil {
		t.Fatal(n, err)
	}
	if got := m.Subjects(); len(got) != 0 {
		t.Fatalf("Subjects = %v", got)
	}
	if entries, _ := os.ReadDir(dir); len(entries) != 0 {
		t.Fatalf("created %v", entries)
	}
}

func TestReopenKeepsData(t *testing.T) {
	dir := t.TempDir()
	subjects := []string{"plain", "%RETRY%order.created%group1", "a/b", "订单", ".hidden", "~tilde"}
	m := openTest(t, nil, dir, nil)
	for i, s := range subjects {
		putRange(t, m, s, 0, int64(100*i+1))
	}
	if err := m.Close(); err != nil {
		t.Fatal(err)
	}
	// A directory that is not an escaped subject is ignored.
	if err := os.Mkdir(filepath.Join(dir, "not~canonical"), 0o755); err != nil {
		t.Fatal(err)
	}
	m = openTest(t, nil, dir, nil)
	defer m.Close()
	want := slices.Clone(subjects)
	slices.Sort(want)
	if got := m.Subjects(); !slices.Equal(got, want) {
		t.Fatalf("Subjects = %q, want %q", got, want)
	}
	for i, s := range subjects {
		if got := m.MaxSequence(s); got != int64(100*i+1) {
			t.Fatalf("%s: MaxSequence = %d", s, got)
		}
		checkRange(t, m, s, 0, int64(100*i+1))
		putRange(t, m, s, int64(100*i+2), int64(100*i+2)) // appends continue
	}
}

// TestReopenAfterKill reopens the directory while the first manager is still
// "running" and was never flushed: the page cache holds everything.
func TestReopenAfterKill(t *testing.T) {
	dir := t.TempDir()
	m1 := openTest(t, nil, dir, nil)
	putRange(t, m1, "s", 0, 1234)
	putRange(t, m1, "s", 1300, 1300)
	m2 := openTest(t, nil, dir, nil)
	defer m2.Close()
	if got := m2.MaxSequence("s"); got != 1300 {
		t.Fatalf("MaxSequence = %d", got)
	}
	checkRange(t, m2, "s", 0, 1234)
	checkMissing(t, m2, "s", 1235, 1299)
	checkRange(t, m2, "s", 1300, 1300)
}

func TestQMQConsumerLogIsReadable(t *testing.T) {
	dir := t.TempDir()
	// A consumer log as QMQ leaves it: preallocated segment, three units,
	// the middle one QMQ's blank (timestamp, offset 0, MaxInt32 bytes, 0).
	seg := make([]byte, testUnits*UnitSize)
	encodeUnit(seg[0:], entryFor("q", 0))
	encodeUnit(seg[UnitSize:], Entry{Timestamp: 1_700_000_000_000, Offset: 0, Size: 1<<31 - 1, HeaderSize: 0})
	encodeUnit(seg[2*UnitSize:], entryFor("q", 2))
	if err := os.MkdirAll(filepath.Join(dir, "q"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "q", "00000000000000000000"), seg, 0o644); err != nil {
		t.Fatal(err)
	}
	m := openTest(t, nil, dir, nil)
	defer m.Close()
	if got := m.MaxSequence("q"); got != 2 {
		t.Fatalf("MaxSequence = %d", got)
	}
	checkRange(t, m, "q", 0, 0)
	checkMissing(t, m, "q", 1)
	checkRange(t, m, "q", 2, 2)
}

func TestTruncateAfter(t *testing.T) {
	dir := t.TempDir()
	m := openTest(t, nil, dir, nil)
	putRange(t, m, "s", 0, 2499)
	if err := m.TruncateAfter("s", 5000); err != nil { // beyond the end: no-op
		t.Fatal(err)
	}
	if err := m.TruncateAfter("s", 1499); err != nil {
		t.Fatal(err)
	}
	if got := m.MaxSequence("s"); got != 1499 {
		t.Fatalf("MaxSequence = %d", got)
	}
	checkMissing(t, m, "s", 1500, 2499)
	// Replay re-puts what was cut.
	putRange(t, m, "s", 1500, 1600)
	checkRange(t, m, "s", 0, 1600)
	if err := m.Close(); err != nil {
		t.Fatal(err)
	}

	// On a subject not opened yet the truncation is applied when it opens.
	m = openTest(t, nil, dir, nil)
	defer m.Close()
	if err := m.TruncateAfter("s", 700); err != nil {
		t.Fatal(err)
	}
	if err := m.TruncateAfter("s", 800); err != nil { // the lower one wins
		t.Fatal(err)
	}
	if got := m.MaxSequence("s"); got != 700 {
		t.Fatalf("MaxSequence = %d", got)
	}
	checkRange(t, m, "s", 0, 700)
	checkMissing(t, m, "s", 701)
	if err := m.TruncateAfter("s", -1); err != nil {
		t.Fatal(err)
	}
	if got := m.MaxSequence("s"); got != -1 {
		t.Fatalf("MaxSequence = %d", got)
	}
	putRange(t, m, "s", 0, 3)
	checkRange(t, m, "s", 0, 3)
}

func TestChangedWakesWaiters(t *testing.T) {
	m := openTest(t, nil, t.TempDir(), nil)
	const waiters = 50
	var (
		wg    sync.WaitGroup
		woken atomic.Int32
	)
	ready := make(chan struct{}, waiters)
	for range waiters {
		wg.Add(1)
		go func() {
			defer wg.Done()
			// The documented protocol: channel first, then the check.
			ch := m.Changed("s")
			ready <- struct{}{}
			if m.MaxSequence("s") >= 0 {
				woken.Add(1)
				return
			}
			<-ch
			if m.MaxSequence("s") < 0 {
				t.Error("woken before the sequence advanced")
			}
			woken.Add(1)
		}()
	}
	for range waiters {
		<-ready
	}
	ch := m.Changed("s")
	select {
	case <-ch:
		t.Fatal("closed before any Put")
	default:
	}
	putRange(t, m, "s", 0, 0)
	wg.Wait()
	if woken.Load() != waiters {
		t.Fatalf("%d woken", woken.Load())
	}
	<-ch

	// An ignored (overlapping) Put does not wake anyone.
	ch = m.Changed("s")
	putRange(t, m, "s", 0, 0)
	select {
	case <-ch:
		t.Fatal("woken by an ignored Put")
	default:
	}
	// Close wakes the rest, and later waits return at once.
	if err := m.Close(); err != nil {
		t.Fatal(err)
	}
	<-ch
	<-m.Changed("s")
	<-m.Changed("other")
}

// TestLongPollNeverMissesAnAdvance races a writer against waiters that use
// the documented protocol; a missed wake-up would hang the test.
func TestLongPollNeverMissesAnAdvance(t *testing.T) {
	m := openTest(t, nil, t.TempDir(), nil)
	defer m.Close()
	const last = 3000
	var wg sync.WaitGroup
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for seen := int64(-1); seen < last; {
				ch := m.Changed("s")
				if max := m.MaxSequence("s"); max > seen {
					seen = max
					continue
				}
				select {
				case <-ch:
				case <-time.After(10 * time.Second):
					t.Errorf("missed wake-up after %d", seen)
					return
				}
			}
		}()
	}
	putRange(t, m, "s", 0, last)
	wg.Wait()
}

func TestConcurrentGetWhilePut(t *testing.T) {
	m := openTest(t, nil, t.TempDir(), nil)
	defer m.Close()
	const last = 5000
	subjects := []string{"a", "b"}
	done := make(chan struct{})
	var wg sync.WaitGroup
	for r := range 6 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			rng := rand.New(rand.NewSource(int64(r)))
			for {
				select {
				case <-done:
					return
				default:
				}
				s := subjects[rng.Intn(len(subjects))]
				max := m.MaxSequence(s)
				if max < 0 {
					continue
				}
				seq := rng.Int63n(max + 1)
				e, found, err := m.Get(s, seq)
				if err != nil || !found || e != entryFor(s, seq) {
					t.Errorf("Get(%s, %d) under concurrent Put: %+v %v %v", s, seq, e, found, err)
					return
				}
			}
		}()
	}
	var writers sync.WaitGroup
	for _, s := range subjects {
		writers.Add(1)
		go func() {
			defer writers.Done()
			putRange(t, m, s, 0, last)
		}()
	}
	// Flush concurrently with the writers, as the owner's flusher does.
	stopFlush := make(chan struct{})
	flushed := make(chan struct{})
	go func() {
		defer close(flushed)
		for {
			select {
			case <-stopFlush:
				return
			case <-time.After(time.Millisecond):
				if err := m.Flush(); err != nil {
					t.Error(err)
					return
				}
			}
		}
	}()
	writers.Wait()
	close(stopFlush)
	<-flushed
	close(done)
	wg.Wait()
	for _, s := range subjects {
		checkRange(t, m, s, 0, last)
	}
}

func TestManySubjects(t *testing.T) {
	dir := t.TempDir()
	m := openTest(t, nil, dir, nil)
	const n = 1000
	subject := func(i int) string { return fmt.Sprintf("subject.%04d", i) }
	for i := range n {
		putRange(t, m, subject(i), 0, int64(i%7))
	}
	for i := range n {
		checkRange(t, m, subject(i), 0, int64(i%7))
	}
	if err := m.Close(); err != nil {
		t.Fatal(err)
	}
	m = openTest(t, nil, dir, nil)
	defer m.Close()
	if got := len(m.Subjects()); got != n {
		t.Fatalf("%d subjects after reopen", got)
	}
	if open, _, _ := m.usage(); open != 0 {
		t.Fatalf("%d logs opened eagerly", open)
	}
	for i := range n {
		if got := m.MaxSequence(subject(i)); got != int64(i%7) {
			t.Fatalf("%s: MaxSequence %d", subject(i), got)
		}
		checkRange(t, m, subject(i), 0, int64(i%7))
	}
}

func TestDeleteBefore(t *testing.T) {
	dir := t.TempDir()
	m := openTest(t, nil, dir, nil)
	putRange(t, m, "s", 0, 3499) // segments at 0, 1000, 2000, 3000
	putRange(t, m, "young", 0, 2500)
	old := time.Now().Add(-100 * time.Hour)
	for _, base := range []int64{0, 1000} {
		if err := os.Chtimes(filepath.Join(dir, "s", fmt.Sprintf("%020d", base*UnitSize)), old, old); err != nil {
			t.Fatal(err)
		}
	}
	n, err := m.DeleteBefore(time.Now().Add(-time.Hour))
	if err != nil || n != 2 {
		t.Fatalf("deleted %d, %v; want 2", n, err)
	}
	if got := m.MinSequence("s"); got != 2000 {
		t.Fatalf("MinSequence = %d", got)
	}
	checkMissing(t, m, "s", 0, 1999)
	checkRange(t, m, "s", 2000, 3499)
	checkRange(t, m, "young", 0, 2500)

	// The newest segment is never deleted, even when everything is old;
	// subjects not opened yet are handled too.
	if err := m.Close(); err != nil {
		t.Fatal(err)
	}
	m = openTest(t, nil, dir, nil)
	defer m.Close()
	n, err = m.DeleteBefore(time.Now().Add(time.Hour))
	if err != nil || n != 1+2 {
		t.Fatalf("deleted %d, %v; want 3", n, err)
	}
	if m.MinSequence("s") != 3000 || m.MaxSequence("s") != 3499 || m.MinSequence("young") != 2000 {
		t.Fatalf("bounds s [%d, %d] young %d", m.MinSequence("s"), m.MaxSequence("s"), m.MinSequence("young"))
	}
	checkRange(t, m, "s", 3000, 3499)
	// A truncation below the new start stops at the start.
	if err := m.TruncateAfter("s", 10); err != nil {
		t.Fatal(err)
	}
	if m.MinSequence("s") != 3000 || m.MaxSequence("s") != 2999 {
		t.Fatalf("after truncation below start: [%d, %d]", m.MinSequence("s"), m.MaxSequence("s"))
	}
	putRange(t, m, "s", 3000, 3001)
	checkRange(t, m, "s", 3000, 3001)
}

func TestMetrics(t *testing.T) {
	dir := t.TempDir()
	reg := prometheus.NewRegistry()
	m := openTest(t, nil, dir, reg)
	putRange(t, m, "a", 0, 1500) // 2 segments
	putRange(t, m, "b", 0, 0)
	putRange(t, m, "b", 10, 10) // 9 blanks
	want := map[string]float64{
		"qmq_consumerlog_subjects":          2,
		"qmq_consumerlog_open_subjects":     2,
		"qmq_consumerlog_segments":          3,
		"qmq_consumerlog_bytes":             3 * testUnits * UnitSize,
		"qmq_consumerlog_blank_units_total": 9,
	}
	checkMetrics(t, reg, want)
	if err := m.Close(); err != nil {
		t.Fatal(err)
	}
	// Close unregistered everything, so a reopen can register again; logs
	// not opened yet are counted from the directory listing.
	m = openTest(t, nil, dir, reg)
	defer m.Close()
	want["qmq_consumerlog_open_subjects"] = 0
	want["qmq_consumerlog_blank_units_total"] = 0
	checkMetrics(t, reg, want)
	if _, err := Open(Config{Dir: dir, UnitsPerSegment: testUnits, Registerer: reg}); err == nil {
		t.Fatal("a second manager on the same registry must fail to register")
	}
}

func checkMetrics(t *testing.T, reg *prometheus.Registry, want map[string]float64) {
	t.Helper()
	families, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]float64{}
	for _, f := range families {
		for _, metric := range f.GetMetric() {
			got[f.GetName()] = value(metric)
		}
	}
	for name, w := range want {
		if got[name] != w {
			t.Errorf("%s = %v, want %v", name, got[name], w)
		}
	}
}

func value(m *dto.Metric) float64 {
	if m.GetGauge() != nil {
		return m.GetGauge().GetValue()
	}
	return m.GetCounter().GetValue()
}

func TestClosed(t *testing.T) {
	m := openTest(t, nil, t.TempDir(), nil)
	putRange(t, m, "s", 0, 0)
	if err := m.Close(); err != nil {
		t.Fatal(err)
	}
	if err := m.Close(); err != nil {
		t.Fatal("second Close:", err)
	}
	if err := m.Put("s", 1, entryFor("s", 1)); err == nil {
		t.Fatal("Put after Close")
	}
	if _, _, err := m.Get("s", 0); err == nil {
		t.Fatal("Get after Close")
	}
}

func TestGetDoesNotAllocate(t *testing.T) {
	m := openTest(t, nil, t.TempDir(), nil)
	defer m.Close()
	putRange(t, m, "order.created", 0, 2999)
	var seq int64
	allocs := testing.AllocsPerRun(10_000, func() {
		e, found, err := m.Get("order.created", seq%3000)
		if !found || err != nil || e.Size == 0 {
			t.Fatal("not found")
		}
		seq += 7
	})
	if allocs != 0 {
		t.Fatalf("Get allocates %.1f times per call", allocs)
	}
}

func TestUnmapIdle(t *testing.T) {
	m := openTest(t, nil, t.TempDir(), nil)
	defer m.Close()
	putRange(t, m, "s", 0, 2500) // three segments, two sealed
	if err := m.Flush(); err != nil {
		t.Fatal(err)
	}
	// A segment read since the previous call is kept for one more round.
	if n := m.UnmapIdle() + m.UnmapIdle(); n != 2 {
		t.Fatalf("unmapped %d segments, want the 2 sealed ones", n)
	}
	checkRange(t, m, "s", 0, 2500) // mapped again on demand
	if n := m.UnmapIdle(); n != 0 {
		t.Fatalf("unmapped %d segments read since the previous call", n)
	}
}

func TestErrorsAreReturnedAndRecoverable(t *testing.T) {
	var fail atomic.Value // op name to fail, "" for none
	fail.Store("")
	efs := vfs.NewErrorFS(vfs.Default(), func(op, path string) error {
		if op == fail.Load().(string) {
			return fmt.Errorf("injected %s failure", op)
		}
		return nil
	})
	m := openTest(t, efs, t.TempDir(), nil)
	defer m.Close()

	fail.Store(vfs.OpOpen) // the first segment cannot be created
	if err := m.Put("s", 0, entryFor("s", 0)); err == nil {
		t.Fatal("Put succeeded without its segment")
	}
	fail.Store("")
	putRange(t, m, "s", 0, 1200)

	fail.Store(vfs.OpSync)
	if err := m.Flush(); err == nil {
		t.Fatal("Flush hid a sync failure")
	}
	fail.Store("")
	if err := m.Flush(); err != nil {
		t.Fatal(err)
	}
	checkRange(t, m, "s", 0, 1200)
}

func TestPutBytesDoesNotAllocate(t *testing.T) {
	m, err := Open(Config{Dir: t.TempDir(), UnitsPerSegment: 100_000})
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	subject := []byte("order.created")
	e := Entry{Timestamp: 1, Offset: 0, Size: 100, HeaderSize: 40}
	if err := m.PutBytes(subject, 0, e); err != nil { // creates the subject's log
		t.Fatal(err)
	}
	seq := int64(1)
	allocs := testing.AllocsPerRun(1000, func() {
		if err := m.PutBytes(subject, seq, e); err != nil {
			t.Fatal(err)
		}
		seq++
	})
	if allocs != 0 {
		t.Fatalf("PutBytes allocates %.1f times per call", allocs)
	}
	if got, ok, _ := m.Get("order.created", seq-1); !ok || got != e {
		t.Fatalf("last entry: %+v %v", got, ok)
	}
}

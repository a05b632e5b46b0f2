package actionlog

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	mrand "math/rand"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/qmq-go/qmq/storage/vfs"
)

const testSegSize = 4096

func openTest(t testing.TB, fs vfs.FS, dir string) *Log {
	t.Helper()
	l, err := Open(Config{FS: fs, Dir: dir, SegmentSize: testSegSize, FlushInterval: -1})
	if err != nil {
		t.Fatal(err)
	}
	return l
}

type entry struct {
	a    Action
	next int64
}

func readAll(t testing.TB, l *Log, from int64) []entry {
	t.Helper()
	it := l.Iterate(from)
	var out []entry
	for {
		a, next, ok := it.Next()
		if !ok {
			break
		}
		out = append(out, entry{a, next})
	}
	if err := it.Err(); err != nil {
		t.Fatalf("iterate from %d: %v", from, err)
	}
	return out
}

func actionsOf(es []entry) []Action {
	out := make([]Action, len(es))
	for i, e := range es {
		out[i] = e.a
	}
	return out
}

func randomBatch(r *rand.Rand) []Action {
	b := make([]Action, 1+r.IntN(5))
	for i := range b {
		b[i] = randomAction(r)
	}
	return b
}

// TestAppendIterate: batches across many segment rolls read back in order,
// and iteration resumes from every offset Next returned.
func TestAppendIterate(t *testing.T) {
	dir := t.TempDir()
	l := openTest(t, vfs.Default(), dir)
	defer l.Close()
	r := rand.New(rand.NewPCG(3, 4))
	var want []Action
	for range 300 {
		b := randomBatch(r)
		end, err := l.Append(b)
		if err != nil {
			t.Fatal(err)
		}
		if end != l.WrotePosition() {
			t.Fatalf("Append returned %d, WrotePosition %d", end, l.WrotePosition())
		}
		want = append(want, b...)
	}
	if n := len(l.Segments()); n < 10 {
		t.Fatalf("only %d segments: the test should roll often", n)
	}
	got := readAll(t, l, 0)
	if !slices.Equal(actionsOf(got), want) {
		t.Fatalf("read %d actions, want %d (or contents differ)", len(got), len(want))
	}
	for i := 0; i < len(got); i += 37 {
		rest := readAll(t, l, got[i].next)
		if !slices.Equal(actionsOf(rest), want[i+1:]) {
			t.Fatalf("resuming after action %d (offset %d) differs", i, got[i].next)
		}
	}
	if last := got[len(got)-1].next; last != l.WrotePosition() {
		t.Fatalf("last next offset %d, WrotePosition %d", last, l.WrotePosition())
	}
}

// TestIteratorFollowsAppends: Next at the end reports !ok without error and
// continues after a later append; Appended wakes the waiter.
func TestIteratorFollowsAppends(t *testing.T) {
	l := openTest(t, vfs.Default(), t.TempDir())
	defer l.Close()
	it := l.Iterate(0)
	if _, _, ok := it.Next(); ok || it.Err() != nil {
		t.Fatalf("empty log: ok=%v err=%v", ok, it.Err())
	}
	r := rand.New(rand.NewPCG(5, 6))
	var want []Action
	got := make(chan Action, 1000)
	go func() {
		defer close(got)
		for {
			wake := l.Appended()
			for {
				a, _, ok := it.Next()
				if !ok {
					break
				}
				got <- a
			}
			if it.Err() != nil {
				return
			}
			select {
			case <-wake:
			case <-time.After(5 * time.Second):
				return
			}
			if l.isClosed() {
				return
			}
		}
	}()
	for range 200 {
		b := randomBatch(r)
		if _, err := l.Append(b); err != nil {
			t.Fatal(err)
		}
		want = append(want, b...)
	}
	for i, w := range want {
		select {
		case a, ok := <-got:
			if !ok || a != w {
				t.Fatalf("action %d: %+v, %v", i, a, ok)
			}
		case <-time.After(5 * time.Second):
			t.Fatalf("reader stuck after %d actions", i)
		}
	}
}

func (l *Log) isClosed() bool {
	l.notifyMu.Lock()
	defer l.notifyMu.Unlock()
	return l.closed
}

func TestReopen(t *testing.T) {
	dir := t.TempDir()
	l := openTest(t, vfs.Default(), dir)
	r := rand.New(rand.NewPCG(7, 8))
	var want []Action
	for range 100 {
		b := randomBatch(r)
		l.Append(b)
		want = append(want, b...)
	}
	end := l.WrotePosition()
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	l = openTest(t, vfs.Default(), dir)
	defer l.Close()
	if l.WrotePosition() != end {
		t.Fatalf("reopened at %d, closed at %d", l.WrotePosition(), end)
	}
	if got := actionsOf(readAll(t, l, 0)); !slices.Equal(got, want) {
		t.Fatal("content changed across reopen")
	}
	more := randomBatch(r)
	if _, err := l.Append(more); err != nil {
		t.Fatal(err)
	}
	if got := actionsOf(readAll(t, l, 0)); !slices.Equal(got, append(want, more...)) {
		t.Fatal("append after reopen")
	}
}

// TestCrashRecovery simulates power loss through vfs.CrashFS at random points,
// with torn, reordered and zeroed unsynced tails and lost directory entries:
// every action appended before the last Flush survives, what is read back is
// always a prefix of what was appended (no torn or invented record), and the
// recovered log takes appends again.
func TestCrashRecovery(t *testing.T) {
	iterations := 80
	if testing.Short() {
		iterations = 15
	}
	var rounds, lossy, truncated int
	for iter := range iterations {
		dir := t.TempDir()
		cfs := vfs.NewCrashFS(vfs.Default())
		crng := mrand.New(mrand.NewSource(int64(iter)))
		r := rand.New(rand.NewPCG(uint64(iter), 99))
		l := openTest(t, cfs, dir)
		var appended []Action
		durable := 0
		// Some runs flush often, others rarely: several segments behind.
		flushOneIn := []int{5, 10, 300}[iter%3]
		for round := range 4 {
			for range r.IntN(240) {
				b := randomBatch(r)
				if _, err := l.Append(b); err != nil {
					t.Fatalf("iter %d round %d: %v", iter, round, err)
				}
				appended = append(appended, b...)
				if r.IntN(flushOneIn) == 0 {
					if err := l.Flush(); err != nil {
						t.Fatal(err)
					}
					durable = len(appended)
				}
			}
			opts := vfs.CrashOptions{TornTail: r.IntN(2) == 0, ReorderedTail: r.IntN(4) == 0,
				ZeroedTail: r.IntN(2) == 0, UnsyncedDirOps: r.IntN(2) == 0}
			if err := cfs.Crash(crng, opts); err != nil {
				t.Fatal(err)
			}
			l.Close() // the crashed process's handles: errors expected, no effect on disk
			l = openTest(t, cfs, dir)
			got := actionsOf(readAll(t, l, 0))
			if len(got) < durable {
				t.Fatalf("iter %d round %d (%+v): %d actions after recovery, %d were flushed", iter, round, opts, len(got), durable)
			}
			if !slices.Equal(got, appended[:len(got)]) {
				t.Fatalf("iter %d round %d: recovered actions are not a prefix of the appended ones", iter, round)
			}
			rounds++
			if len(got) < len(appended) {
				lossy++
			}
			if l.recoveredTorn {
				truncated++
			}
			appended = appended[:len(got)]
			durable = len(got) // a crash leaves everything on disk durable
		}
		l.Close()
	}
	// The simulation must bite: unflushed actions lost and torn tails cut.
	t.Logf("%d crashes, %d lost unflushed actions, %d cut a torn tail", rounds, lossy, truncated)
	if lossy == 0 || truncated == 0 {
		t.Fatal("the crash simulation never lost data or never left a torn tail")
	}
}

// TestRecoveryTruncatesGarbage: bytes that are not a valid record after the
// last one (a torn header, a bad CRC) are cut, and appends continue there.
func TestRecoveryTruncatesGarbage(t *testing.T) {
	for name, damage := range map[string]func(b []byte){
		"torn header": func(b []byte) { copy(b, []byte{0xC3, 0xB2, 0xA1}) },
		"bad crc": func(b []byte) {
			rec, _ := AppendEncoded(nil, samplePull())
			rec[len(rec)-1] ^= 1
			copy(b, rec)
		},
		"huge size": func(b []byte) { copy(b, []byte{0xC3, 0xB2, 0xA1, 0x00, 0, 0, 0x7F, 0, 0, 0}) },
	} {
		t.Run(name, func(t *testing.T) {
			dir := t.TempDir()
			l := openTest(t, vfs.Default(), dir)
			r := rand.New(rand.NewPCG(1, 1))
			var want []Action
			for range 20 {
				b := randomBatch(r)
				l.Append(b)
				want = append(want, b...)
			}
			end := l.WrotePosition()
			l.Close()
			segs, _ := os.ReadDir(dir)
			last := segs[len(segs)-1].Name()
			var base int64
			fmt.Sscanf(last, "%d", &base)
			f, err := os.OpenFile(filepath.Join(dir, last), os.O_RDWR, 0)
			if err != nil {
				t.Fatal(err)
			}
			junk := make([]byte, 64)
			damage(junk)
			f.WriteAt(junk, end-base)
			f.Close()

			l = openTest(t, vfs.Default(), dir)
			defer l.Close()
			if l.WrotePosition() != end {
				t.Fatalf("recovered to %d, want %d", l.WrotePosition(), end)
			}
			more := randomBatch(r)
			l.Append(more)
			if got := actionsOf(readAll(t, l, 0)); !slices.Equal(got, append(want, more...)) {
				t.Fatal("content after recovery and append")
			}
		})
	}
}

// TestBlankAndShortTail: a QMQ blank record is skipped, and so is a segment
// tail shorter than the EOF record.
func TestBlankAndShortTail(t *testing.T) {
	dir := t.TempDir()
	a := samplePull()
	rec, _ := AppendEncoded(nil, a)
	// Segment: blank of 20 bytes, then records until fewer than 5 bytes are left.
	segSize := int64(9 + 20 + 3*len(rec) + 3)
	seg := make([]byte, segSize)
	binary.BigEndian.PutUint32(seg, Magic)
	seg[4] = byte(RecordBlank)
	binary.BigEndian.PutUint32(seg[5:], 20)
	for i := range 3 {
		copy(seg[29+i*len(rec):], rec)
	}
	if err := os.WriteFile(filepath.Join(dir, fmt.Sprintf("%020d", 0)), seg, 0o644); err != nil {
		t.Fatal(err)
	}
	l, err := Open(Config{Dir: dir, SegmentSize: segSize, FlushInterval: -1})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	if l.WrotePosition() != segSize {
		t.Fatalf("recovered to %d, want the segment end %d", l.WrotePosition(), segSize)
	}
	if _, err := l.Append([]Action{a}); err != nil {
		t.Fatal(err)
	}
	got := readAll(t, l, 0)
	if len(got) != 4 || got[3].next != segSize+int64(len(rec)) {
		t.Fatalf("read %d actions", len(got))
	}
	for _, e := range got {
		if e.a != a {
			t.Fatalf("action %+v", e.a)
		}
	}
}

func TestAppendValidation(t *testing.T) {
	l := openTest(t, vfs.Default(), t.TempDir())
	defer l.Close()
	big := samplePull()
	big.Subject = strings.Repeat("s", 3000)
	big.Group = strings.Repeat("g", 3000) // > testSegSize together
	if _, err := l.Append([]Action{samplePull(), big}); !errors.Is(err, ErrInvalidAction) {
		t.Fatalf("oversized record: %v", err)
	}
	if l.WrotePosition() != 0 {
		t.Fatal("a rejected batch wrote something")
	}
	if end, err := l.Append(nil); err != nil || end != 0 {
		t.Fatalf("empty batch: %d, %v", end, err)
	}
	// A batch larger than a segment is split.
	var batch []Action
	for range 200 {
		batch = append(batch, samplePull())
	}
	if _, err := l.Append(batch); err != nil {
		t.Fatal(err)
	}
	if got := readAll(t, l, 0); len(got) != 200 {
		t.Fatalf("read %d", len(got))
	}
}

func TestDeleteSegmentsBefore(t *testing.T) {
	l := openTest(t, vfs.Default(), t.TempDir())
	defer l.Close()
	r := rand.New(rand.NewPCG(9, 9))
	for range 100 {
		l.Append(randomBatch(r))
	}
	all := readAll(t, l, 0)
	cut := all[len(all)/2].next
	n, err := l.DeleteSegmentsBefore(cut)
	if err != nil || n == 0 {
		t.Fatalf("deleted %d, %v", n, err)
	}
	min := l.MinOffset()
	if min > cut {
		t.Fatalf("MinOffset %d beyond %d", min, cut)
	}
	it := l.Iterate(0)
	if _, _, ok := it.Next(); ok || it.Err() == nil {
		t.Fatal("iterating deleted offsets did not fail")
	}
	rest := readAll(t, l, min)
	if len(rest) == 0 || rest[len(rest)-1] != all[len(all)-1] {
		t.Fatal("reading from MinOffset")
	}
}

func TestCloseAndFlusher(t *testing.T) {
	reg := prometheus.NewRegistry()
	dir := t.TempDir()
	l, err := Open(Config{Dir: dir, SegmentSize: testSegSize, FlushInterval: 5 * time.Millisecond, Registerer: reg})
	if err != nil {
		t.Fatal(err)
	}
	l.Append([]Action{samplePull(), {Type: RangeAck, Subject: "s", Group: "g", ConsumerID: "c"}})
	deadline := time.Now().Add(5 * time.Second)
	for l.FlushedPosition() != l.WrotePosition() {
		if time.Now().After(deadline) {
			t.Fatal("the flusher did not flush")
		}
		time.Sleep(5 * time.Millisecond)
	}
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	found := false
	for _, mf := range mfs {
		if mf.GetName() != "qmq_actionlog_actions_total" {
			continue
		}
		for _, m := range mf.GetMetric() {
			if m.GetLabel()[0].GetValue() == "PULL" && m.GetCounter().GetValue() == 1 {
				found = true
			}
		}
	}
	if !found {
		t.Fatal("qmq_actionlog_actions_total{type=PULL} is not 1")
	}
	wake := l.Appended()
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	select {
	case <-wake:
	default:
		t.Fatal("Close did not wake Appended waiters")
	}
	if _, err := l.Append([]Action{samplePull()}); !errors.Is(err, ErrClosed) {
		t.Fatalf("append after close: %v", err)
	}
	if err := l.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	// Metrics were unregistered: the same registry takes a reopened log.
	l, err = Open(Config{Dir: dir, SegmentSize: testSegSize, Registerer: reg})
	if err != nil {
		t.Fatal(err)
	}
	l.Close()
}

// TestConcurrentAppendAndRead (for -race): appenders and readers at once.
func TestConcurrentAppendAndRead(t *testing.T) {
	l := openTest(t, vfs.Default(), t.TempDir())
	defer l.Close()
	var wg sync.WaitGroup
	for w := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r := rand.New(rand.NewPCG(uint64(w), 0))
			for range 100 {
				if _, err := l.Append(randomBatch(r)); err != nil {
					t.Error(err)
					return
				}
			}
		}()
	}
	stop := make(chan struct{})
	var rd sync.WaitGroup
	rd.Add(1)
	go func() {
		defer rd.Done()
		it := l.Iterate(0)
		for {
			for {
				if _, _, ok := it.Next(); !ok {
					break
				}
			}
			if it.Err() != nil {
				t.Error(it.Err())
				return
			}
			select {
			case <-stop:
				return
			default:
			}
		}
	}()
	wg.Wait()
	close(stop)
	rd.Wait()
	if n := len(readAll(t, l, 0)); n == 0 {
		t.Fatal("nothing appended")
	}
}

// FuzzRecover opens a log whose segment files hold arbitrary bytes: Open
// never panics, Iterate serves only records that decode (CRC checked) and
// ends without error at the recovered end, and the log takes appends.
func FuzzRecover(f *testing.F) {
	const segSize = 256
	addFuzzSeeds(f)
	// One directory per fuzz worker, emptied before each input: t.TempDir
	// per input costs more than the test itself.
	dir := fuzzDir(f, "actionlog-fuzz-")
	f.Fuzz(func(t *testing.T, data []byte) {
		if len(data) > 4*segSize {
			return
		}
		entries, _ := os.ReadDir(dir)
		for _, e := range entries {
			if err := os.Remove(filepath.Join(dir, e.Name())); err != nil {
				t.Fatal(err)
			}
		}
		for base := 0; base < len(data); base += segSize {
			seg := data[base:min(len(data), base+segSize)]
			if err := os.WriteFile(filepath.Join(dir, fmt.Sprintf("%020d", base)), seg, 0o644); err != nil {
				t.Fatal(err)
			}
		}
		l, err := Open(Config{Dir: dir, SegmentSize: segSize, FlushInterval: -1})
		if err != nil {
			t.Fatal(err)
		}
		defer l.Close()
		// Only the last two segment files are validated by recovery; iterate
		// from there (older ones are trusted, as in QMQ).
		files := (len(data) + segSize - 1) / segSize
		from := int64(max(0, files-2) * segSize)
		it := l.Iterate(from)
		n := 0
		for {
			if _, _, ok := it.Next(); !ok {
				break
			}
			n++
		}
		if it.Err() != nil {
			t.Fatalf("iterating recovered log: %v", it.Err())
		}
		if it.Offset() != l.WrotePosition() {
			t.Fatalf("iteration ended at %d, log at %d", it.Offset(), l.WrotePosition())
		}
		a := samplePull()
		if _, err := l.Append([]Action{a}); err != nil {
			t.Fatal(err)
		}
		last, _, ok := it.Next()
		if !ok || last != a {
			t.Fatalf("appended action not read back: %v %v", ok, it.Err())
		}
	})
}

// addFuzzSeeds adds the fuzz targets' seeds: six records, a torn seventh,
// and a lone record header.
func addFuzzSeeds(f *testing.F) {
	var seed []byte
	for range 6 {
		seed, _ = AppendEncoded(seed, Action{Type: RangeAck, Subject: "s", Group: "g", ConsumerID: "c", FirstPullSeq: 1, LastPullSeq: 2})
	}
	f.Add(seed)
	f.Add(append(bytes.Clone(seed[:200]), 0xC3, 0xB2, 0xA1, 0x00, 1))
	f.Add([]byte{0xC3, 0xB2, 0xA1, 0x00, 2, 0, 0, 0, 4, 0, 0, 0, 0})
}

// fuzzDir is a directory for a fuzz target's inputs, on tmpfs when there is
// one: the inputs are tiny, the fsyncs are what cost.
func fuzzDir(f *testing.F, prefix string) string {
	tmp := ""
	if fi, err := os.Stat("/dev/shm"); err == nil && fi.IsDir() {
		tmp = "/dev/shm"
	}
	dir, err := os.MkdirTemp(tmp, prefix)
	if err != nil {
		f.Fatal(err)
	}
	f.Cleanup(func() { os.RemoveAll(dir) })
	return dir
}

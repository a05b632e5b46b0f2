package messagelog

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"hash/crc32"
	"math/rand"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/qmq-go/qmq/storage/vfs"
)

const testSegSize = 64 << 10

func openTest(t testing.TB, cfg Config, start Start) *Log {
	t.Helper()
	if cfg.SegmentSize == 0 {
		cfg.SegmentSize = testSegSize
	}
	l, err := Open(cfg, start)
	if err != nil {
		t.Fatal(err)
	}
	return l
}

// payloadFor returns a deterministic payload for (subject, seq).
func payloadFor(subject string, seq int64, n int) []byte {
	p := make([]byte, n)
	x := uint32(seq)*2654435761 + crc32.ChecksumIEEE([]byte(subject))
	for i := range p {
		x = x*1664525 + 1013904223
		p[i] = byte(x >> 24)
	}
	return p
}

type written struct {
	Appended
	subject string
	crc     uint32
}

func appendRandom(t testing.TB, l *Log, rng *rand.Rand, subjects []string, batch int) []written {
	t.Helper()
	msgs := make([]Message, batch)
	for i := range msgs {
		s := subjects[rng.Intn(len(subjects))]
		msgs[i] = Message{Subject: s, Payload: payloadFor(s, rng.Int63(), 1+rng.Intn(3000))}
	}
	out, err := l.Append(context.Background(), msgs)
	if err != nil {
		t.Fatal(err)
	}
	ws := make([]written, len(out))
	for i, a := range out {
		ws[i] = written{a, msgs[i].Subject, crc32.ChecksumIEEE(msgs[i].Payload)}
	}
	return ws
}

func checkWritten(t testing.TB, l *Log, w written) {
	t.Helper()
	rec, err := l.Read(w.Offset, w.Size)
	if err != nil {
		t.Fatalf("read %d+%d (%s #%d): %v", w.Offset, w.Size, w.subject, w.Sequence, err)
	}
	defer rec.Release()
	if string(rec.Subject) != w.subject || rec.Sequence != w.Sequence || rec.HeaderSize != w.HeaderSize ||
		rec.Timestamp != w.Timestamp || rec.PayloadCRC != int64(w.crc) || !rec.CheckCRC() || rec.Offset != w.Offset {
		t.Fatalf("record at %d: got %s #%d crc %x, want %s #%d crc %x", w.Offset, rec.Subject, rec.Sequence,
			rec.PayloadCRC, w.subject, w.Sequence, w.crc)
	}
}

// checkLog iterates the whole log: every record valid, per-subject sequences
// contiguous from first[subject] (0 if absent), and NextSequence consistent.
// It returns the records by offset.
func checkLog(t testing.TB, l *Log) map[int64]Record {
	t.Helper()
	it := l.Iterate(0)
	defer it.Close()
	next := map[string]int64{}
	seen := map[int64]Record{}
	for {
		rec, ok := it.Next()
		if !ok {
			break
		}
		if !rec.CheckCRC() {
			t.Fatalf("iteration served a record failing its CRC at %d", rec.Offset)
		}
		s := string(rec.Subject)
		if want := next[s]; rec.Sequence != want {
			t.Fatalf("subject %s: sequence %d at %d, want %d", s, rec.Sequence, rec.Offset, want)
		}
		next[s] = rec.Sequence + 1
		seen[rec.Offset] = Record{Subject: []byte(s), Sequence: rec.Sequence, PayloadCRC: rec.PayloadCRC, Size: rec.Size}
	}
	if err := it.Err(); err != nil {
		t.Fatal(err)
	}
	if it.Offset() != l.WrotePosition() {
		t.Fatalf("iteration stopped at %d, write position %d", it.Offset(), l.WrotePosition())
	}
	for s, n := range next {
		if got := l.NextSequence(s); got != n {
			t.Fatalf("NextSequence(%s) = %d, log has %d", s, got, n)
		}
	}
	return seen
}

var testSubjects = []string{"order.changed", "pay.done", "%RETRY%group%order.changed", "a", strings.Repeat("long.", 40)}

func TestAppendReadIterate(t *testing.T) {
	l := openTest(t, Config{Dir: t.TempDir()}, Start{})
	defer l.Close()
	rng := rand.New(rand.NewSource(1))
	var all []written
	for i := 0; i < 300; i++ {
		all = append(all, appendRandom(t, l, rng, testSubjects, 1+rng.Intn(5))...)
	}
	if len(l.Segments()) < 5 {
		t.Fatalf("only %d segments", len(l.Segments()))
	}
	seqs := map[string]int64{}
	for i, w := range all {
		if w.Sequence != seqs[w.subject] {
			t.Fatalf("%s: sequence %d, want %d", w.subject, w.Sequence, seqs[w.subject])
		}
		seqs[w.subject]++
		if i > 0 && w.Offset <= all[i-1].Offset {
			t.Fatal("offsets not increasing")
		}
		checkWritten(t, l, w)
	}
	seen := checkLog(t, l)
	if len(seen) != len(all) {
		t.Fatalf("iterated %d records, wrote %d", len(seen), len(all))
	}
	// Iterating from an offset in the middle.
	it := l.Iterate(all[100].Offset)
	rec, ok := it.Next()
	if !ok || rec.Offset != all[100].Offset {
		t.Fatalf("iterate from the middle: %v %d", ok, rec.Offset)
	}
	it.Close()
	// Wrong sizes are refused.
	if _, err := l.Read(all[0].Offset, all[0].Size-1); err == nil {
		t.Fatal("read with a wrong size succeeded")
	}
	if _, err := l.Read(all[0].Offset+1, all[0].Size); err == nil {
		t.Fatal("read at a wrong offset succeeded")
	}
	if _, err := l.Read(l.WrotePosition(), 100); err == nil {
		t.Fatal("read beyond the write position succeeded")
	}
}

func TestAppendValidation(t *testing.T) {
	l := openTest(t, Config{Dir: t.TempDir()}, Start{})
	defer l.Close()
	ctx := context.Background()
	for name, m := range map[string]Message{
		"empty subject":  {Subject: "", Payload: []byte("x")},
		"NUL in subject": {Subject: "a\x00b", Payload: []byte("x")},
		"long subject":   {Subject: strings.Repeat("s", MaxSubjectLen+1), Payload: []byte("x")},
		"empty payload":  {Subject: "s"},
		"negative ts":    {Subject: "s", Payload: []byte("x"), Timestamp: -1},
		"too large":      {Subject: "s", Payload: make([]byte, testSegSize)},
	} {
		if _, err := l.Append(ctx, []Message{m}); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
	if out, err := l.Append(ctx, nil); err != nil || out != nil {
		t.Fatalf("empty batch: %v %v", out, err)
	}
	cctx, cancel := context.WithCancel(ctx)
	cancel()
	if _, err := l.Append(cctx, []Message{{Subject: "s", Payload: []byte("x")}}); !errors.Is(err, context.Canceled) {
		t.Fatalf("cancelled context: %v", err)
	}
	if l.WrotePosition() != 0 || l.NextSequence("s") != 0 {
		t.Fatal("a refused append left traces")
	}
	out, err := l.Append(ctx, []Message{{Subject: "s", Payload: []byte("x"), Timestamp: 123}})
	if err != nil || out[0].Timestamp != 123 {
		t.Fatalf("explicit timestamp: %+v %v", out, err)
	}
	out, err = l.Append(ctx, []Message{{Subject: "s", Payload: []byte("x")}})
	if now := time.Now().UnixMilli(); err != nil || out[0].Timestamp < now-10_000 || out[0].Timestamp > now {
		t.Fatalf("default timestamp: %+v %v", out, err)
	}
}

func TestReadDoesNotAllocate(t *testing.T) {
	l := openTest(t, Config{Dir: t.TempDir()}, Start{})
	defer l.Close()
	var all []written
	for i := 0; i < 10; i++ {
		all = append(all, appendRandom(t, l, rand.New(rand.NewSource(int64(i))), testSubjects, 5)...)
	}
	i := 0
	allocs := testing.AllocsPerRun(2000, func() {
		w := all[i%len(all)]
		rec, err := l.Read(w.Offset, w.Size)
		if err != nil || rec.Sequence != w.Sequence {
			t.Fatal("bad read")
		}
		rec.Release()
		i++
	})
	if allocs != 0 {
		t.Fatalf("Read allocates %.2f times per call", allocs)
	}
}

func TestReopenContinuesSequences(t *testing.T) {
	dir := t.TempDir()
	l := openTest(t, Config{Dir: dir}, Start{})
	rng := rand.New(rand.NewSource(2))
	var all []written
	for i := 0; i < 100; i++ {
		all = append(all, appendRandom(t, l, rng, testSubjects, 3)...)
	}
	want := map[string]int64{}
	for _, s := range testSubjects {
		want[s] = l.NextSequence(s)
	}
	end := l.WrotePosition()
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := l.Append(context.Background(), []Message{{Subject: "s", Payload: []byte("x")}}); !errors.Is(err, ErrClosed) {
		t.Fatalf("append after close: %v", err)
	}

	for _, start := range []Start{
		{}, // full scan
		{Offset: all[len(all)/2].Offset, MaxSequences: map[string]int64{"order.changed": all[len(all)/2].Sequence}},
		{Offset: end, MaxSequences: map[string]int64{"gone.subject": 41}}, // checkpoint at the end
	} {
		l = openTest(t, Config{Dir: dir}, start)
		if l.WrotePosition() != end {
			t.Fatalf("reopened at %d, want %d", l.WrotePosition(), end)
		}
		for s, n := range want {
			if got := l.NextSequence(s); got != n {
				t.Fatalf("start %+v: NextSequence(%s) = %d, want %d", start, s, got, n)
			}
		}
		if got := l.NextSequence("gone.subject"); start.MaxSequences["gone.subject"] == 41 && got != 42 {
			t.Fatalf("checkpoint-only subject: %d", got)
		}
		for _, w := range all {
			checkWritten(t, l, w)
		}
		l.Close()
	}
	// A checkpoint on an empty directory: the log continues at its offset.
	l = openTest(t, Config{Dir: t.TempDir()}, Start{Offset: 5000, MaxSequences: map[string]int64{"a": 9}})
	defer l.Close()
	out, err := l.Append(context.Background(), []Message{{Subject: "a", Payload: []byte("x")}})
	if err != nil || out[0].Offset != 5000 || out[0].Sequence != 10 {
		t.Fatalf("append after checkpoint on empty dir: %+v %v", out, err)
	}
	if l.MinOffset() != 5000 {
		t.Fatalf("MinOffset %d", l.MinOffset())
	}
}

// TestRecoveryTruncatesDamage damages the log on disk in various ways and
// checks that recovery keeps exactly the valid prefix.
func TestRecoveryTruncatesDamage(t *testing.T) {
	for _, damage := range []string{"flip payload byte", "zero header", "garbage after end", "zero middle segment"} {
		t.Run(damage, func(t *testing.T) {
			dir := t.TempDir()
			l := openTest(t, Config{Dir: dir}, Start{})
			rng := rand.New(rand.NewSource(3))
			var all []written
			for i := 0; i < 150; i++ {
				all = append(all, appendRandom(t, l, rng, testSubjects, 1)...)
			}
			l.Close()
			victim := all[len(all)-10]
			if damage == "zero middle segment" {
				victim = all[len(all)/3]
			}
			path := fmt.Sprintf("%s/%020d", dir, victim.Offset/testSegSize*testSegSize)
			data, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			pos := victim.Offset % testSegSize
			keep := 0 // records expected to survive
			for keep < len(all) && all[keep].Offset < victim.Offset {
				keep++
			}
			switch damage {
			case "flip payload byte":
				data[pos+int64(victim.Size)-1] ^= 0x10
			case "zero header", "zero middle segment":
				clear(data[pos : pos+20])
			case "garbage after end":
				last := all[len(all)-1]
				pos = last.Offset%testSegSize + int64(last.Size)
				path = fmt.Sprintf("%s/%020d", dir, last.Offset/testSegSize*testSegSize)
				data, _ = os.ReadFile(path)
				copy(data[pos:], "garbage that is not a record")
				keep = len(all)
			}
			if err := os.WriteFile(path, data, 0o644); err != nil {
				t.Fatal(err)
			}
			l = openTest(t, Config{Dir: dir}, Start{})
			defer l.Close()
			wantEnd := all[len(all)-1].Offset + int64(all[len(all)-1].Size)
			if keep < len(all) {
				wantEnd = all[keep].Offset
			}
			if l.WrotePosition() != wantEnd {
				t.Fatalf("recovered to %d, want %d", l.WrotePosition(), wantEnd)
			}
			for _, w := range all[:keep] {
				checkWritten(t, l, w)
			}
			seen := checkLog(t, l)
			if len(seen) != keep {
				t.Fatalf("%d records after recovery, want %d", len(seen), keep)
			}
			// Appends reuse the lost sequences and land at the truncation point.
			if keep < len(all) {
				out, err := l.Append(context.Background(), []Message{{Subject: victim.subject, Payload: []byte("again")}})
				if err != nil {
					t.Fatal(err)
				}
				if out[0].Sequence != victim.Sequence {
					t.Fatalf("sequence after recovery %d, want %d", out[0].Sequence, victim.Sequence)
				}
			}
			checkLog(t, l)
		})
	}
}

func TestAppendedNotification(t *testing.T) {
	l := openTest(t, Config{Dir: t.TempDir()}, Start{})
	defer l.Close()
	ch := l.Appended()
	if ch != l.Appended() {
		t.Fatal("two waiters got different channels before an append")
	}
	select {
	case <-ch:
		t.Fatal("closed before any append")
	default:
	}
	appendRandom(t, l, rand.New(rand.NewSource(1)), testSubjects, 1)
	select {
	case <-ch:
	case <-time.After(time.Second):
		t.Fatal("not closed by an append")
	}
	ch2 := l.Appended()
	select {
	case <-ch2:
		t.Fatal("new channel already closed")
	default:
	}
}

func TestIteratorTailsConcurrentAppends(t *testing.T) {
	l := openTest(t, Config{Dir: t.TempDir()}, Start{})
	defer l.Close()
	const n = 3000
	done := make(chan error, 1)
	go func() {
		it := l.Iterate(0)
		defer it.Close()
		got := 0
		for got < n {
			ch := l.Appended()
			rec, ok := it.Next()
			if !ok {
				if it.Err() != nil {
					done <- it.Err()
					return
				}
				select {
				case <-ch:
				case <-time.After(5 * time.Second):
					done <- errors.New("no wake-up")
					return
				}
				continue
			}
			if rec.Sequence != int64(got) || !rec.CheckCRC() {
				done <- fmt.Errorf("record %d: sequence %d", got, rec.Sequence)
				return
			}
			got++
		}
		done <- nil
	}()
	for i := 0; i < n; i++ {
		if _, err := l.Append(context.Background(), []Message{{Subject: "s", Payload: payloadFor("s", int64(i), 1+i%700)}}); err != nil {
			t.Fatal(err)
		}
	}
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}

func TestConcurrentAppendersAndReaders(t *testing.T) {
	l := openTest(t, Config{Dir: t.TempDir()}, Start{})
	defer l.Close()
	var (
		mu  sync.Mutex
		all []written
		wg  sync.WaitGroup
	)
	for g := 0; g < 8; g++ {
		wg.Add(1)
		go func(seed int64) {
			defer wg.Done()
			rng := rand.New(rand.NewSource(seed))
			for i := 0; i < 150; i++ {
				ws := appendRandom(t, l, rng, testSubjects, 1+rng.Intn(3))
				mu.Lock()
				all = append(all, ws...)
				w := all[rng.Intn(len(all))]
				mu.Unlock()
				checkWritten(t, l, w)
			}
		}(int64(g))
	}
	wg.Wait()
	seen := checkLog(t, l)
	if len(seen) != len(all) {
		t.Fatalf("%d records, %d appended", len(seen), len(all))
	}
	for _, w := range all {
		r := seen[w.Offset]
		if string(r.Subject) != w.subject || r.Sequence != w.Sequence {
			t.Fatalf("record at %d: %s #%d, want %s #%d", w.Offset, r.Subject, r.Sequence, w.subject, w.Sequence)
		}
	}
}

func TestSyncModeGroupCommit(t *testing.T) {
	reg := prometheus.NewRegistry()
	l := openTest(t, Config{Dir: t.TempDir(), FlushSync: true, FlushInterval: time.Hour, Registerer: reg}, Start{})
	defer l.Close()
	const goroutines, each = 32, 20
	var wg sync.WaitGroup
	errs := make(chan error, goroutines)
	for g := 0; g < goroutines; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < each; i++ {
				out, err := l.Append(context.Background(), []Message{{Subject: "s", Payload: make([]byte, 100)}})
				if err != nil {
					errs <- err
					return
				}
				if end := out[0].Offset + int64(out[0].Size); l.FlushedPosition() < end {
					errs <- fmt.Errorf("append returned before an fsync covered it (%d < %d)", l.FlushedPosition(), end)
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	flushes := histogramCount(t, reg, "qmq_messagelog_flush_seconds")
	t.Logf("%d appends, %d fsyncs", goroutines*each, flushes)
	if flushes >= goroutines*each {
		t.Fatalf("no group commit: %d fsyncs for %d appends", flushes, goroutines*each)
	}
	// A cancelled wait returns the context's error.
	ctx, cancel := context.WithCancel(context.Background())
	go cancel()
	for i := 0; i < 100; i++ {
		if _, err := l.Append(ctx, []Message{{Subject: "s", Payload: make([]byte, 100)}}); err != nil {
			if !errors.Is(err, context.Canceled) {
				t.Fatal(err)
			}
			break
		}
	}
}

func TestSyncModeFlushError(t *testing.T) {
	var fail sync.Map
	fs := vfs.NewErrorFS(vfs.Default(), func(op, path string) error {
		if _, ok := fail.Load(op); ok {
			return errors.New("disk on fire")
		}
		return nil
	})
	dir := t.TempDir()
	l := openTest(t, Config{FS: fs, Dir: dir, FlushSync: true}, Start{})
	if _, err := l.Append(context.Background(), []Message{{Subject: "s", Payload: []byte("x")}}); err != nil {
		t.Fatal(err)
	}
	fail.Store(vfs.OpSync, true)
	if _, err := l.Append(context.Background(), []Message{{Subject: "s", Payload: []byte("x")}}); err == nil {
		t.Fatal("append succeeded although fsync failed")
	}
	// Fail-stop: even once fsync works again, the log refuses appends until reopened.
	fail.Delete(vfs.OpSync)
	if _, err := l.Append(context.Background(), []Message{{Subject: "s", Payload: []byte("x")}}); err == nil {
		t.Fatal("append accepted after a failed fsync")
	}
	if err := l.Flush(); err == nil {
		t.Fatal("Flush succeeded after a failed fsync")
	}
	l.Close()
	l = openTest(t, Config{FS: fs, Dir: dir, FlushSync: true}, Start{})
	defer l.Close()
	out, err := l.Append(context.Background(), []Message{{Subject: "s", Payload: []byte("x")}})
	if err != nil {
		t.Fatalf("append after reopening: %v", err)
	}
	if out[0].Sequence < 1 {
		t.Fatalf("sequence after reopening %d", out[0].Sequence)
	}
}

func histogramCount(t *testing.T, reg *prometheus.Registry, name string) int {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() == name {
			return int(mf.GetMetric()[0].GetHistogram().GetSampleCount())
		}
	}
	t.Fatalf("metric %s missing", name)
	return 0
}

func TestMetrics(t *testing.T) {
	reg := prometheus.NewRegistry()
	dir := t.TempDir()
	l := openTest(t, Config{Dir: dir, Registerer: reg}, Start{})
	rng := rand.New(rand.NewSource(1))
	for i := 0; i < 100; i++ {
		appendRandom(t, l, rng, testSubjects, 2)
	}
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]*dto.MetricFamily{}
	for _, mf := range mfs {
		got[mf.GetName()] = mf
	}
	if v := got["qmq_messagelog_segments"].GetMetric()[0].GetGauge().GetValue(); int(v) != len(l.Segments()) {
		t.Fatalf("segments gauge %v", v)
	}
	if v := got["qmq_messagelog_bytes"].GetMetric()[0].GetGauge().GetValue(); int64(v) != l.WrotePosition() {
		t.Fatalf("bytes gauge %v", v)
	}
	if c := got["qmq_messagelog_append_seconds"].GetMetric()[0].GetHistogram().GetSampleCount(); c != 100 {
		t.Fatalf("append histogram count %d", c)
	}
	if _, ok := got["qmq_messagelog_unflushed_bytes"]; !ok {
		t.Fatal("unflushed bytes gauge missing")
	}
	// A second log on the same registry is refused; after Close it is fine.
	if _, err := Open(Config{Dir: t.TempDir(), SegmentSize: testSegSize, Registerer: reg}, Start{}); err == nil {
		t.Fatal("duplicate registration accepted")
	}
	l.Close()
	l2 := openTest(t, Config{Dir: dir, Registerer: reg}, Start{})
	l2.Close()
}

func TestRetentionAndIterateFromDeleted(t *testing.T) {
	l := openTest(t, Config{Dir: t.TempDir()}, Start{})
	defer l.Close()
	rng := rand.New(rand.NewSource(5))
	var all []written
	for i := 0; i < 200; i++ {
		all = append(all, appendRandom(t, l, rng, testSubjects, 1)...)
	}
	segs := l.Segments()
	n, err := l.DeleteSegmentsBefore(segs[2].BaseOffset)
	if err != nil || n != 2 {
		t.Fatalf("deleted %d: %v", n, err)
	}
	if l.MinOffset() != segs[2].BaseOffset {
		t.Fatalf("MinOffset %d", l.MinOffset())
	}
	it := l.Iterate(0)
	defer it.Close()
	rec, ok := it.Next()
	if !ok || rec.Offset < segs[2].BaseOffset {
		t.Fatalf("first record after retention at %d (%v)", rec.Offset, ok)
	}
	if _, err := l.Read(all[0].Offset, all[0].Size); err == nil {
		t.Fatal("read of a deleted record succeeded")
	}
	if bytes.Equal(nil, []byte{}) && l.UnmapIdle() < 0 {
		t.Fatal("unreachable")
	}
}

// TestWriteErrorStopsAppends: appends are written with pwrite (segment
// WriteThrough); a failed write stops the log — sequences were already
// given to the failed batch — and a reopened log recovers and goes on with
// the sequences of what was really written.
func TestWriteErrorStopsAppends(t *testing.T) {
	var fail sync.Map
	fs := vfs.NewErrorFS(vfs.Default(), func(op, path string) error {
		if _, ok := fail.Load(op); ok {
			return errors.New("disk on fire")
		}
		return nil
	})
	dir := t.TempDir()
	ctx := context.Background()
	l := openTest(t, Config{FS: fs, Dir: dir}, Start{})
	if _, err := l.Append(ctx, []Message{{Subject: "s", Payload: []byte("x")}}); err != nil {
		t.Fatal(err)
	}
	fail.Store(vfs.OpWrite, true)
	if _, err := l.Append(ctx, []Message{{Subject: "s", Payload: []byte("y")}}); err == nil || !strings.Contains(err.Error(), "disk on fire") {
		t.Fatalf("append with a failing write: %v", err)
	}
	fail.Delete(vfs.OpWrite)
	if _, err := l.Append(ctx, []Message{{Subject: "s", Payload: []byte("z")}}); err == nil || !strings.Contains(err.Error(), "appends stopped") {
		t.Fatalf("append after a failed write: %v; the log must stay stopped until reopened", err)
	}
	l.Close()
	l = openTest(t, Config{FS: fs, Dir: dir}, Start{})
	defer l.Close()
	out, err := l.Append(ctx, []Message{{Subject: "s", Payload: []byte("w")}})
	if err != nil {
		t.Fatalf("append after reopening: %v", err)
	}
	if out[0].Sequence != 1 {
		t.Fatalf("sequence after reopening = %d, want 1 (the failed batch wrote nothing)", out[0].Sequence)
	}
}

package messagelog

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// Benchmarks compare the message log with plain-file baselines measured in
// the same run on the same disk (b.TempDir). Records are 1 KiB payloads with
// a 13-byte subject: 1072 bytes each; the baselines write the same number of
// bytes per record.

const (
	benchSubject = "order.changed"
	benchPayload = 1024
	benchSegSize = 256 << 20
)

var benchRecord = recordSize(len(benchSubject), benchPayload)

func benchLog(b *testing.B, cfg Config) *Log {
	b.Helper()
	cfg.Dir = b.TempDir()
	if cfg.SegmentSize == 0 {
		cfg.SegmentSize = benchSegSize
	}
	l, err := Open(cfg, Start{})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { l.Close() })
	return l
}

func benchAppend(b *testing.B, subjects []string, payloadSize int) {
	l := benchLog(b, Config{})
	payload := make([]byte, payloadSize)
	for i := range payload {
		payload[i] = byte(i)
	}
	msgs := []Message{{Payload: payload}}
	ctx := context.Background()
	b.SetBytes(int64(recordSize(len(subjects[0]), payloadSize)))
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		msgs[0].Subject = subjects[i%len(subjects)]
		if _, err := l.Append(ctx, msgs); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkAppendAsync1KiB: QMQ's default policy (background flush every
// 500 ms), one appender.
func BenchmarkAppendAsync1KiB(b *testing.B) { benchAppend(b, []string{benchSubject}, benchPayload) }

// BenchmarkPlainWrite1KiB is the baseline: a sequential write(2) loop.
func BenchmarkPlainWrite1KiB(b *testing.B) {
	f, err := os.Create(filepath.Join(b.TempDir(), "plain"))
	if err != nil {
		b.Fatal(err)
	}
	defer f.Close()
	rec := make([]byte, benchRecord)
	b.SetBytes(int64(benchRecord))
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if _, err := f.Write(rec); err != nil {
			b.Fatal(err)
		}
	}
}

func benchSubjects(n int) []string {
	s := make([]string, n)
	for i := range s {
		s[i] = fmt.Sprintf("subject.%04d.changed", i)
	}
	return s
}

// BenchmarkAppendSubjects1 and ...1000: throughput must stay flat with the
// number of subjects (same subject length in both). The 1 KiB variants are
// dominated by page-cache costs (faulting in fresh pages), which vary from
// run to run on a small VM; the 64-byte variants expose the per-append CPU
// path, where the subject lookup is.
func BenchmarkAppendSubjects1(b *testing.B)    { benchAppend(b, benchSubjects(1), benchPayload) }
func BenchmarkAppendSubjects1000(b *testing.B) { benchAppend(b, benchSubjects(1000), benchPayload) }

func BenchmarkAppendSmallSubjects1(b *testing.B)    { benchAppend(b, benchSubjects(1), 64) }
func BenchmarkAppendSmallSubjects1000(b *testing.B) { benchAppend(b, benchSubjects(1000), 64) }

const syncAppenders = 256

// runConcurrent runs b.N operations on syncAppenders goroutines.
func runConcurrent(b *testing.B, op func() error) {
	var next atomic.Int64
	var wg sync.WaitGroup
	var failed atomic.Pointer[error]
	b.ResetTimer()
	for g := 0; g < syncAppenders; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for next.Add(1) <= int64(b.N) {
				if err := op(); err != nil {
					failed.Store(&err)
					return
				}
			}
		}()
	}
	wg.Wait()
	b.StopTimer()
	if p := failed.Load(); p != nil {
		b.Fatal(*p)
	}
}

// BenchmarkAppendSync256: flush.sync=true, 256 concurrent appenders, one
// message per append; group commit shares fsyncs.
func BenchmarkAppendSync256(b *testing.B) {
	l := benchLog(b, Config{FlushSync: true})
	payload := make([]byte, benchPayload)
	ctx := context.Background()
	b.SetBytes(int64(benchRecord))
	b.ReportAllocs()
	runConcurrent(b, func() error {
		_, err := l.Append(ctx, []Message{{Subject: benchSubject, Payload: payload}})
		return err
	})
}

// BenchmarkPlainWriteFsyncBatch256 is the baseline: 256 goroutines write a
// record each under a mutex and wait for an fsync covering it; one flusher
// goroutine fsyncs whatever was written meanwhile (a minimal group commit).
func BenchmarkPlainWriteFsyncBatch256(b *testing.B) {
	f, err := os.Create(filepath.Join(b.TempDir(), "plain"))
	if err != nil {
		b.Fatal(err)
	}
	defer f.Close()
	var (
		mu              sync.Mutex
		cond            = sync.NewCond(&mu)
		written, synced int64
		syncErr         error
		stop            bool
	)
	flusherDone := make(chan struct{})
	go func() {
		defer close(flusherDone)
		mu.Lock()
		defer mu.Unlock()
		for {
			for written == synced && !stop {
				cond.Wait()
			}
			if stop {
				return
			}
			target := written
			mu.Unlock()
			err := f.Sync()
			mu.Lock()
			synced, syncErr = target, err
			cond.Broadcast()
		}
	}()
	rec := make([]byte, benchRecord)
	b.SetBytes(int64(benchRecord))
	b.ReportAllocs()
	runConcurrent(b, func() error {
		mu.Lock()
		defer mu.Unlock()
		if _, err := f.Write(rec); err != nil {
			return err
		}
		written++
		end := written
		cond.Broadcast() // wake the flusher
		for synced < end && syncErr == nil {
			cond.Wait()
		}
		return syncErr
	})
	mu.Lock()
	stop = true
	cond.Broadcast()
	mu.Unlock()
	<-flusherDone
}

// BenchmarkFsyncPerRecord is the one-fsync-per-record rate: write + fsync.
func BenchmarkFsyncPerRecord(b *testing.B) {
	f, err := os.Create(filepath.Join(b.TempDir(), "plain"))
	if err != nil {
		b.Fatal(err)
	}
	defer f.Close()
	rec := make([]byte, benchRecord)
	b.SetBytes(int64(benchRecord))
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if _, err := f.Write(rec); err != nil {
			b.Fatal(err)
		}
		if err := f.Sync(); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkRead reads records by (offset, size), as a pull does after its
// consumer-log lookup, from a warm page cache. It must not allocate.
func BenchmarkRead(b *testing.B) {
	l := benchLog(b, Config{SegmentSize: 64 << 20})
	payload := make([]byte, benchPayload)
	var recs []Appended
	for i := 0; i < 10000; i++ {
		out, err := l.Append(context.Background(), []Message{{Subject: benchSubject, Payload: payload}})
		if err != nil {
			b.Fatal(err)
		}
		recs = append(recs, out[0])
	}
	b.SetBytes(int64(benchRecord))
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		a := recs[(i*7919)%len(recs)]
		rec, err := l.Read(a.Offset, a.Size)
		if err != nil {
			b.Fatal(err)
		}
		if rec.Sequence != a.Sequence {
			b.Fatal("wrong record")
		}
		rec.Release()
	}
}

// BenchmarkRecover1GiB measures recovery (full validating scan, no
// checkpoint) of a 1 GiB message log of 1 KiB records after it was written
// and closed without a clean flush of the page cache.
func BenchmarkRecover1GiB(b *testing.B) {
	dir := b.TempDir()
	l, err := Open(Config{Dir: dir, SegmentSize: 256 << 20}, Start{})
	if err != nil {
		b.Fatal(err)
	}
	payload := make([]byte, benchPayload)
	subjects := benchSubjects(100)
	for i := 0; l.WrotePosition() < 1<<30; i++ {
		if _, err := l.Append(context.Background(), []Message{{Subject: subjects[i%len(subjects)], Payload: payload}}); err != nil {
			b.Fatal(err)
		}
	}
	l.Close()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		start := time.Now()
		l, err := Open(Config{Dir: dir, SegmentSize: 256 << 20}, Start{})
		if err != nil {
			b.Fatal(err)
		}
		b.ReportMetric(time.Since(start).Seconds(), "s/recovery")
		l.Close()
	}
}

//go:build perf

package delaystore

import (
	"bufio"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// The open time of a store holding a million scheduled messages, after a
// clean Close and after a kill -9 (the figures of docs/performance.md):
//
//	go test -tags perf -run '^TestPerfOpenMillion$' -v ./storage/delaystore/
//
// QMQ_PERF_OPEN_MESSAGES overrides the count and QMQ_PERF_OPEN_DIR keeps
// the store (built once, reused by later runs).

const perfOpenDirEnv = "QMQ_PERF_OPEN_HELPER_DIR"

func perfOpenConfig(dir string) Config {
	cfg := DefaultConfig(dir)
	cfg.Now = func() time.Time { return t0 }
	return cfg
}

// perfOpenSpread schedules message i of n over 30 days from an hour after
// t0: 720 hourly buckets, all but the first beyond the loaded window.
func perfOpenSpread(i, n int) int64 {
	return t0.Add(time.Hour + time.Duration(i)*(30*24*time.Hour/time.Duration(n))).UnixMilli()
}

func perfOpenBuild(t *testing.T, dir string, n int) {
	cfg := perfOpenConfig(dir)
	s := mustOpen(t, cfg)
	payload := make([]byte, 100)
	batch := make([]Message, 0, 1000)
	begin := time.Now()
	for i := 0; i < n; i++ {
		batch = append(batch, Message{ScheduleTime: perfOpenSpread(i, n), Subject: fmt.Sprintf("perf.subject.%d", i%20),
			MessageID: strconv.Itoa(i), Payload: payload})
		if len(batch) == cap(batch) || i == n-1 {
			if _, err := s.Append(batch); err != nil {
				t.Fatal(err)
			}
			batch = batch[:0]
		}
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	t.Logf("built a store of %d messages in %v", n, time.Since(begin).Round(time.Millisecond))
}

func timeOpen(t *testing.T, dir string) (time.Duration, Stats) {
	begin := time.Now()
	s := mustOpen(t, perfOpenConfig(dir))
	took := time.Since(begin)
	st := s.Stats()
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	return took, st
}

func TestPerfOpenMillion(t *testing.T) {
	n := 1_000_000
	if v := os.Getenv("QMQ_PERF_OPEN_MESSAGES"); v != "" {
		n, _ = strconv.Atoi(v)
	}
	dir := os.Getenv("QMQ_PERF_OPEN_DIR")
	if dir == "" {
		dir = t.TempDir()
	}
	if _, err := os.Stat(dir + "/" + messageDir); err != nil {
		perfOpenBuild(t, dir, n)
	}
	var opens []time.Duration
	for i := 0; i < 5; i++ {
		took, st := timeOpen(t, dir)
		opens = append(opens, took)
		if i == 0 {
			t.Logf("stats: %+v", st)
		}
	}
	t.Logf("open after a clean close, 5 runs in order: %v", opens)
	slices.Sort(opens)
	t.Logf("min %v median %v max %v", opens[0].Round(time.Millisecond), opens[2].Round(time.Millisecond), opens[4].Round(time.Millisecond))
	// The counts' share of an Open, alone (median of 5 on the open store),
	// and what rebuilding them by reading every bucket would cost instead.
	s := mustOpen(t, perfOpenConfig(dir))
	// first: the first of 5 runs (buckets beyond the window closed, as at
	// Open); median: of the 5. cold evicts the buckets' files from the page
	// cache first (posix_fadvise, these files only), as after a reboot.
	countsTime := func(cold bool) (first, median time.Duration) {
		var ds []time.Duration
		for i := 0; i < 5; i++ {
			s.replayMu.Lock()
			if i == 0 && cold {
				evict(t, filepath.Join(dir, scheduleDir))
			}
			begin := time.Now()
			if err := s.initCounts(); err != nil {
				t.Fatal(err)
			}
			ds = append(ds, time.Since(begin))
			s.replayMu.Unlock()
		}
		first = ds[0]
		slices.Sort(ds)
		return first, ds[2]
	}
	_, fromFiles := countsTime(false)
	files, _ := filepath.Glob(filepath.Join(dir, scheduleDir, "*", countsFile))
	for _, f := range files {
		os.Rename(f, f+".aside")
	}
	rebuildFirst, rebuild := countsTime(false)
	s.replayMu.Lock()
	s.closeIdle(true)
	s.replayMu.Unlock()
	rebuildCold, _ := countsTime(true)
	for _, f := range files {
		os.Rename(f+".aside", f)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	t.Logf("pending counts at Open (%d pending): %v from the %d counts files; rebuilt by reading every bucket instead: %v (first, buckets closed), %v (median, open), %v (first, files evicted from the page cache)",
		s.Stats().Pending, fromFiles.Round(time.Millisecond), len(files), rebuildFirst.Round(time.Millisecond), rebuild.Round(time.Millisecond), rebuildCold.Round(time.Millisecond))

	// kill -9 a process that appended 10,000 more messages and delivered
	// nothing, then open.
	cmd := exec.Command(os.Args[0], "-test.run=^TestHelperPerfOpenKill$")
	cmd.Env = append(os.Environ(), perfOpenDirEnv+"="+dir)
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	sc := bufio.NewScanner(out)
	for sc.Scan() && !strings.HasPrefix(sc.Text(), "appended") {
	}
	cmd.Process.Signal(syscall.SIGKILL)
	cmd.Wait()
	took, st := timeOpen(t, dir)
	t.Logf("open after kill -9: %v (%+v)", took.Round(time.Millisecond), st)
	took, _ = timeOpen(t, dir)
	t.Logf("open after that clean close: %v", took.Round(time.Millisecond))
}

func TestHelperPerfOpenKill(t *testing.T) {
	dir := os.Getenv(perfOpenDirEnv)
	if dir == "" {
		t.Skip("helper process of TestPerfOpenMillion")
	}
	s := mustOpen(t, perfOpenConfig(dir))
	payload := make([]byte, 100)
	for i := 0; i < 10; i++ {
		batch := make([]Message, 1000)
		for j := range batch {
			k := 10_000_000 + i*1000 + j
			batch[j] = Message{ScheduleTime: perfOpenSpread(k%1000_000, 1000_000), Subject: fmt.Sprintf("perf.subject.%d", k%20), MessageID: strconv.Itoa(k), Payload: payload}
		}
		if _, err := s.Append(batch); err != nil {
			t.Fatal(err)
		}
	}
	time.Sleep(1500 * time.Millisecond) // flushed, replayed, one checkpoint
	fmt.Println("appended")
	select {}
}

// evict drops the page cache of every file under dir (POSIX_FADV_DONTNEED).
func evict(t *testing.T, dir string) {
	filepath.WalkDir(dir, func(path string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return nil
		}
		f, err := os.Open(path)
		if err != nil {
			return nil
		}
		defer f.Close()
		if err := unix.Fadvise(int(f.Fd()), 0, 0, unix.FADV_DONTNEED); err != nil {
			t.Logf("fadvise %s: %v", path, err)
		}
		return nil
	})
}

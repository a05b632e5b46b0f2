package messagelog

import (
	"bufio"
	"context"
	"flag"
	"fmt"
	"hash/crc32"
	"io"
	"math/rand"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/qmq-go/qmq/storage/vfs"
)

var longTests = flag.Bool("long", false, "run the crash tests for many more iterations (also QMQ_LONG_TESTS=1)")

func iterations(normal, long int) int {
	if *longTests || os.Getenv("QMQ_LONG_TESTS") == "1" {
		return long
	}
	return normal
}

const (
	writerDirEnv  = "QMQ_MESSAGELOG_WRITER_DIR"
	writerSyncEnv = "QMQ_MESSAGELOG_WRITER_SYNC"
	writerSeedEnv = "QMQ_MESSAGELOG_WRITER_SEED"
	crashSegSize  = 256 << 10
)

var crashSubjects = []string{"order.changed", "pay.done", "%RETRY%g%order.changed", "s1", "s2", "s3", "s4"}

// TestHelperWriter is the writer process of TestCrashKill9: it appends until
// killed and prints one line per message after Append returned (with
// FlushSync, after the fsync).
func TestHelperWriter(t *testing.T) {
	dir := os.Getenv(writerDirEnv)
	if dir == "" {
		t.Skip("helper process of TestCrashKill9")
	}
	syncMode := os.Getenv(writerSyncEnv) == "1"
	seed, _ := strconv.ParseInt(os.Getenv(writerSeedEnv), 10, 64)
	l, err := Open(Config{Dir: dir, SegmentSize: crashSegSize, FlushSync: syncMode, FlushInterval: 20 * time.Millisecond}, Start{})
	if err != nil {
		fmt.Printf("error %v\n", err)
		os.Exit(2)
	}
	fmt.Printf("ready %d\n", time.Now().UnixMilli())
	appenders := 2
	if syncMode {
		appenders = 8
	}
	for g := 0; g < appenders; g++ {
		go func(rng *rand.Rand) {
			var line []byte
			for {
				msgs := make([]Message, 1+rng.Intn(4))
				for i := range msgs {
					s := crashSubjects[rng.Intn(len(crashSubjects))]
					msgs[i] = Message{Subject: s, Payload: payloadFor(s, rng.Int63(), 1+rng.Intn(4000))}
				}
				out, err := l.Append(context.Background(), msgs)
				if err != nil {
					fmt.Printf("error %v\n", err)
					os.Exit(2)
				}
				line = line[:0]
				for i, a := range out {
					line = fmt.Appendf(line, "ack %d %d %d %d %s %d %d\n", a.Offset, a.Size, a.HeaderSize, a.Timestamp,
						msgs[i].Subject, a.Sequence, crc32.ChecksumIEEE(msgs[i].Payload))
				}
				os.Stdout.Write(line) // < PIPE_BUF: one atomic write
			}
		}(rand.New(rand.NewSource(seed + int64(g))))
	}
	time.Sleep(time.Minute) // the parent kills us long before
	os.Exit(3)
}

func parseAck(line string) (written, error) {
	f := strings.Fields(line)
	if len(f) != 8 || f[0] != "ack" {
		return written{}, fmt.Errorf("bad line %q", line)
	}
	var nums [6]int64
	for i, s := range []string{f[1], f[2], f[3], f[4], f[6], f[7]} {
		n, err := strconv.ParseInt(s, 10, 64)
		if err != nil {
			return written{}, fmt.Errorf("bad line %q: %w", line, err)
		}
		nums[i] = n
	}
	return written{
		Appended: Appended{Offset: nums[0], Size: int32(nums[1]), HeaderSize: int16(nums[2]), Timestamp: nums[3], Sequence: nums[4]},
		subject:  f[5],
		crc:      uint32(nums[5]),
	}, nil
}

// TestCrashKill9 kills a writer process with SIGKILL at random moments, in
// async and sync flush modes, always on the same log: every acknowledged
// record must survive intact (a killed process loses nothing from the page
// cache), no invalid record may be served, and sequences must stay contiguous.
func TestCrashKill9(t *testing.T) {
	if testing.Short() {
		t.Skip("spawns processes")
	}
	dir := t.TempDir()
	rng := rand.New(rand.NewSource(time.Now().UnixNano()))
	acked := map[int64]written{}
	n := iterations(20, 200)
	killedInRecovery := 0
	for iter := 0; iter < n; iter++ {
		syncMode := iter%2 == 1
		cmd := exec.Command(os.Args[0], "-test.run=^TestHelperWriter$", "-test.count=1")
		cmd.Env = append(os.Environ(), writerDirEnv+"="+dir, writerSeedEnv+"="+strconv.FormatInt(rng.Int63(), 10))
		if syncMode {
			cmd.Env = append(cmd.Env, writerSyncEnv+"=1")
		}
		stdout, err := cmd.StdoutPipe()
		if err != nil {
			t.Fatal(err)
		}
		cmd.Stderr = os.Stderr
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		lines := make(chan string, 1024)
		var readErr error
		var wg sync.WaitGroup
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer close(lines)
			r := bufio.NewReader(stdout)
			for {
				line, err := r.ReadString('\n')
				if err != nil {
					if err != io.EOF {
						readErr = err
					}
					return // a partial last line was never acknowledged
				}
				lines <- line
			}
		}()
		var got []string
		if rng.Intn(5) == 0 {
			// Kill at a random moment, possibly during recovery.
			time.Sleep(time.Duration(rng.Intn(30)) * time.Millisecond)
		} else {
			// Kill a random time after the first acknowledgement (the first
			// flush after opening syncs every segment, which takes a while).
			for line := range lines {
				got = append(got, line)
				if strings.HasPrefix(line, "ack ") {
					break
				}
			}
			time.Sleep(time.Duration(rng.Intn(60)) * time.Millisecond)
		}
		if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
			t.Fatal(err)
		}
		for line := range lines {
			got = append(got, line)
		}
		wg.Wait()
		cmd.Wait()
		if readErr != nil {
			t.Fatal(readErr)
		}
		ready := false
		newAcks := 0
		for _, line := range got {
			switch {
			case strings.HasPrefix(line, "ready "):
				ready = true
			case strings.HasPrefix(line, "ack "):
				w, err := parseAck(line)
				if err != nil {
					t.Fatal(err)
				}
				acked[w.Offset] = w
				newAcks++
			default:
				t.Fatalf("iteration %d: writer said %q", iter, line)
			}
		}
		if !ready {
			killedInRecovery++
		}

		l := openTest(t, Config{Dir: dir, SegmentSize: crashSegSize}, Start{})
		for _, w := range acked {
			checkWritten(t, l, w)
		}
		seen := checkLog(t, l)
		if len(seen) < len(acked) {
			t.Fatalf("iteration %d: %d records in the log, %d acknowledged", iter, len(seen), len(acked))
		}
		t.Logf("iteration %d (sync=%v): %d new acks, %d acknowledged in all, %d records, %d segments",
			iter, syncMode, newAcks, len(acked), len(seen), len(l.Segments()))
		if err := l.Close(); err != nil {
			t.Fatal(err)
		}
	}
	if len(acked) == 0 {
		t.Fatal("the writer never acknowledged anything")
	}
	t.Logf("%d iterations, %d killed before recovery finished, %d records acknowledged", n, killedInRecovery, len(acked))
}

// TestPowerLossCrashFS appends, flushes at random points and simulates power
// losses (torn, reordered and zeroed unsynced tails, lost directory entries)
// through vfs.CrashFS, several times on each log. After each recovery every
// durable record (flushed; in sync mode, acknowledged) must be there intact,
// nothing invalid may be served, and sequences must continue without
// duplicates or gaps.
func TestPowerLossCrashFS(t *testing.T) {
	rng := rand.New(rand.NewSource(time.Now().UnixNano()))
	n := iterations(24, 400)
	for iter := 0; iter < n; iter++ {
		syncMode := iter%2 == 1
		dir := memTempDir(t)
		cfs := vfs.NewCrashFS(vfs.Default())
		durable := map[int64]written{} // must survive every later crash
		start := Start{}
		for cycle := 0; cycle < 4; cycle++ {
			l := openTest(t, Config{FS: cfs, Dir: dir, SegmentSize: 16 << 10, FlushSync: syncMode, FlushInterval: time.Hour}, start)
			for _, w := range durable {
				checkWritten(t, l, w)
			}
			// Everything recovered is on "disk" now, hence durable.
			for off, r := range checkLog(t, l) {
				if _, ok := durable[off]; !ok {
					durable[off] = written{Appended: Appended{Offset: off, Size: r.Size, Sequence: r.Sequence,
						HeaderSize: int16(0)}, subject: string(r.Subject), crc: uint32(r.PayloadCRC)}
				}
			}
			for off, w := range durable { // fill in what checkWritten needs
				if w.HeaderSize == 0 {
					rec, err := l.Read(off, w.Size)
					if err != nil {
						t.Fatal(err)
					}
					w.HeaderSize, w.Timestamp = rec.HeaderSize, rec.Timestamp
					rec.Release()
					durable[off] = w
				}
			}
			if syncMode {
				var mu sync.Mutex
				var wg sync.WaitGroup
				for g := 0; g < 4; g++ {
					wg.Add(1)
					go func(r *rand.Rand) {
						defer wg.Done()
						for i := 0; i < 10; i++ {
							ws := appendRandom(t, l, r, crashSubjects, 1+r.Intn(3))
							mu.Lock()
							for _, w := range ws {
								durable[w.Offset] = w
							}
							mu.Unlock()
						}
					}(rand.New(rand.NewSource(rng.Int63())))
				}
				wg.Wait()
			} else {
				var pending []written
				for i := 0; i < 40; i++ {
					pending = append(pending, appendRandom(t, l, rng, crashSubjects, 1+rng.Intn(3))...)
					if rng.Intn(8) == 0 {
						if err := l.Flush(); err != nil {
							t.Fatal(err)
						}
						for _, w := range pending {
							durable[w.Offset] = w
						}
						pending = nil
					}
				}
			}
			// Half the time, reopen from a checkpoint taken at a durable record.
			start = Start{}
			if len(durable) > 0 && rng.Intn(2) == 0 {
				var offs []int64
				for off := range durable {
					offs = append(offs, off)
				}
				start.Offset = offs[rng.Intn(len(offs))]
				start.MaxSequences = map[string]int64{}
				for off, w := range durable {
					if off < start.Offset {
						start.MaxSequences[w.subject] = max(start.MaxSequences[w.subject], w.Sequence)
					}
				}
			}
			opts := vfs.CrashOptions{
				TornTail:       rng.Intn(2) == 0,
				ReorderedTail:  rng.Intn(3) == 0,
				ZeroedTail:     rng.Intn(2) == 0,
				UnsyncedDirOps: rng.Intn(2) == 0,
			}
			if err := cfs.Crash(rng, opts); err != nil {
				t.Fatal(err)
			}
			l.Close() // reaches only the replaced files
		}
		l := openTest(t, Config{FS: cfs, Dir: dir, SegmentSize: 16 << 10}, start)
		for _, w := range durable {
			checkWritten(t, l, w)
		}
		checkLog(t, l)
		// Sequences continue after recovery.
		for _, s := range crashSubjects {
			next := l.NextSequence(s)
			out, err := l.Append(context.Background(), []Message{{Subject: s, Payload: []byte("after")}})
			if err != nil || out[0].Sequence != next {
				t.Fatalf("append after recovery: %+v %v, want sequence %d", out, err, next)
			}
		}
		checkLog(t, l)
		l.Close()
	}
}

// memTempDir is a temporary directory on tmpfs when there is one: CrashFS
// decides what survives a crash, so real fsyncs would only slow tests down.
func memTempDir(t *testing.T) string {
	dir, err := os.MkdirTemp("/dev/shm", "qmq-messagelog-test-")
	if err != nil {
		return t.TempDir()
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	return dir
}

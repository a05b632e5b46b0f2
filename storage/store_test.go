package storage

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"hash/crc32"
	"math/rand/v2"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/qmq-go/qmq/storage/actionlog"
	"github.com/qmq-go/qmq/storage/messagelog"
	"github.com/qmq-go/qmq/storage/pulllog"
)

func testConfig(root string) Config {
	c := DefaultConfig(root)
	c.MessageSegmentSize = 1 << 20
	c.ActionSegmentSize = 1 << 20
	c.ConsumerLogSegmentUnit = 1000
	c.FlushInterval = 20 * time.Millisecond
	c.MessageCheckpointInterval = 100
	c.CheckpointMaxAge = 200 * time.Millisecond
	c.CheckpointMinGap = 0
	c.RetentionCheckInterval = time.Hour // tests call applyRetention directly
	return c
}

func openStore(t *testing.T, cfg Config) *Store {
	t.Helper()
	s, err := Open(cfg)
	if err != nil {
		t.Fatalf("open store: %v", err)
	}
	return s
}

func payloadFor(subject string, seq int64) []byte {
	return []byte(fmt.Sprintf("%s#%d:%s", subject, seq, strings.Repeat("x", int(seq%300))))
}

func appendN(t *testing.T, s *Store, subjects []string, n int) {
	t.Helper()
	ctx := context.Background()
	for i := 0; i < n; i++ {
		subject := subjects[i%len(subjects)]
		seq := s.msgs.NextSequence(subject)
		res, err := s.Append(ctx, []messagelog.Message{{Subject: subject, Payload: payloadFor(subject, seq)}})
		if err != nil {
			t.Fatal(err)
		}
		if res[0].Sequence != seq {
			t.Fatalf("sequence %d, want %d", res[0].Sequence, seq)
		}
	}
}

func checkAll(t *testing.T, s *Store, subjects []string, perSubject map[string]int64) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := s.WaitDispatched(ctx, s.MessageLogEnd()); err != nil {
		t.Fatal(err)
	}
	for _, subject := range subjects {
		if got := s.MaxSequence(subject); got != perSubject[subject]-1 {
			t.Fatalf("%s: max sequence %d, want %d", subject, got, perSubject[subject]-1)
		}
		for seq := int64(0); seq < perSubject[subject]; seq++ {
			rec, err := s.Read(subject, seq)
			if err != nil {
				t.Fatalf("read %s/%d: %v", subject, seq, err)
			}
			if string(rec.Payload) != string(payloadFor(subject, seq)) || string(rec.Subject) != subject || rec.Sequence != seq {
				t.Fatalf("read %s/%d: got subject %q seq %d payload %.40q", subject, seq, rec.Subject, rec.Sequence, rec.Payload)
			}
			rec.Release()
		}
	}
}

func TestStoreAppendReadReopen(t *testing.T) {
	cfg := testConfig(t.TempDir())
	s := openStore(t, cfg)
	subjects := []string{"order.created", "%RETRY%order.created%cg", "pay/done", "中文"}
	appendN(t, s, subjects, 2000) // several 1 MiB segments
	want := map[string]int64{}
	for _, sub := range subjects {
		want[sub] = 500
	}
	checkAll(t, s, subjects, want)
	if _, err := s.Read("order.created", 500); !errors.Is(err, ErrNotFound) {
		t.Fatalf("read past the end: %v", err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s = openStore(t, cfg)
	defer s.Close()
	checkAll(t, s, subjects, want)
	appendN(t, s, subjects, 400) // sequences continue after a restart
	for _, sub := range subjects {
		want[sub] = 600
	}
	checkAll(t, s, subjects, want)
}

func TestStoreChangedWakesWaiters(t *testing.T) {
	s := openStore(t, testConfig(t.TempDir()))
	defer s.Close()
	ch := s.Changed("s1")
	done := make(chan struct{})
	go func() {
		<-ch
		close(done)
	}()
	appendN(t, s, []string{"s1"}, 1)
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("Changed did not fire after an append")
	}
}

func TestStoreActionsSurviveRestart(t *testing.T) {
	cfg := testConfig(t.TempDir())
	s := openStore(t, cfg)
	appendN(t, s, []string{"s"}, 10)
	pull := actionlog.Action{Type: actionlog.Pull, Subject: "s", Group: "g", ConsumerID: "c1", Timestamp: time.Now().UnixMilli(), FirstPullSeq: 0, LastPullSeq: 4, FirstMsgSeq: 0, LastMsgSeq: 4}
	ack := actionlog.Action{Type: actionlog.RangeAck, Subject: "s", Group: "g", ConsumerID: "c1", Timestamp: time.Now().UnixMilli(), FirstPullSeq: 0, LastPullSeq: 2}
	if err := s.ApplyActions([]actionlog.Action{pull, ack}); err != nil {
		t.Fatal(err)
	}
	check := func(s *Store) {
		t.Helper()
		s.PullLog(func(tb *pulllog.Table) {
			p, ok := tb.Consumer("s", "g", "c1")
			if !ok || p.PullSeq != 4 || p.AckSeq != 2 {
				t.Fatalf("progress %+v %v", p, ok)
			}
			if m, ok := tb.GroupMaxPulledMsgSeq("s", "g"); !ok || m != 4 {
				t.Fatalf("group max pulled %d %v", m, ok)
			}
			if seq, ok := tb.Lookup("s", "g", "c1", 3); !ok || seq != 3 {
				t.Fatalf("lookup %d %v", seq, ok)
			}
		})
	}
	check(s)
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s = openStore(t, cfg) // from the action checkpoint written by Close
	check(s)
	if err := s.ApplyActions([]actionlog.Action{{Type: actionlog.RangeAck, Subject: "s", Group: "g", ConsumerID: "c1", FirstPullSeq: 3, LastPullSeq: 4}}); err != nil {
		t.Fatal(err)
	}
	s.PullLog(func(tb *pulllog.Table) {
		if p, _ := tb.Consumer("s", "g", "c1"); p.AckSeq != 4 {
			t.Fatalf("ack after restart: %+v", p)
		}
	})
	s.Close()
}

// TestHelperStoreWriter is the child process of TestStoreKill9: it appends
// forever, printing "subject seq crc" after each acknowledged append, and
// applies a pull action every 10 messages, printing "action seq".
func TestHelperStoreWriter(t *testing.T) {
	root := os.Getenv("QMQ_STORE_WRITER_ROOT")
	if root == "" {
		t.Skip("child process of TestStoreKill9")
	}
	cfg := testConfig(root)
	cfg.FlushSync = os.Getenv("QMQ_STORE_WRITER_SYNC") == "1"
	if os.Getenv("QMQ_STORE_WRITER_FEW_OPEN") == "1" {
		// Fewer open consumer logs than subjects: logs are closed without
		// a sync and reopened at their end (consumerlog release.go).
		cfg.MaxOpenConsumerLogs = 4
	}
	s, err := Open(cfg)
	if err != nil {
		fmt.Println("open failed:", err)
		os.Exit(3)
	}
	out := bufio.NewWriter(os.Stdout)
	subjects := []string{"a", "b", "c", "d", "e"}
	rng := rand.New(rand.NewPCG(uint64(os.Getpid()), 1))
	ctx := context.Background()
	for i := 0; ; i++ {
		subject := subjects[rng.IntN(len(subjects))]
		if rng.IntN(4) == 0 {
			// Cold subjects, most of them untouched between two
			// checkpoints: what the incremental capture leaves out.
			subject = "cold." + strconv.Itoa(rng.IntN(300))
		}
		body := make([]byte, 1+rng.IntN(3000))
		for j := range body {
			body[j] = byte(rng.Uint32())
		}
		res, err := s.Append(ctx, []messagelog.Message{{Subject: subject, Payload: body}})
		if err != nil {
			fmt.Fprintln(out, "append failed:", err)
			out.Flush()
			os.Exit(4)
		}
		fmt.Fprintf(out, "m %s %d %d\n", subject, res[0].Sequence, crc32.ChecksumIEEE(body))
		if i%10 == 9 {
			seq := int64(i / 10)
			if err := s.ApplyActions([]actionlog.Action{{Type: actionlog.Pull, Subject: "a", Group: "g", ConsumerID: "c", FirstPullSeq: seq, LastPullSeq: seq, FirstMsgSeq: seq, LastMsgSeq: seq}}); err != nil {
				os.Exit(5)
			}
			fmt.Fprintf(out, "p %d\n", seq)
		}
		out.Flush()
	}
}

// TestStoreKill9 kills a writing process at random moments and checks that
// every append it acknowledged is readable by (subject, sequence) after
// recovery, intact, and that pull actions it applied are in the pull log.
func TestStoreKill9(t *testing.T) {
	iterations := 6
	if os.Getenv("QMQ_LONG_TESTS") != "" {
		iterations = 40
	}
	root := t.TempDir()
	acked := map[string]map[int64]uint32{}
	maxPull := int64(-1)
	rng := rand.New(rand.NewPCG(42, 7))
	for iter := 0; iter < iterations; iter++ {
		cmd := exec.Command(os.Args[0], "-test.run=^TestHelperStoreWriter$", "-test.v=false")
		cmd.Env = append(os.Environ(), "QMQ_STORE_WRITER_ROOT="+root, "QMQ_STORE_WRITER_SYNC="+strconv.Itoa(iter%2),
			"QMQ_STORE_WRITER_FEW_OPEN="+strconv.Itoa(iter/2%2))
		stdout, err := cmd.StdoutPipe()
		if err != nil {
			t.Fatal(err)
		}
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		lines := make(chan string, 1024)
		go func() {
			sc := bufio.NewScanner(stdout)
			for sc.Scan() {
				lines <- sc.Text()
			}
			close(lines)
		}()
		time.AfterFunc(time.Duration(200+rng.IntN(800))*time.Millisecond, func() { _ = cmd.Process.Signal(syscall.SIGKILL) })
		for line := range lines {
			f := strings.Fields(line)
			switch {
			case len(f) == 4 && f[0] == "m":
				seq, _ := strconv.ParseInt(f[2], 10, 64)
				crc, _ := strconv.ParseUint(f[3], 10, 32)
				if acked[f[1]] == nil {
					acked[f[1]] = map[int64]uint32{}
				}
				acked[f[1]][seq] = uint32(crc)
			case len(f) == 2 && f[0] == "p":
				maxPull, _ = strconv.ParseInt(f[1], 10, 64)
			default:
				t.Fatalf("writer: %s", line)
			}
		}
		_ = cmd.Wait()

		s := openStore(t, testConfig(root))
		total := 0
		for subject, seqs := range acked {
			for seq, crc := range seqs {
				rec, err := s.Read(subject, seq)
				if err != nil {
					t.Fatalf("iteration %d: acknowledged %s/%d lost: %v", iter, subject, seq, err)
				}
				if got := crc32.ChecksumIEEE(rec.Payload); got != crc {
					t.Fatalf("iteration %d: %s/%d corrupted", iter, subject, seq)
				}
				rec.Release()
				total++
			}
		}
		s.PullLog(func(tb *pulllog.Table) {
			if maxPull >= 0 {
				if m, ok := tb.GroupMaxPulledMsgSeq("a", "g"); !ok || m < maxPull {
					t.Fatalf("iteration %d: pull log lost actions: max pulled %d, acknowledged %d", iter, m, maxPull)
				}
			}
		})
		if err := s.Close(); err != nil {
			t.Fatal(err)
		}
		t.Logf("iteration %d: %d acknowledged messages verified", iter, total)
	}
}

func TestRetention(t *testing.T) {
	cfg := testConfig(t.TempDir())
	cfg.MessageSegmentSize = 256 << 10
	cfg.Registerer = prometheus.NewRegistry()
	s := openStore(t, cfg)
	defer s.Close()
	appendN(t, s, []string{"s"}, 3000) // about 4 segments of 1 MiB
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := s.WaitDispatched(ctx, s.MessageLogEnd()); err != nil {
		t.Fatal(err)
	}
	segs := s.msgs.Segments()
	if len(segs) < 3 {
		t.Fatalf("want several segments, have %d", len(segs))
	}
	old := time.Now().Add(-100 * time.Hour)
	for _, seg := range segs {
		if err := os.Chtimes(seg.Path, old, old); err != nil {
			t.Fatal(err)
		}
	}
	// A consumer group that has pulled nothing acked: with KeepUnacked its messages are kept.
	if err := s.ApplyActions([]actionlog.Action{{Type: actionlog.Pull, Subject: "s", Group: "slow", ConsumerID: "c", FirstPullSeq: 0, LastPullSeq: 0, FirstMsgSeq: 0, LastMsgSeq: 0}}); err != nil {
		t.Fatal(err)
	}
	s.cfg.KeepUnacked = true
	// No ceiling for this part: the machine's real disk decides the ratio,
	// and a disk above the default 0.90 (other work writing gigabytes) would
	// rightly delete the unacked segments (the part below tests that).
	s.cfg.DiskMaxUsedRatio = 1
	s.applyRetention(time.Now())
	if got := len(s.msgs.Segments()); got != len(segs) {
		t.Fatalf("KeepUnacked: %d segments left, want all %d", got, len(segs))
	}
	if metricValue(t, s.m.retentionKept) == 0 {
		t.Fatal("kept-segments metric not set")
	}
	// The disk ceiling wins over KeepUnacked: pretend the ceiling is half of what is used now.
	used, err := diskUsedRatio(cfg.Root)
	if err != nil {
		t.Fatal(err)
	}
	s.cfg.DiskMaxUsedRatio = used / 2
	s.applyRetention(time.Now())
	if got := len(s.msgs.Segments()); got != 1 {
		t.Fatalf("disk ceiling: %d segments left, want only the active one", got)
	}
	if metricValue(t, s.m.retentionForced) != 1 {
		t.Fatal("forced-deletion metric not incremented")
	}
	if _, err := s.Read("s", 0); !errors.Is(err, ErrNotFound) {
		t.Fatalf("deleted message: %v", err)
	}
	last := s.MaxSequence("s")
	if rec, err := s.Read("s", last); err != nil {
		t.Fatalf("newest message must survive: %v", err)
	} else {
		rec.Release()
	}
}

func metricValue(t *testing.T, c prometheus.Metric) float64 {
	t.Helper()
	var m dto.Metric
	if err := c.Write(&m); err != nil {
		t.Fatal(err)
	}
	if m.Gauge != nil {
		return m.Gauge.GetValue()
	}
	return m.Counter.GetValue()
}

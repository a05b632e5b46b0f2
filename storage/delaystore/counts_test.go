package delaystore

import (
	"bufio"
	"context"
	"fmt"
	"maps"
	"math/rand"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// oracleCounts counts the pending messages per subject the slow way, from
// the two logs alone: every message-log record whose sequence has no
// dispatch record. It knows nothing of buckets, skips or counts files.
func oracleCounts(t *testing.T, s *Store) map[string]int64 {
	t.Helper()
	gone := map[int64]bool{}
	if _, err := scan(s.disp, s.disp.MinOffset(), -1, dispRecordSize, dispatchUnit, func(_ int64, b []byte) error {
		r, _ := decodeDisp(b)
		gone[r.seq] = true
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	out := map[string]int64{}
	if _, err := scan(s.msgs, s.msgs.MinOffset(), -1, recHeaderSize, messageUnit, func(_ int64, b []byte) error {
		rec, _ := decodeRecord(b, false)
		if !gone[rec.seq] {
			out[string(rec.subject)]++
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	return out
}

func countsOf(s *Store) map[string]int64 {
	out := map[string]int64{}
	for _, st := range s.Subjects() {
		out[st.Subject] = st.Pending
	}
	return out
}

// checkCounts compares the store's counts with want and with the oracle,
// and their sum with Stats.Pending.
func checkCounts(t *testing.T, s *Store, want map[string]int64, when string) {
	t.Helper()
	got := countsOf(s)
	if want != nil && !maps.Equal(got, want) {
		t.Fatalf("%s: pending per subject %v, want %v", when, got, want)
	}
	if o := oracleCounts(t, s); !maps.Equal(got, o) {
		t.Fatalf("%s: pending per subject %v, but the logs say %v", when, got, o)
	}
	sum := int64(0)
	for _, n := range got {
		sum += n
	}
	if st := s.Stats(); st.Pending != sum || st.Subjects != len(got) {
		t.Fatalf("%s: Stats says %d pending in %d subjects, the subjects %d in %d", when, st.Pending, st.Subjects, sum, len(got))
	}
}

func countMsg(subject string, i int, at int64) Message {
	return Message{ScheduleTime: at, Subject: subject, MessageID: fmt.Sprintf("%s-%d", subject, i), Payload: []byte("p" + strconv.Itoa(i))}
}

// TestPendingCounts: appends of three subjects in the loaded window and far
// beyond it, deliveries, cancels on both sides of the window; the counts
// and the earliest due times, after a Close and Open, and after the
// counts files are damaged or gone.
func TestPendingCounts(t *testing.T) {
	c := newClock(t0)
	dir := t.TempDir()
	cfg := testConfig(t, dir, c)
	s := mustOpen(t, cfg)
	var msgs []Message
	for i := 0; i < 10; i++ {
		msgs = append(msgs, countMsg("a", i, c.At(time.Duration(i)*time.Second)))            // in the window
		msgs = append(msgs, countMsg("b", i, c.At(48*time.Hour+time.Duration(i)*time.Hour))) // far beyond it
	}
	for i := 0; i < 5; i++ {
		msgs = append(msgs, countMsg("c", i, c.At(time.Duration(i)*time.Hour))) // both
	}
	if _, err := s.Append(msgs); err != nil {
		t.Fatal(err)
	}
	checkCounts(t, s, map[string]int64{"a": 10, "b": 10, "c": 5}, "after append")
	subs := s.Subjects()
	if subs[1].Subject != "b" || subs[1].EarliestDue != c.At(48*time.Hour) || !subs[1].EarliestExact {
		t.Fatalf("b's earliest: %+v", subs[1])
	}

	// a-0..a-4 and c-0 are due; a-1 is handed out but not marked.
	c.Add(4 * time.Second)
	es := drain(t, s, 30*time.Millisecond)
	if len(es) != 6 {
		t.Fatalf("%d due, want 6", len(es))
	}
	var mark []Entry
	held := 0
	for _, e := range es {
		m, err := s.Read(e)
		if err != nil {
			t.Fatal(err)
		}
		if m.MessageID == "a-1" {
			held++
		} else {
			mark = append(mark, e)
		}
	}
	if held != 1 {
		t.Fatalf("a-1 due %d times", held)
	}
	if err := s.MarkDispatched(mark); err != nil {
		t.Fatal(err)
	}
	checkCounts(t, s, map[string]int64{"a": 6, "b": 10, "c": 4}, "after dispatch") // a-1 still pending
	for _, id := range []string{"a-7", "b-0", "b-9", "c-4"} {
		if ok, err := s.Cancel(id[:1], id); !ok || err != nil {
			t.Fatalf("cancel %s: %v %v", id, ok, err)
		}
	}
	if ok, _ := s.Cancel("a", "a-1"); ok {
		t.Fatal("cancelled a message handed out")
	}
	checkCounts(t, s, map[string]int64{"a": 5, "b": 8, "c": 3}, "after cancel")
	subs = s.Subjects()
	// b-0 was alone in its bucket: the earliest is b-1's, exact.
	if b := subs[1]; b.EarliestDue != t0.Add(49*time.Hour).UnixMilli() || !b.EarliestExact {
		t.Fatalf("b's earliest after cancelling b-0: %+v", b)
	}
	// a's earliest was delivered: a bound no later than the next (a-1).
	if a := subs[0]; a.EarliestDue > t0.Add(time.Second).UnixMilli() {
		t.Fatalf("a's earliest after delivering a-0: %+v", a)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}

	s = mustOpen(t, cfg)
	checkCounts(t, s, map[string]int64{"a": 5, "b": 8, "c": 3}, "after reopen") // a-1 back in the wheel, still pending
	if files := countsFiles(t, dir); files == 0 {
		t.Fatal("no counts file written for the buckets beyond the window")
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	// Damaged or missing counts files only cost a scan.
	for i, f := range countsFileList(t, dir) {
		if i%2 == 0 {
			os.WriteFile(f, []byte("qmq-delay-pending 1\nend 0 lastseq -1 removed 0\n#crc32:00000000\n"), 0o644)
		} else {
			os.Remove(f)
		}
	}
	s = mustOpen(t, cfg)
	defer s.Close()
	checkCounts(t, s, map[string]int64{"a": 5, "b": 8, "c": 3}, "after damaging the counts files")
	// Everything delivered: nothing pending.
	c.Add(60 * 24 * time.Hour)
	if err := s.loadDue(); err != nil {
		t.Fatal(err)
	}
	all := drain(t, s, 30*time.Millisecond)
	if err := s.MarkDispatched(all); err != nil {
		t.Fatal(err)
	}
	checkCounts(t, s, map[string]int64{}, "after delivering everything")
}

func countsFileList(t *testing.T, dir string) []string {
	t.Helper()
	m, err := filepath.Glob(filepath.Join(dir, scheduleDir, "*", countsFile))
	if err != nil {
		t.Fatal(err)
	}
	return m
}

func countsFiles(t *testing.T, dir string) int { return len(countsFileList(t, dir)) }

// TestPendingCountsReplica: a slave copying the master's logs (dispatch
// records before and after their messages) counts what the master counts,
// also after both reopen.
func TestPendingCountsReplica(t *testing.T) {
	c := newClock(t0)
	mcfg := testConfig(t, t.TempDir(), c)
	mcfg.DispatchSegmentSize = 32 * 16
	scfg := mcfg
	scfg.Root = t.TempDir()
	master, slave := mustOpen(t, mcfg), mustOpen(t, scfg)
	var msgs []Message
	for i := 0; i < 300; i++ {
		at := c.At(time.Duration(i%60) * time.Second)
		if i%3 == 0 {
			at = c.At(time.Duration(i) * time.Hour) // beyond the window
		}
		msgs = append(msgs, countMsg(fmt.Sprintf("s%d", i%4), i, at))
	}
	if _, err := master.Append(msgs[:150]); err != nil {
		t.Fatal(err)
	}
	copyLog(t, master, slave, MessageLog)
	if _, err := master.Append(msgs[150:]); err != nil {
		t.Fatal(err)
	}
	c.Add(30 * time.Second)
	es := drain(t, master, 30*time.Millisecond)
	if err := master.MarkDispatched(es); err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 300; i += 7 {
		if _, err := master.Cancel(fmt.Sprintf("s%d", i%4), fmt.Sprintf("s%d-%d", i%4, i)); err != nil {
			t.Fatal(err)
		}
	}
	// The dispatch records of messages the slave does not have yet come first.
	copyLog(t, master, slave, DispatchLog)
	copyLog(t, master, slave, MessageLog)
	checkCounts(t, master, nil, "master")
	checkCounts(t, slave, countsOf(master), "slave")
	for _, s := range []*Store{master, slave} {
		if err := s.Close(); err != nil {
			t.Fatal(err)
		}
	}
	master, slave = mustOpen(t, mcfg), mustOpen(t, scfg)
	defer master.Close()
	defer slave.Close()
	checkCounts(t, master, nil, "master reopened")
	checkCounts(t, slave, countsOf(master), "slave reopened")
}

const countsKillDirEnv = "QMQ_DELAYSTORE_COUNTS_KILL_DIR"

func countsKillConfig(dir string) Config {
	cfg := killConfig(dir)
	cfg.FlushSync = false
	cfg.FlushInterval = 20 * time.Millisecond
	return cfg
}

// TestHelperCountsKill is the process TestPendingCountsKill9 kills: it
// appends messages of five subjects due within seconds or days, delivers
// the due ones and cancels some, without end.
func TestHelperCountsKill(t *testing.T) {
	dir := os.Getenv(countsKillDirEnv)
	if dir == "" {
		t.Skip("helper process of TestPendingCountsKill9")
	}
	s, err := Open(countsKillConfig(dir))
	if err != nil {
		fmt.Printf("error %v\n", err)
		os.Exit(2)
	}
	go func() {
		for {
			es, err := s.Due(context.Background(), 20)
			if err != nil {
				os.Exit(2)
			}
			if err := s.MarkDispatched(es); err != nil {
				os.Exit(2)
			}
		}
	}()
	fmt.Println("ready")
	rng := rand.New(rand.NewSource(time.Now().UnixNano()))
	for i := 0; ; i++ {
		batch := make([]Message, 1+rng.Intn(20))
		for j := range batch {
			d := time.Duration(rng.Intn(3000)) * time.Millisecond
			if rng.Intn(2) == 0 {
				d = time.Duration(rng.Intn(72)) * time.Hour // beyond the window
			}
			batch[j] = countMsg(fmt.Sprintf("subj.%d", rng.Intn(5)), i*100+j+os.Getpid()*1000000, time.Now().Add(d).UnixMilli())
		}
		if _, err := s.Append(batch); err != nil {
			fmt.Printf("error %v\n", err)
			os.Exit(2)
		}
		if rng.Intn(4) == 0 {
			m := batch[rng.Intn(len(batch))]
			if _, err := s.Cancel(m.Subject, m.MessageID); err != nil {
				fmt.Printf("error %v\n", err)
				os.Exit(2)
			}
		}
		if i%100 == 0 {
			fmt.Println("progress", i)
		}
	}
}

// TestPendingCountsKill9: a process appending, delivering and cancelling
// is killed with SIGKILL at a random moment, several times over one store;
// each Open counts exactly what the logs hold (the counts files lag by up
// to countsSaveEvery and may reflect fewer dispatch records than the log).
func TestPendingCountsKill9(t *testing.T) {
	if testing.Short() {
		t.Skip("kill -9 runs take seconds")
	}
	dir := t.TempDir()
	rng := rand.New(rand.NewSource(time.Now().UnixNano()))
	for round := 0; round < 4; round++ {
		cmd := exec.Command(os.Args[0], "-test.run=^TestHelperCountsKill$")
		cmd.Env = append(os.Environ(), countsKillDirEnv+"="+dir)
		out, err := cmd.StdoutPipe()
		if err != nil {
			t.Fatal(err)
		}
		cmd.Stderr = os.Stderr
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		sc := bufio.NewScanner(out)
		if !sc.Scan() || sc.Text() != "ready" {
			cmd.Process.Kill()
			cmd.Wait()
			t.Fatalf("round %d: helper said %q", round, sc.Text())
		}
		go func() {
			for sc.Scan() {
				if strings.HasPrefix(sc.Text(), "error") {
					t.Errorf("helper: %s", sc.Text())
				}
			}
		}()
		// Past countsSaveEvery at times, so that some counts files are written.
		time.Sleep(time.Duration(1000+rng.Intn(6000)) * time.Millisecond)
		if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
			t.Fatal(err)
		}
		cmd.Wait()
		s, err := Open(countsKillConfig(dir))
		if err != nil {
			t.Fatalf("round %d: open after kill -9: %v", round, err)
		}
		checkCounts(t, s, nil, fmt.Sprintf("round %d after kill -9", round))
		if st := s.Stats(); st.Pending == 0 {
			t.Fatalf("round %d: nothing pending: %+v", round, st)
		}
		if err := s.Close(); err != nil {
			t.Fatal(err)
		}
	}
}

// TestPendingCountsStaleFiles: the counts files of two buckets beyond the
// window are left behind by what happened after they were written (records
// appended to one, a cancel in the other), then the store "crashes" (its
// files copied while open); Open counts the first from its file plus the
// appended records, the second afresh, and both match the logs.
func TestPendingCountsStaleFiles(t *testing.T) {
	c := newClock(t0)
	dir := t.TempDir()
	cfg := testConfig(t, dir, c)
	s := mustOpen(t, cfg)
	var msgs []Message
	for i := 0; i < 10; i++ {
		subject := []string{"p", "q"}[i%2]
		msgs = append(msgs, countMsg(subject, i, c.At(48*time.Hour+time.Duration(i)*time.Minute)), countMsg(subject, 100+i, c.At(72*time.Hour+time.Duration(i)*time.Minute)))
	}
	if _, err := s.Append(msgs); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if n := countsFiles(t, dir); n != 2 {
		t.Fatalf("%d counts files after Close, want 2", n)
	}
	s = mustOpen(t, cfg)
	if _, err := s.Append([]Message{countMsg("p", 20, c.At(48*time.Hour+30*time.Minute)), countMsg("r", 21, c.At(48*time.Hour+31*time.Minute))}); err != nil {
		t.Fatal(err)
	}
	if ok, err := s.Cancel("q", "q-101"); !ok || err != nil {
		t.Fatalf("cancel: %v %v", ok, err)
	}
	want := map[string]int64{"p": 11, "q": 9, "r": 1}
	checkCounts(t, s, want, "before the crash")
	crashed := t.TempDir()
	copyTree(t, dir, crashed)
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	ccfg := cfg
	ccfg.Root = crashed
	s = mustOpen(t, ccfg)
	defer s.Close()
	checkCounts(t, s, want, "after the crash")
	// The earliest of each subject, from the 48-hour bucket's counts file
	// (p-0, q-1) and its appended records.
	for _, st := range s.Subjects() {
		want := map[string]time.Duration{"p": 48 * time.Hour, "q": 48*time.Hour + time.Minute, "r": 48*time.Hour + 31*time.Minute}[st.Subject]
		if st.EarliestDue != t0.Add(want).UnixMilli() || !st.EarliestExact {
			t.Errorf("%s's earliest: %+v, want %v", st.Subject, st, t0.Add(want))
		}
	}
}

// TestSubjectOfAfterRetention: the subject of a sequence is read from the
// message log while it holds the record, and found in the bucket once
// retention deleted that segment (a slave applying a replicated cancel).
func TestSubjectOfAfterRetention(t *testing.T) {
	c := newClock(t0)
	cfg := testConfig(t, t.TempDir(), c)
	cfg.MessageSegmentSize = 160 << 10
	cfg.MaxMessageSize = 1 << 10
	s := mustOpen(t, cfg)
	defer s.Close()
	var msgs []Message
	for i := 0; i < 8000; i++ {
		msgs = append(msgs, countMsg(fmt.Sprintf("s%d", i%7), i, c.At(48*time.Hour+time.Duration(i)*time.Second)))
	}
	if _, err := s.Append(msgs); err != nil {
		t.Fatal(err)
	}
	segs := s.msgs.Segments()
	if len(segs) < 2 {
		t.Fatalf("%d message-log segments, want several", len(segs))
	}
	first := segs[0].BaseOffset // the record of msgs[0]
	b := s.getBucket(s.bucketID(msgs[0].ScheduleTime))
	s.replayMu.Lock()
	defer s.replayMu.Unlock()
	if got, err := s.subjectOf(b, first); err != nil || string(got) != "s0" {
		t.Fatalf("from the message log: %q %v", got, err)
	}
	if _, err := s.msgs.DeleteSegmentsBefore(segs[1].BaseOffset); err != nil {
		t.Fatal(err)
	}
	if got, err := s.subjectOf(b, first); err != nil || string(got) != "s0" {
		t.Fatalf("from the bucket: %q %v", got, err)
	}
	if _, err := s.subjectOf(b, first+1); err == nil {
		t.Fatal("found a subject for a sequence that is no record")
	}
}

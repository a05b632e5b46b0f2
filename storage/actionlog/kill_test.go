package actionlog

import (
	"bufio"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/qmq-go/qmq/storage/vfs"
)

const killChildEnv = "QMQ_ACTIONLOG_KILL_CHILD_DIR"

// killStream is the deterministic stream of actions of TestKill9, one at a
// time so that a restarted writer can skip what survived.
func killStream(seed uint64) func() Action {
	r := rand.New(rand.NewPCG(seed, 1))
	return func() Action { return randomAction(r) }
}

// TestKill9Child is the writer process of TestKill9: it skips the actions
// already in the log, then appends the rest of the stream in random batches
// forever, printing the total number of actions after each Append returns.
func TestKill9Child(t *testing.T) {
	dir := os.Getenv(killChildEnv)
	if dir == "" {
		t.Skip("run by TestKill9")
	}
	seed, _ := strconv.ParseUint(os.Getenv(killChildEnv+"_SEED"), 10, 64)
	l, err := Open(Config{Dir: dir, SegmentSize: testSegSize, FlushInterval: 2 * time.Millisecond})
	if err != nil {
		fmt.Println("error", err)
		os.Exit(1)
	}
	next := killStream(seed)
	n := 0
	for it := l.Iterate(l.MinOffset()); ; n++ {
		if _, _, ok := it.Next(); !ok {
			break
		}
		next()
	}
	sizes := rand.New(rand.NewPCG(seed, uint64(n)))
	w := bufio.NewWriter(os.Stdout)
	for {
		b := make([]Action, 1+sizes.IntN(8))
		for i := range b {
			b[i] = next()
		}
		if _, err := l.Append(b); err != nil {
			fmt.Fprintln(w, "error", err)
			w.Flush()
			os.Exit(1)
		}
		n += len(b)
		fmt.Fprintln(w, n)
		w.Flush()
	}
}

// TestKill9 kills a writer process with SIGKILL at random points, several
// times over the same directory. Without a power loss the page cache keeps
// every byte written through the mapping, so every action whose Append
// returned must be read back after recovery, followed by nothing but (at
// most) actions of the batch being written at the kill.
func TestKill9(t *testing.T) {
	if testing.Short() {
		t.Skip("spawns processes")
	}
	for iter := range 6 {
		dir := t.TempDir()
		seed := uint64(iter)
		next := killStream(seed)
		var seq []Action
		for round := range 4 {
			cmd := exec.Command(os.Args[0], "-test.run=^TestKill9Child$", "-test.count=1")
			cmd.Env = append(os.Environ(), killChildEnv+"="+dir, killChildEnv+"_SEED="+strconv.FormatUint(seed, 10))
			out, err := cmd.StdoutPipe()
			if err != nil {
				t.Fatal(err)
			}
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			reported := 0
			sc := bufio.NewScanner(out)
			deadline := time.Now().Add(time.Duration(20+rand.IntN(150)) * time.Millisecond)
			for sc.Scan() {
				n, err := strconv.Atoi(sc.Text())
				if err != nil {
					t.Fatalf("child: %s", sc.Text())
				}
				reported = n
				if time.Now().After(deadline) {
					break
				}
			}
			cmd.Process.Kill()
			cmd.Wait()

			l := openTest(t, vfs.Default(), dir)
			got := actionsOf(readAll(t, l, 0))
			l.Close()
			for len(seq) < len(got) {
				seq = append(seq, next())
			}
			if len(got) < reported {
				t.Fatalf("iter %d round %d: %d actions after kill -9, %d were appended", iter, round, len(got), reported)
			}
			if !slices.Equal(got, seq[:len(got)]) {
				t.Fatalf("iter %d round %d: recovered actions are not the stream's prefix", iter, round)
			}
			if round == 3 {
				t.Logf("iter %d: %d actions after 4 kills", iter, len(got))
			}
		}
	}
}

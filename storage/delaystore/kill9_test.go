package delaystore

import (
	"bufio"
	"context"
	"fmt"
	"math/rand"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"
)

const killDirEnv = "QMQ_DELAYSTORE_KILL_DIR"

func killConfig(dir string) Config {
	cfg := DefaultConfig(dir)
	cfg.MessageSegmentSize = 256 << 10
	cfg.MaxMessageSize = 8 << 10
	cfg.DispatchSegmentSize = 4 << 10
	cfg.SegmentScale = 5 * time.Minute
	cfg.FlushSync = true
	return cfg
}

// TestHelperKillWriter is the process TestCrashKill9 kills: it appends
// messages due within two seconds and delivers them, printing "ack <ids>"
// after Append returned, "due <ids>" before MarkDispatched and "mark <ids>"
// after it returned.
func TestHelperKillWriter(t *testing.T) {
	dir := os.Getenv(killDirEnv)
	if dir == "" {
		t.Skip("helper process of TestCrashKill9")
	}
	s, err := Open(killConfig(dir))
	if err != nil {
		fmt.Printf("error %v\n", err)
		os.Exit(2)
	}
	fmt.Println("ready")
	go func() {
		for {
			es, err := s.Due(context.Background(), 20)
			if err != nil {
				os.Exit(2)
			}
			var ids []string
			for _, e := range es {
				m, err := s.Read(e)
				if err != nil {
					fmt.Printf("error %v\n", err)
					os.Exit(2)
				}
				ids = append(ids, m.MessageID)
			}
			// Printed first: a kill between the mark and its line must not
			// count as a loss.
			os.Stdout.WriteString("due " + strings.Join(ids, " ") + "\n")
			if err := s.MarkDispatched(es); err != nil {
				fmt.Printf("error %v\n", err)
				os.Exit(2)
			}
			os.Stdout.WriteString("mark " + strings.Join(ids, " ") + "\n")
		}
	}()
	rng := rand.New(rand.NewSource(time.Now().UnixNano()))
	for i := 0; ; i++ {
		batch := make([]Message, 1+rng.Intn(4))
		var ids []string
		for j := range batch {
			id := fmt.Sprintf("p%d-%d-%d", os.Getpid(), i, j)
			batch[j] = Message{ScheduleTime: time.Now().Add(time.Duration(rng.Intn(2000)) * time.Millisecond).UnixMilli(),
				Subject: "s", MessageID: id, Payload: payloadOf(id, rng.Intn(2000))}
			ids = append(ids, id)
		}
		if _, err := s.Append(batch); err != nil {
			fmt.Printf("error %v\n", err)
			os.Exit(2)
		}
		os.Stdout.WriteString("ack " + strings.Join(ids, " ") + "\n")
	}
}

// TestCrashKill9 kills the writer with SIGKILL at random moments, always on
// the same store: every acknowledged message is delivered by a later
// generation unless it was handed out for delivery (then it may have been
// marked just before the kill), and nothing marked comes back.
func TestCrashKill9(t *testing.T) {
	dir := t.TempDir()
	acked, marked, handed := map[string]bool{}, map[string]bool{}, map[string]bool{}
	rng := rand.New(rand.NewSource(time.Now().UnixNano()))
	for iter := 0; iter < 8; iter++ {
		cmd := exec.Command(os.Args[0], "-test.run=^TestHelperKillWriter$")
		cmd.Env = append(os.Environ(), killDirEnv+"="+dir)
		out, err := cmd.StdoutPipe()
		if err != nil {
			t.Fatal(err)
		}
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		lines := make(chan string, 1024)
		go func() {
			sc := bufio.NewScanner(out)
			for sc.Scan() {
				lines <- sc.Text()
			}
			close(lines)
		}()
		kill := time.After(time.Duration(200+rng.Intn(1500)) * time.Millisecond)
	read:
		for {
			select {
			case l, ok := <-lines:
				if !ok {
					break read
				}
				f := strings.Fields(l)
				switch f[0] {
				case "ack":
					for _, id := range f[1:] {
						acked[id] = true
					}
				case "due":
					for _, id := range f[1:] {
						handed[id] = true
					}
				case "mark":
					for _, id := range f[1:] {
						marked[id] = true
					}
				case "error":
					t.Fatalf("writer: %s", l)
				}
			case <-kill:
				cmd.Process.Signal(syscall.SIGKILL)
				kill = nil
			}
		}
		cmd.Wait()
	}
	// Recover and deliver the rest (everything is due within 2 s).
	s := mustOpen(t, killConfig(dir))
	defer s.Close()
	time.Sleep(2100 * time.Millisecond)
	got := map[string]bool{}
	for _, e := range drain(t, s, 300*time.Millisecond) {
		m, err := s.Read(e)
		if err != nil {
			t.Fatal(err)
		}
		if marked[m.MessageID] {
			t.Fatalf("%s delivered again after it was marked", m.MessageID)
		}
		if got[m.MessageID] {
			t.Fatalf("%s twice", m.MessageID)
		}
		got[m.MessageID] = true
	}
	lost := 0
	for id := range acked {
		if !marked[id] && !got[id] && !handed[id] {
			lost++
			t.Errorf("acknowledged %s lost", id)
		}
	}
	t.Logf("%d acked, %d marked by the killed writers, %d delivered after recovery", len(acked), len(marked), len(got))
}

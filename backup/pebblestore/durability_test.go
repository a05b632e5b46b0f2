package pebblestore

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/qmq-go/qmq/backup"
	"github.com/qmq-go/qmq/backup/rowstore"
	"github.com/qmq-go/qmq/internal/testutil"
)

var ctx = context.Background()

func TestRetentionDeletesOldRows(t *testing.T) {
	st := open(t, t.TempDir(), func(s *Settings) { s.RetentionDays = 7 })
	defer st.Close()
	now := time.Now()
	old := now.AddDate(0, 0, -10)
	msgs := []backup.Message{
		{Subject: "s", MessageID: "old", BrokerGroup: "bg", Sequence: 1, CreateTime: old, Content: []byte("x")},
		{Subject: "s", MessageID: "new", BrokerGroup: "bg", Sequence: 2, CreateTime: now.Add(-time.Hour), Content: []byte("y")},
		{Subject: "s", MessageID: "old-dead", BrokerGroup: "bg", Sequence: 3, CreateTime: old, Kind: backup.KindDead, ConsumerGroup: "g", Content: []byte("z")},
	}
	if err := st.PutMessages(ctx, msgs); err != nil {
		t.Fatal(err)
	}
	if err := st.PutRecords(ctx, []backup.Record{{Subject: "s", BrokerGroup: "bg", Sequence: 1, ConsumerGroup: "g", ConsumerID: "c", Timestamp: old}}); err != nil {
		t.Fatal(err)
	}
	q := backup.MessageQuery{Subject: "s", Len: 10, CreateTimeBegin: now.AddDate(0, 0, -30)}
	if p, _ := st.FindMessages(ctx, q); len(p.Messages) != 2 {
		t.Fatalf("before the retention: %d messages", len(p.Messages))
	}
	n, err := st.DeleteExpired(ctx, now)
	if err != nil {
		t.Fatal(err)
	}
	// old: m, x, b rows; old-dead: d, c, r (dead record), b; the record.
	if n != 8 {
		t.Fatalf("deleted %d rows, want 8", n)
	}
	p, err := st.FindMessages(ctx, q)
	if err != nil || len(p.Messages) != 1 || p.Messages[0].MessageID != "new" {
		t.Fatalf("after the retention: %+v, %v", p, err)
	}
	if _, err := st.FindMessage(ctx, backup.MessageRef{Subject: "s", BrokerGroup: "bg", Sequence: 1}); err == nil {
		t.Fatal("the old message's detail survived")
	}
	if m, err := st.FindMessage(ctx, backup.MessageRef{Subject: "s", BrokerGroup: "bg", Sequence: 2}); err != nil || string(m.Content) != "y" {
		t.Fatalf("the new message's detail: %+v, %v", m, err)
	}
	if d, _ := st.FindDeadLetters(ctx, q); len(d.Messages) != 0 {
		t.Fatalf("old dead letters survived: %+v", d)
	}
	if r, _ := st.FindRecords(ctx, backup.RecordQuery{Subject: "s", BrokerGroup: "bg", Sequence: 1}); len(r) != 0 {
		t.Fatalf("old records survived: %+v", r)
	}
	if n, err := st.DeleteExpired(ctx, now); n != 0 || err != nil {
		t.Fatalf("second pass deleted %d, %v", n, err)
	}
}

func TestRetentionRunsInTheBackground(t *testing.T) {
	st := open(t, t.TempDir(), func(s *Settings) { s.RetentionDays = 1; s.RetentionCheckInterval = time.Second })
	defer st.Close()
	old := time.Now().AddDate(0, 0, -3)
	if err := st.PutMessages(ctx, []backup.Message{{Subject: "s", MessageID: "old", BrokerGroup: "bg", Sequence: 1, CreateTime: old}}); err != nil {
		t.Fatal(err)
	}
	q := backup.MessageQuery{Subject: "s", Len: 10, CreateTimeBegin: old.Add(-time.Hour)}
	testutil.Eventually(t, 10*time.Second, "the retention goroutine deletes a 3-day-old message", func() bool {
		p, err := st.FindMessages(ctx, q)
		return err == nil && len(p.Messages) == 0
	})
}

func TestReopenKeepsRowsAndDictionary(t *testing.T) {
	dir := t.TempDir()
	st := open(t, dir, nil)
	at := time.Now().Add(-time.Minute)
	if err := st.PutMessages(ctx, []backup.Message{{Subject: "s", MessageID: "m", BrokerGroup: "bg", Sequence: 1, CreateTime: at}}); err != nil {
		t.Fatal(err)
	}
	id, _ := st.Dictionary().ID(ctx, "s")
	if err := st.Close(); err != nil {
		t.Fatal(err)
	}
	st = open(t, dir, nil)
	defer st.Close()
	if again, ok, _ := st.Dictionary().Lookup(ctx, "s"); !ok || again != id {
		t.Fatalf("id of s after reopen %q, before %q", again, id)
	}
	if p, err := st.FindMessages(ctx, backup.MessageQuery{Subject: "s", Len: 1}); err != nil || len(p.Messages) != 1 {
		t.Fatalf("after reopen: %+v, %v", p, err)
	}
	second := DefaultSettings()
	second.Dir = dir
	if _, err := Open(second); err == nil || !strings.Contains(err.Error(), "another backup") {
		t.Fatalf("a second Open of the same directory: %v, want the lock refused", err)
	}
}

// TestKill9LosesNoAcknowledgedWrite runs a writer process that prints each
// batch once it is durable — with Settings.Sync after PutMessages returned,
// without it after the Store.Sync that follows every third batch (as the
// follower syncs before each checkpoint) — kills it with SIGKILL
// mid-stream, and checks that every printed batch is in the reopened store.
func TestKill9LosesNoAcknowledgedWrite(t *testing.T) {
	if w := os.Getenv("PEBBLESTORE_KILL9_WRITER"); w != "" {
		dir, mode, _ := strings.Cut(w, "|")
		killWriter(dir, mode == "sync")
		return
	}
	for _, mode := range []string{"sync", "nosync"} {
		t.Run(mode, func(t *testing.T) {
			dir := t.TempDir()
			cmd := exec.Command(os.Args[0], "-test.run=^TestKill9LosesNoAcknowledgedWrite$")
			cmd.Env = append(os.Environ(), "PEBBLESTORE_KILL9_WRITER="+dir+"|"+mode)
			out, err := cmd.StdoutPipe()
			if err != nil {
				t.Fatal(err)
			}
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			acked := -1
			sc := bufio.NewScanner(out)
			for sc.Scan() {
				line := sc.Text()
				if n, ok := strings.CutPrefix(line, "acked "); ok {
					acked, _ = strconv.Atoi(n)
					if acked >= 30 {
						break
					}
				}
			}
			if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
				t.Fatal(err)
			}
			cmd.Wait()
			if acked < 30 {
				t.Fatalf("the writer acknowledged only %d batches before it ended", acked)
			}
			st := open(t, dir, nil)
			defer st.Close()
			for b := 0; b <= acked; b++ {
				id := fmt.Sprintf("batch-%d-msg-99", b)
				p, err := st.FindMessages(ctx, backup.MessageQuery{Subject: "kill9", MessageID: id, Len: 1, CreateTimeBegin: time.Now().Add(-time.Hour)})
				if err != nil || len(p.Messages) != 1 {
					t.Fatalf("acknowledged batch %d (of %d) is lost after kill -9: %+v, %v", b, acked, p, err)
				}
			}
		})
	}
}

func killWriter(dir string, sync bool) {
	s := DefaultSettings()
	s.Dir, s.Sync = dir, sync
	st, err := Open(s)
	if err != nil {
		fmt.Println("open:", err)
		os.Exit(1)
	}
	at := time.Now().Add(-time.Minute)
	for b := 0; ; b++ {
		msgs := make([]backup.Message, 100)
		for i := range msgs {
			msgs[i] = backup.Message{Subject: "kill9", MessageID: fmt.Sprintf("batch-%d-msg-%d", b, i), BrokerGroup: "bg", Sequence: int64(b*100 + i), CreateTime: at}
		}
		if err := st.PutMessages(context.Background(), msgs); err != nil {
			fmt.Println("put:", err)
			os.Exit(1)
		}
		switch {
		case sync:
			fmt.Printf("acked %d\n", b)
		case b%3 == 2:
			if err := st.Sync(context.Background()); err != nil {
				fmt.Println("sync:", err)
				os.Exit(1)
			}
			fmt.Printf("acked %d\n", b)
		}
	}
}

// TestCloseDuringQueries: Close waits for the queries under way, and later
// ones fail; nothing deadlocks.
func TestCloseDuringQueries(t *testing.T) {
	st := open(t, t.TempDir(), nil)
	at := time.Now().Add(-time.Minute)
	var msgs []backup.Message
	for i := range 200 {
		msgs = append(msgs, backup.Message{Subject: "s", MessageID: fmt.Sprint(i), BrokerGroup: "bg", Sequence: int64(i), CreateTime: at, Kind: backup.KindDead, ConsumerGroup: fmt.Sprint("g", i%5)})
	}
	if err := st.PutMessages(ctx, msgs); err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	for range 4 {
		go func() {
			defer func() { done <- struct{}{} }()
			for {
				if _, err := st.FindDeadLetters(ctx, backup.MessageQuery{Subject: "s", Len: 100}); err != nil {
					return
				}
			}
		}()
	}
	time.Sleep(50 * time.Millisecond)
	closed := make(chan error, 1)
	go func() { closed <- st.Close() }()
	for range 4 {
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			t.Fatal("queries did not end after Close")
		}
	}
	if err := <-closed; err != nil {
		t.Fatal(err)
	}
}

// A store written before the expiry lists has a key per row
// ('e' + day + table byte + row key); the retention still deletes those
// rows, beside the lists of newer writes.
func TestRetentionReadsPerRowExpiryKeys(t *testing.T) {
	st := open(t, t.TempDir(), func(s *Settings) { s.RetentionDays = 7 })
	defer st.Close()
	now := time.Now()
	oldDay := now.UTC().AddDate(0, 0, -10).Format(dayLayout)
	db := st.tables.db
	for _, k := range []string{"row-1", "row-2"} {
		row := append([]byte{tablePrefix[rowstore.Records]}, k...)
		if err := db.Set(row, []byte("v"), nil); err != nil {
			t.Fatal(err)
		}
		if err := db.Set(append(append([]byte{expiryPrefix}, oldDay...), row...), nil, nil); err != nil {
			t.Fatal(err)
		}
	}
	if err := st.PutRecords(ctx, []backup.Record{{Subject: "s", BrokerGroup: "bg", Sequence: 1, ConsumerGroup: "g", ConsumerID: "c", Timestamp: now.AddDate(0, 0, -9)}}); err != nil {
		t.Fatal(err)
	}
	n, err := st.DeleteExpired(ctx, now)
	if err != nil || n != 3 {
		t.Fatalf("deleted %d rows (%v), want the 2 old-style rows and the new record", n, err)
	}
	it, err := db.NewIter(nil)
	if err != nil {
		t.Fatal(err)
	}
	defer it.Close()
	for ok := it.First(); ok; ok = it.Next() {
		if k := it.Key(); k[0] != dictPrefix {
			t.Errorf("key %q survived the retention", k)
		}
	}
}

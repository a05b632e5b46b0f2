package storage

import (
	"context"
	"testing"
	"time"

	"github.com/qmq-go/qmq/storage/consumerlog"
	"github.com/qmq-go/qmq/storage/messagelog"
)

func TestSeekTimestamp(t *testing.T) {
	s := openStore(t, testConfig(t.TempDir()))
	defer s.Close()
	ctx := context.Background()
	// 100 messages stored at 1000, 1010, …, 1990; then three at 3000 in one batch.
	for i := 0; i < 100; i++ {
		if _, err := s.Append(ctx, []messagelog.Message{{Subject: "t", Payload: []byte("m"), Timestamp: 1000 + 10*int64(i)}}); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := s.Append(ctx, []messagelog.Message{{Subject: "t", Payload: []byte("a"), Timestamp: 3000},
		{Subject: "t", Payload: []byte("b"), Timestamp: 3000}, {Subject: "t", Payload: []byte("c"), Timestamp: 3000}}); err != nil {
		t.Fatal(err)
	}
	wctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if err := s.WaitDispatched(wctx, s.MessageLogEnd()); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		ms   int64
		want int64
	}{{0, 0}, {1000, 0}, {1001, 1}, {1005, 1}, {1010, 1}, {1500, 50}, {1990, 99}, {1991, 100}, {3000, 100}, {3001, 103}, {1 << 60, 103}} {
		got, err := s.SeekTimestamp("t", c.ms)
		if err != nil || got != c.want {
			t.Errorf("SeekTimestamp(t, %d) = %d, %v; want %d", c.ms, got, err, c.want)
		}
	}
	if got, err := s.SeekTimestamp("never-written", 5); err != nil || got != 0 {
		t.Errorf("empty subject: %d, %v; want 0", got, err)
	}
	if ts, ok, err := s.Timestamp("t", 50); err != nil || !ok || ts != 1500 {
		t.Errorf("Timestamp(t, 50) = %d, %v, %v", ts, ok, err)
	}
	if _, ok, _ := s.Timestamp("t", 103); ok {
		t.Error("Timestamp beyond the end found a message")
	}
}

// Blank consumer-log units (sequences without a message) take the time of
// the next message, and an answer never lands on one.
func TestSeekTimestampOverBlanks(t *testing.T) {
	s := openStore(t, testConfig(t.TempDir()))
	defer s.Close()
	e := func(ts int64) consumerlog.Entry {
		return consumerlog.Entry{Timestamp: ts, Offset: 0, Size: 10, HeaderSize: 5}
	}
	for _, p := range []struct {
		seq int64
		ts  int64
	}{{0, 100}, {5, 200}, {6, 300}, {40, 400}} { // 1-4 and 7-39 become blanks
		if err := s.clogs.Put("b", p.seq, e(p.ts)); err != nil {
			t.Fatal(err)
		}
	}
	for _, c := range []struct {
		ms   int64
		want int64
	}{{50, 0}, {100, 0}, {150, 5}, {200, 5}, {250, 6}, {300, 6}, {301, 40}, {400, 40}, {401, 41}} {
		got, err := s.SeekTimestamp("b", c.ms)
		if err != nil || got != c.want {
			t.Errorf("SeekTimestamp(b, %d) = %d, %v; want %d", c.ms, got, err, c.want)
		}
	}
}

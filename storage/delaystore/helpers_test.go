package delaystore

import (
	"context"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/qmq-go/qmq/storage/vfs"
)

// clock is a settable Config.Now.
type clock struct{ ms atomic.Int64 }

func newClock(t time.Time) *clock {
	c := &clock{}
	c.ms.Store(t.UnixMilli())
	return c
}

func (c *clock) Now() time.Time           { return time.UnixMilli(c.ms.Load()) }
func (c *clock) Add(d time.Duration)      { c.ms.Add(d.Milliseconds()) }
func (c *clock) Set(t time.Time)          { c.ms.Store(t.UnixMilli()) }
func (c *clock) At(d time.Duration) int64 { return c.ms.Load() + d.Milliseconds() }

// t0 is a bucket boundary for every scale.
var t0 = time.Date(2026, 12, 7, 12, 0, 0, 0, time.UTC)

func testConfig(t testing.TB, dir string, c *clock) Config {
	cfg := DefaultConfig(dir)
	cfg.MessageSegmentSize = 1 << 20
	cfg.MaxMessageSize = 64 << 10
	cfg.DispatchSegmentSize = 64 << 10
	cfg.FlushSync = true
	cfg.FlushInterval = 20 * time.Millisecond
	cfg.Now = c.Now
	return cfg
}

func mustOpen(t testing.TB, cfg Config) *Store {
	t.Helper()
	s, err := Open(cfg)
	if err != nil {
		t.Fatalf("open: %v", err)
	}
	return s
}

func msg(i int, at int64) Message {
	return Message{ScheduleTime: at, Subject: fmt.Sprintf("subject.%d", i%3), MessageID: fmt.Sprintf("id-%d", i),
		Payload: []byte(fmt.Sprintf("payload-%d-%s", i, string(make([]byte, i%50))))}
}

// drain collects due entries until none comes within wait.
func drain(t testing.TB, s *Store, wait time.Duration) []Entry {
	t.Helper()
	var out []Entry
	for {
		ctx, cancel := context.WithTimeout(context.Background(), wait)
		es, err := s.Due(ctx, 1000)
		cancel()
		if err != nil {
			return out
		}
		out = append(out, es...)
	}
}

var _ = vfs.Default

package delaystore

import (
	"context"
	"fmt"
	"sync/atomic"
	"testing"
	"time"
)

func benchAppend(b *testing.B, sync bool, batch, size int) {
	c := newClock(time.Now())
	cfg := testConfig(b, b.TempDir(), c)
	cfg.MessageSegmentSize = 64 << 20
	cfg.FlushSync = sync
	s := mustOpen(b, cfg)
	defer s.Close()
	payload := make([]byte, size)
	msgs := make([]Message, batch)
	b.SetBytes(int64(batch * size))
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		for j := range msgs {
			msgs[j] = Message{ScheduleTime: c.At(time.Duration(i%3600) * time.Second), Subject: "order.changed",
				MessageID: fmt.Sprintf("%d-%d", i, j), Payload: payload}
		}
		if _, err := s.Append(msgs); err != nil {
			b.Fatal(err)
		}
	}
	b.StopTimer()
	b.ReportMetric(float64(b.N*batch)/b.Elapsed().Seconds(), "msg/s")
}

func BenchmarkAppend(b *testing.B) {
	for _, sync := range []bool{false, true} {
		for _, batch := range []int{1, 32} {
			b.Run(fmt.Sprintf("sync=%v/batch=%d/size=256", sync, batch), func(b *testing.B) { benchAppend(b, sync, batch, 256) })
		}
	}
}

// BenchmarkDueMarkDispatched: the sender's loop over entries already due,
// in batches of 100 (Read included).
func BenchmarkDueMarkDispatched(b *testing.B) {
	for _, sync := range []bool{false, true} {
		b.Run(fmt.Sprintf("sync=%v", sync), func(b *testing.B) {
			c := newClock(time.Now())
			cfg := testConfig(b, b.TempDir(), c)
			cfg.MessageSegmentSize = 64 << 20
			cfg.FlushSync = false
			s := mustOpen(b, cfg)
			defer s.Close()
			appendMany(b, s, b.N, func(i int) int64 { return c.At(-time.Second) })
			s.msgs.Flush()
			if err := s.replay(); err != nil {
				b.Fatal(err)
			}
			s.cfg.FlushSync = sync
			b.ReportAllocs()
			b.ResetTimer()
			for got := 0; got < b.N; {
				es, err := s.Due(context.Background(), min(100, b.N-got))
				if err != nil {
					b.Fatal(err)
				}
				for _, e := range es {
					if _, err := s.Read(e); err != nil {
						b.Fatal(err)
					}
				}
				if err := s.MarkDispatched(es); err != nil {
					b.Fatal(err)
				}
				got += len(es)
			}
			b.StopTimer()
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "entries/s")
		})
	}
}

// BenchmarkAppendParallel: 8 appenders per CPU with FlushSync share fsyncs.
func BenchmarkAppendParallel(b *testing.B) {
	c := newClock(time.Now())
	cfg := testConfig(b, b.TempDir(), c)
	cfg.MessageSegmentSize = 64 << 20
	cfg.FlushSync = true
	s := mustOpen(b, cfg)
	defer s.Close()
	payload := make([]byte, 256)
	var n atomic.Int64
	b.SetParallelism(8)
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			i := n.Add(1)
			m := Message{ScheduleTime: c.At(time.Duration(i%3600) * time.Second), Subject: "order.changed", MessageID: fmt.Sprint(i), Payload: payload}
			if _, err := s.Append([]Message{m}); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.StopTimer()
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "msg/s")
}

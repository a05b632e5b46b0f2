package storage

import (
	"context"
	"fmt"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/qmq-go/qmq/storage/messagelog"
)

// BenchmarkStoreAppendSubjects appends 1 KiB messages in batches of 32 spread
// over N subjects and waits for the consumer logs to cover them: the broker's
// produce path end to end. Throughput with 1,000 subjects should stay within
// 20% of 1 subject (issue 4); the consumer-log side is what differs.
func BenchmarkStoreAppendSubjects(b *testing.B) {
	for _, n := range []int{1, 1000} {
		b.Run(fmt.Sprintf("subjects=%d", n), func(b *testing.B) {
			cfg := DefaultConfig(b.TempDir())
			cfg.MessageSegmentSize = 256 << 20
			if os.Getenv("QMQ_BENCH_NO_CHECKPOINT") != "" {
				cfg.MessageCheckpointInterval = 1 << 30
				cfg.CheckpointMaxAge = time.Hour
			}
			s, err := Open(cfg)
			if err != nil {
				b.Fatal(err)
			}
			defer s.Close()
			subjects := make([]string, n)
			for i := range subjects {
				subjects[i] = "bench.subject." + strconv.Itoa(i)
			}
			payload := []byte(strings.Repeat("q", 1024))
			batch := make([]messagelog.Message, 32)
			ctx := context.Background()
			// Create every subject's consumer log first: creating a subject
			// (directory, file, first page) is a one-time cost, measured apart.
			warm := make([]messagelog.Message, 0, n)
			for _, subject := range subjects {
				warm = append(warm, messagelog.Message{Subject: subject, Payload: payload})
			}
			app, err := s.Append(ctx, warm)
			if err != nil {
				b.Fatal(err)
			}
			a := app[len(app)-1]
			if err := s.WaitDispatched(ctx, a.Offset+int64(a.Size)); err != nil {
				b.Fatal(err)
			}
			b.SetBytes(int64(len(payload)))
			b.ResetTimer()
			k := 0
			var last int64
			for i := 0; i < b.N; i += len(batch) {
				for j := range batch {
					batch[j] = messagelog.Message{Subject: subjects[k%n], Payload: payload}
					k++
				}
				app, err := s.Append(ctx, batch)
				if err != nil {
					b.Fatal(err)
				}
				a := app[len(app)-1]
				last = a.Offset + int64(a.Size)
			}
			if err := s.WaitDispatched(ctx, last); err != nil {
				b.Fatal(err)
			}
		})
	}
}

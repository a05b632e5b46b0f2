//go:build perf

package pebblestore

import (
	"fmt"
	"os"
	"strconv"
	"testing"
	"time"

	"github.com/qmq-go/qmq/backup"
)

// TestPerfWriteSync compares, on the same machine back to back, the
// follower's writes to the store with an fsync per batch (Settings.Sync)
// and without, plus one Store.Sync per 500 ms (the checkpoint interval):
// batches of 100 messages (the follower's at a steady 10,000 msg/s) and of
// 1,500 (at full rate). PERF_WRITE_MESSAGES sets the count per run (100,000).
func TestPerfWriteSync(t *testing.T) {
	n := 100_000
	if v := os.Getenv("PERF_WRITE_MESSAGES"); v != "" {
		n, _ = strconv.Atoi(v)
	}
	at := time.Now().Add(-time.Minute)
	for _, batch := range []int{100, 1500} {
		for _, sync := range []bool{true, false} {
			st := open(t, t.TempDir(), func(s *Settings) { s.Sync = sync })
			start, lastSync := time.Now(), time.Now()
			syncs := 0
			for i := 0; i < n; i += batch {
				msgs := make([]backup.Message, batch)
				for j := range msgs {
					seq := int64(i + j)
					msgs[j] = backup.Message{Subject: fmt.Sprintf("perf.%d", seq%4), MessageID: fmt.Sprintf("id-%d", seq), BrokerGroup: "g1",
						Sequence: seq, CreateTime: at, LogOffset: seq * 1100, Located: true}
				}
				if err := st.PutMessages(ctx, msgs); err != nil {
					t.Fatal(err)
				}
				if !sync && time.Since(lastSync) >= 500*time.Millisecond {
					if err := st.Sync(ctx); err != nil {
						t.Fatal(err)
					}
					lastSync = time.Now()
					syncs++
				}
			}
			if !sync {
				if err := st.Sync(ctx); err != nil {
					t.Fatal(err)
				}
			}
			d := time.Since(start)
			t.Logf("batches of %d, fsync per batch %v: %d messages in %s = %.0f msg/s (%d checkpoint syncs)", batch, sync, n, d.Round(time.Millisecond), float64(n)/d.Seconds(), syncs)
			st.Close()
		}
	}
}

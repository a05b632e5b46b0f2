//go:build perf

package pebblestore

import (
	"fmt"
	"os"
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/qmq-go/qmq/backup"
)

// TestPerfWriteRate writes what the follower writes at full rate — batches
// of 1,500 messages of 16 subjects, each with its index, id index and
// detail rows, one Store.Sync per 500 ms — and prints messages per second
// and, steadier on a shared machine, the process's CPU time per message
// (user + system, Pebble's compactions included: they run in this
// process). PERF_WRITE_MESSAGES sets the count (1,000,000);
// PERF_NO_ID_INDEX=1 writes without the id index (its share of the cost).
func TestPerfWriteRate(t *testing.T) {
	n := 1_000_000
	if v := os.Getenv("PERF_WRITE_MESSAGES"); v != "" {
		n, _ = strconv.Atoi(v)
	}
	st := open(t, t.TempDir(), func(s *Settings) { s.Sync = false; s.IDIndex = os.Getenv("PERF_NO_ID_INDEX") == "" })
	defer st.Close()
	const batch = 1500
	base := time.Now().Add(-time.Hour)
	cpu0, start, lastSync := cpuTime(), time.Now(), time.Now()
	msgs := make([]backup.Message, batch)
	for i := 0; i < n; i += batch {
		for j := range msgs {
			seq := int64(i + j)
			msgs[j] = backup.Message{Subject: fmt.Sprintf("perf.subject.%d", seq%16), BrokerGroup: "dev",
				MessageID: fmt.Sprintf("261207.%06d.10.0.0.1.4242.%d", seq/100_000, seq),
				Sequence:  seq / 16, CreateTime: base.Add(time.Duration(seq) * 10 * time.Microsecond),
				LogOffset: seq * 1100, Located: true}
		}
		if err := st.PutMessages(ctx, msgs); err != nil {
			t.Fatal(err)
		}
		if time.Since(lastSync) >= 500*time.Millisecond {
			if err := st.Sync(ctx); err != nil {
				t.Fatal(err)
			}
			lastSync = time.Now()
		}
	}
	if err := st.Sync(ctx); err != nil {
		t.Fatal(err)
	}
	d, cpu := time.Since(start), cpuTime()-cpu0
	t.Logf("%d messages in %s: %.0f msg/s, CPU %.2f µs/msg (%s CPU over %s wall)", n, d.Round(time.Millisecond),
		float64(n)/d.Seconds(), float64(cpu.Microseconds())/float64(n), cpu.Round(time.Millisecond), d.Round(time.Millisecond))
	m := st.tables.db.Metrics()
	total := m.Total()
	t.Logf("Pebble: flushes %d, compactions %d, write amplification %.2f, L0 files %d", m.Flush.Count, m.Compact.Count,
		total.WriteAmp(), m.Levels[0].TablesCount)
}

func cpuTime() time.Duration {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

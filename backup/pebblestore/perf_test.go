//go:build perf

package pebblestore

import (
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/qmq-go/qmq/backup"
)

// TestPerfQueries10M loads PERF_BACKUP_MESSAGES (default 10,000,000)
// message indexes through PutMessages — 100 subjects, spread over the last
// 7 days, batches of 5,000, each fsynced, id index and 30-day retention on,
// as a follower writes them — then measures queries by subject and a
// one-hour window (len 20) and by message id.
// Targets: window p99 < 50 ms, id p99 < 20 ms.
func TestPerfQueries10M(t *testing.T) {
	total := 10_000_000
	if v := os.Getenv("PERF_BACKUP_MESSAGES"); v != "" {
		total, _ = strconv.Atoi(v)
	}
	const subjects, batch = 100, 5000
	dir := t.TempDir()
	if v := os.Getenv("PERF_BACKUP_DIR"); v != "" {
		dir = v
	}
	st := open(t, dir, nil)
	defer st.Close()
	now := time.Now()
	span := 7 * 24 * time.Hour
	step := span / time.Duration(total)
	id := func(i int) string { return fmt.Sprintf("%06d.%08d.10.0.0.%d.%d", i%999983, i, i%255, i%7) }
	subject := func(i int) string { return fmt.Sprintf("perf.subject.%02d", i%subjects) }
	createTime := func(i int) time.Time { return now.Add(-span + time.Duration(i)*step) }

	start := time.Now()
	msgs := make([]backup.Message, 0, batch)
	for i := 0; i < total; i++ {
		msgs = append(msgs, backup.Message{Subject: subject(i), MessageID: id(i), BrokerGroup: "bg" + strconv.Itoa(i%3), Sequence: int64(i / subjects), CreateTime: createTime(i)})
		if len(msgs) == batch || i == total-1 {
			if err := st.PutMessages(ctx, msgs); err != nil {
				t.Fatal(err)
			}
			msgs = msgs[:0]
		}
		if (i+1)%(total/10) == 0 {
			t.Logf("loaded %d messages in %s", i+1, time.Since(start).Round(time.Second))
		}
	}
	load := time.Since(start)
	t.Logf("loaded %d messages in %s: %.0f messages/s; database %s", total, load.Round(time.Second), float64(total)/load.Seconds(), dirSize(dir))

	r := rand.New(rand.NewPCG(1, 2))
	const n = 2000
	var window, byID []time.Duration
	for q := 0; q < n; q++ {
		end := now.Add(-time.Duration(r.Int64N(int64(span))))
		s := subject(r.IntN(subjects))
		t0 := time.Now()
		p, err := st.FindMessages(ctx, backup.MessageQuery{Subject: s, CreateTimeBegin: end.Add(-time.Hour), CreateTimeEnd: end, Len: 20})
		window = append(window, time.Since(t0))
		if err != nil || (len(p.Messages) == 0 && end.After(now.Add(-span).Add(time.Hour))) {
			t.Fatalf("window query %s %s: %d messages, %v", s, end, len(p.Messages), err)
		}
		i := r.IntN(total)
		t0 = time.Now()
		p, err = st.FindMessages(ctx, backup.MessageQuery{Subject: subject(i), MessageID: id(i), Len: 20, CreateTimeBegin: now.Add(-8 * 24 * time.Hour)})
		byID = append(byID, time.Since(t0))
		if err != nil || len(p.Messages) != 1 || p.Messages[0].MessageID != id(i) {
			t.Fatalf("id query %s: %+v, %v", id(i), p, err)
		}
	}
	report := func(name string, d []time.Duration, limit time.Duration) {
		slices.Sort(d)
		p50, p99, max := d[len(d)/2], d[len(d)*99/100], d[len(d)-1]
		t.Logf("%s: %d queries, p50 %s, p99 %s, max %s (target p99 < %s)", name, len(d), p50, p99, max, limit)
		if p99 >= limit {
			t.Errorf("%s p99 %s is over %s", name, p99, limit)
		}
	}
	report("subject + 1h window, len 20", window, 50*time.Millisecond)
	report("message id", byID, 20*time.Millisecond)
}

func dirSize(dir string) string {
	var n int64
	filepath.Walk(dir, func(_ string, fi os.FileInfo, err error) error {
		if err == nil && !fi.IsDir() {
			n += fi.Size()
		}
		return nil
	})
	return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20))
}

//go:build perf

// The figures of this file take a few seconds of the whole machine and only
// print numbers (the assertions are loose bounds): `make perf` runs them.

package backup

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/qmq-go/qmq/backup"
	"github.com/qmq-go/qmq/backup/pebblestore"
	"github.com/qmq-go/qmq/internal/loadgen"
	"github.com/qmq-go/qmq/internal/testutil"
	"github.com/qmq-go/qmq/services/broker"
	"github.com/qmq-go/qmq/tests/framework"
)

// TestPerfBackupKeepsUp: a group (master and slave, in process) takes the
// `qmq bench` produce load at full rate while the backup follows the slave
// into a Pebble store (as deployed: no fsync per write, one before each
// checkpoint save; PERF_BACKUP_SYNC_EACH=1 fsyncs every write, as before).
// It prints the produce
// rate, the backup's lag behind the slave sampled every 20 ms (bytes, and
// the age of the newest message written while behind), the rows it wrote
// per second and how long it needed to catch up once the load stopped.
func TestPerfBackupKeepsUp(t *testing.T) {
	// PERF_WAIT_SLAVE_WROTE=1: synchronous replication (what failover
	// needs): the master answers a send once the slave wrote it, so the
	// slave, the backup's source, cannot fall behind the producers.
	sync := os.Getenv("PERF_WAIT_SLAVE_WROTE") == "1"
	t.Logf("wait.slave.wrote: %v", sync)
	c := framework.StartCluster(t, framework.ClusterOptions{Slaves: true, Configure: func(_ string, _ int, s *broker.Settings) { s.WaitSlaveWrote = sync }})
	s, host := registerBackup(t, c, "g1")
	ps := pebblestore.DefaultSettings()
	ps.Dir = filepath.Join(t.TempDir(), "pebble")
	ps.Sync = os.Getenv("PERF_BACKUP_SYNC_EACH") == "1"
	t.Logf("Pebble fsync per write: %v", ps.Sync)
	st, err := pebblestore.Open(ps)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	b := startBackupStore(t, s, host, st)
	b.waitHealthy("")

	for _, rate := range []int{0, 10_000} { // full rate, then a steady rate below the backup's
		measure(t, c, b, loadgen.Config{Subjects: 4, Size: 1024, Producers: 4, Duration: 10 * time.Second, Rate: rate})
	}
}

func measure(t *testing.T, c *framework.Cluster, b *testBackup, cfg loadgen.Config) {
	dur := cfg.Duration
	ctx, cancel := context.WithCancel(context.Background())
	type sample struct {
		bytes int64
		age   float64
	}
	samples := make(chan []sample, 1)
	go func() {
		var out []sample
		tick := time.NewTicker(20 * time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-ctx.Done():
				samples <- out
				return
			case <-tick.C:
			}
			l := b.srv.f.lag()
			out = append(out, sample{l.MessageBytes, l.Seconds})
		}
	}()
	lb := loadgen.NewQMQ(c.Endpoint(), "perfbk"+time.Now().Format("150405"), cfg.Subjects, cfg.Size, hclog.NewNullLogger())
	var res loadgen.Result
	start := time.Now()
	rowsBefore := messagesWritten(b)
	w0n, w0s := histogram(b.srv.m.writeSeconds)
	f0n, f0s := histogram(b.srv.m.fetchSeconds.WithLabelValues("message").(prometheus.Metric))
	if err := loadgen.RunModes(context.Background(), lb, "qmq", cfg, []string{"produce"}, func(r loadgen.Result) { res = r }); err != nil {
		t.Fatal(err)
	}
	stopped := time.Now()
	// Caught up: the slave has the master's whole log and the backup the
	// slave's (the slave alone may lag the master at full rate: it is the
	// backup's source, so its lag is the backup's too).
	var slaveCaughtUp time.Duration
	testutil.EventuallyState(t, 2*time.Minute, "the backup caught up", func() (bool, string) {
		h, _ := b.health()
		mh, err1 := c.Group("g1").Master.Health()
		sh, err2 := c.Group("g1").Slave.Health()
		if err1 != nil || err2 != nil {
			return false, fmt.Sprint(err1, err2)
		}
		if slaveCaughtUp == 0 && sh.MessageLogEnd == mh.MessageLogEnd {
			slaveCaughtUp = time.Since(stopped)
		}
		return h.MessageOffset == sh.MessageLogEnd && sh.MessageLogEnd == mh.MessageLogEnd,
			fmt.Sprintf("master %d, slave %d, backup %d", mh.MessageLogEnd, sh.MessageLogEnd, h.MessageOffset)
	})
	catchUp := time.Since(stopped)
	cancel()
	got := <-samples
	bytes := make([]int64, 0, len(got))
	ages := make([]float64, 0, len(got))
	for _, s := range got {
		if s.bytes >= 0 {
			bytes = append(bytes, s.bytes)
			ages = append(ages, s.age)
		}
	}
	slices.Sort(bytes)
	slices.Sort(ages)
	q := func(n int, p float64) int { return min(n-1, int(p*float64(n))) }
	indexed := messagesWritten(b) - rowsBefore
	t.Logf("rate limit %d/s (0: none): produce %.0f msg/s (%d B, %d producers, %v); the backup indexed %d messages in %v = %.0f msg/s; lag behind the slave, %d samples every 20 ms: bytes p50 %d p99 %d max %d; age of the newest indexed message while behind p50 %.3fs p99 %.3fs max %.3fs; caught up with the master %v after the load stopped",
		cfg.Rate, res.MsgPerSec, cfg.Size, cfg.Producers, dur, indexed, time.Since(start), float64(indexed)/time.Since(start).Seconds(),
		len(bytes), bytes[q(len(bytes), 0.5)], bytes[q(len(bytes), 0.99)], bytes[len(bytes)-1],
		ages[q(len(ages), 0.5)], ages[q(len(ages), 0.99)], ages[len(ages)-1], catchUp.Round(time.Millisecond))
	t.Logf("the slave had the master's whole log %v after the load stopped", slaveCaughtUp.Round(time.Millisecond))
	wn, ws := histogram(b.srv.m.writeSeconds)
	fn, fs := histogram(b.srv.m.fetchSeconds.WithLabelValues("message").(prometheus.Metric))
	wn, ws, fn, fs = wn-w0n, ws-w0s, fn-f0n, fs-f0s
	t.Logf("store writes: %d batches, %.1f messages each, %.1f ms each on average, %.1f s in all; slave reads: %d, %.1f ms each on average, %.1f s in all",
		wn, float64(indexed)/float64(max(1, wn)), 1000*ws/float64(max(1, wn)), ws, fn, 1000*fs/float64(max(1, fn)), fs)
	if catchUp > 30*time.Second {
		t.Errorf("the backup needed %v to catch up: it does not keep up", catchUp)
	}
}

// startBackupStore is startBackup with any store.
func startBackupStore(t *testing.T, s Settings, host string, store backup.Store) *testBackup {
	t.Helper()
	b := &testBackup{t: t, settings: s, hostname: host, logs: nil, done: make(chan error, 1)}
	srv, err := New(s, store, Options{Hostname: host, Logger: hclog.NewNullLogger()})
	if err != nil {
		t.Fatal(err)
	}
	b.srv = srv
	ctx, cancel := context.WithCancel(context.Background())
	b.cancel = cancel
	go func() { b.done <- srv.Run(ctx) }()
	t.Cleanup(b.stop)
	return b
}

// messagesWritten reads qmq_backup_rows_written_total{kind="message"}.
func messagesWritten(b *testBackup) int64 {
	var m dto.Metric
	if err := b.srv.m.rows.WithLabelValues("message").Write(&m); err != nil {
		return 0
	}
	return int64(m.GetCounter().GetValue())
}

// histogram reads a histogram's count and sum.
func histogram(h prometheus.Metric) (uint64, float64) {
	var m dto.Metric
	if err := h.Write(&m); err != nil {
		return 0, 0
	}
	return m.GetHistogram().GetSampleCount(), m.GetHistogram().GetSampleSum()
}

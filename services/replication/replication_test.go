package replication

import (
	"context"
	"errors"
	"os"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/qmq-go/qmq/storage"
	"github.com/qmq-go/qmq/storage/actionlog"
	"github.com/qmq-go/qmq/storage/pulllog"

	"github.com/qmq-go/qmq/internal/testlog"
)

var testSubjects = []string{"order.created", "pay.done", "%RETRY%order.created%billing"}

// runProducers appends batches from n goroutines until stop is closed.
func runProducers(t *testing.T, p *producer, n int, stop <-chan struct{}) *sync.WaitGroup {
	var wg sync.WaitGroup
	for range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case <-stop:
					return
				default:
				}
				p.appendBatch(t)
				time.Sleep(time.Millisecond)
			}
		}()
	}
	return &wg
}

func TestCatchUpUnderConcurrentAppends(t *testing.T) {
	masterCfg, slaveCfg := storeConfig(t.TempDir()), storeConfig(t.TempDir())
	master := openStore(t, masterCfg)
	defer master.Close()
	slave := openStore(t, slaveCfg)
	defer slave.Close()
	p := &producer{store: master, subjects: testSubjects}
	for range 200 { // a backlog to copy
		p.appendBatch(t)
	}
	reg := prometheus.NewRegistry()
	m, _ := startMaster(t, master, "127.0.0.1:0", func(c *MasterConfig) { c.Registerer = reg })
	s, _ := startSlave(t, m.Addr().String(), slave, func(c *SlaveConfig) { c.Registerer = reg })

	stop := make(chan struct{})
	wg := runProducers(t, p, 4, stop)
	time.Sleep(1500 * time.Millisecond)
	close(stop)
	wg.Wait()
	waitCaughtUp(t, master, slave, 20*time.Second)

	sameFiles(t, masterCfg.Root, slaveCfg.Root)
	checkServes(t, master, slave)
	sameTables(t, master, slave)
	if master.LogEnd(storage.MessageLog) < 4*masterCfg.MessageSegmentSize {
		t.Fatalf("only %d bytes: the test must cross segment ends", master.LogEnd(storage.MessageLog))
	}
	// The master learns the slave's offsets from its requests.
	deadline := time.Now().Add(5 * time.Second)
	for {
		l := m.Lag()
		if l.MessageBytes == 0 && l.ActionBytes == 0 && l.MessageDelay == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("lag never reached 0: %+v", l)
		}
		time.Sleep(10 * time.Millisecond)
	}
	if st := s.Status(); !st.Connected || st.MasterMessageEnd < 0 || st.LastError != "" {
		t.Fatalf("slave status %+v", st)
	}
	families, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	names := map[string]bool{}
	for _, f := range families {
		names[f.GetName()] = true
	}
	for _, n := range []string{"qmq_replication_slave_lag_bytes", "qmq_replication_slave_lag_seconds", "qmq_replication_sync_sent_bytes_total",
		"qmq_replication_slave_connected", "qmq_replication_slave_copied_bytes_total", "qmq_replication_slave_behind_bytes"} {
		if !names[n] {
			t.Errorf("metric %s not registered", n)
		}
	}
}

func TestSlaveStartedBeforeMaster(t *testing.T) {
	masterCfg, slaveCfg := storeConfig(t.TempDir()), storeConfig(t.TempDir())
	master := openStore(t, masterCfg)
	defer master.Close()
	slave := openStore(t, slaveCfg)
	defer slave.Close()
	p := &producer{store: master, subjects: testSubjects}
	for range 300 {
		p.appendBatch(t)
	}
	addr := freeAddr(t)
	logs := &testlog.Buffer{}
	s, _ := startSlave(t, addr, slave, func(c *SlaveConfig) { c.Logger = testLogger(t, "slave", logs) })
	time.Sleep(800 * time.Millisecond) // several retries at 100 ms
	if n := logs.Count("not reachable"); n != 1 {
		t.Fatalf("%d 'not reachable' lines, want exactly 1:\n%s", n, logs)
	}
	if st := s.Status(); st.Connected || st.LastError == "" {
		t.Fatalf("status without a master: %+v", st)
	}
	startMaster(t, master, addr, nil)
	waitCaughtUp(t, master, slave, 20*time.Second)
	sameFiles(t, masterCfg.Root, slaveCfg.Root)
	checkServes(t, master, slave)
	if logs.Count("not reachable") != 1 || logs.Count("connected to the master") != 1 {
		t.Fatalf("log lines:\n%s", logs)
	}
	t.Logf("slave log:\n%s", logs)
}

func TestMasterRestartedMidStream(t *testing.T) {
	masterCfg, slaveCfg := storeConfig(t.TempDir()), storeConfig(t.TempDir())
	master := openStore(t, masterCfg)
	slave := openStore(t, slaveCfg)
	defer slave.Close()
	p := &producer{store: master, subjects: testSubjects}
	m, mr := startMaster(t, master, "127.0.0.1:0", nil)
	addr := m.Addr().String()
	logs := &testlog.Buffer{}
	startSlave(t, addr, slave, func(c *SlaveConfig) { c.Logger = testLogger(t, "slave", logs) })
	stop := make(chan struct{})
	wg := runProducers(t, p, 2, stop)
	time.Sleep(400 * time.Millisecond)
	close(stop)
	wg.Wait()

	// Kill the master mid-stream: stop serving, close and reopen its store.
	mr.stop()
	if err := master.Close(); err != nil {
		t.Fatal(err)
	}
	master = openStore(t, masterCfg)
	defer master.Close()
	p.store = master
	for range 100 {
		p.appendBatch(t)
	}
	startMaster(t, master, addr, nil)
	stop = make(chan struct{})
	wg = runProducers(t, p, 2, stop)
	time.Sleep(400 * time.Millisecond)
	close(stop)
	wg.Wait()
	waitCaughtUp(t, master, slave, 20*time.Second)
	sameFiles(t, masterCfg.Root, slaveCfg.Root)
	checkServes(t, master, slave)
	sameTables(t, master, slave)
	if logs.Count("lost the connection") != 1 {
		t.Fatalf("want one 'lost the connection' line:\n%s", logs)
	}
	t.Logf("slave log:\n%s", logs)
}

func TestSlaveRestartResumesAndWipedSlaveResyncs(t *testing.T) {
	masterCfg, slaveCfg := storeConfig(t.TempDir()), storeConfig(t.TempDir())
	master := openStore(t, masterCfg)
	defer master.Close()
	p := &producer{store: master, subjects: testSubjects}
	m, _ := startMaster(t, master, "127.0.0.1:0", nil)
	addr := m.Addr().String()

	slave := openStore(t, slaveCfg)
	_, sr := startSlave(t, addr, slave, nil)
	stop := make(chan struct{})
	wg := runProducers(t, p, 2, stop)
	time.Sleep(300 * time.Millisecond)
	sr.stop() // the slave is killed (closed) while the master writes on
	if err := slave.Close(); err != nil {
		t.Fatal(err)
	}
	time.Sleep(200 * time.Millisecond)
	close(stop)
	wg.Wait()

	slave = openStore(t, slaveCfg)
	resumeFrom := slave.LogEnd(storage.MessageLog)
	if resumeFrom == 0 {
		t.Fatal("the slave copied nothing before its restart")
	}
	reg := prometheus.NewRegistry()
	startSlave(t, addr, slave, func(c *SlaveConfig) { c.Registerer = reg })
	waitCaughtUp(t, master, slave, 20*time.Second)
	if copied := counterValue(t, reg, "qmq_replication_slave_copied_bytes_total", "message"); copied >= float64(master.MessageLogEnd()) {
		t.Fatalf("the restarted slave copied %v bytes of %d: it did not resume from its end %d", copied, master.MessageLogEnd(), resumeFrom)
	}
	sameFiles(t, masterCfg.Root, slaveCfg.Root)
	checkServes(t, master, slave)
	sameTables(t, master, slave)
	if err := slave.Close(); err != nil {
		t.Fatal(err)
	}

	// Wiped: the slave copies everything again.
	if err := os.RemoveAll(slaveCfg.Root); err != nil {
		t.Fatal(err)
	}
	slave = openStore(t, slaveCfg)
	defer slave.Close()
	startSlave(t, addr, slave, nil)
	waitCaughtUp(t, master, slave, 20*time.Second)
	sameFiles(t, masterCfg.Root, slaveCfg.Root)
	checkServes(t, master, slave)
	sameTables(t, master, slave)
}

func counterValue(t testing.TB, reg *prometheus.Registry, name, log string) float64 {
	t.Helper()
	families, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range families {
		if f.GetName() != name {
			continue
		}
		for _, m := range f.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == "log" && l.GetValue() == log {
					return m.GetCounter().GetValue()
				}
			}
		}
	}
	t.Fatalf("metric %s{log=%q} not found", name, log)
	return 0
}

func TestWaitSlaveWrote(t *testing.T) {
	masterCfg, slaveCfg := storeConfig(t.TempDir()), storeConfig(t.TempDir())
	master := openStore(t, masterCfg)
	defer master.Close()
	slave := openStore(t, slaveCfg)
	defer slave.Close()
	p := &producer{store: master, subjects: testSubjects}
	m, _ := startMaster(t, master, "127.0.0.1:0", nil)

	// No slave: the wait ends with the context, saying so.
	end := p.appendBatch(t)
	ctx, cancel := context.WithTimeout(context.Background(), 150*time.Millisecond)
	err := m.WaitSlaveWrote(ctx, end)
	cancel()
	if !errors.Is(err, context.DeadlineExceeded) || !strings.Contains(err.Error(), "no slave has connected") {
		t.Fatalf("wait without a slave: %v", err)
	}

	_, sr := startSlave(t, m.Addr().String(), slave, nil)
	// Many concurrent writers: each returns only once the slave holds its batch.
	var wg sync.WaitGroup
	errs := make(chan error, 64)
	for range 64 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range 10 {
				end := p.appendBatch(t)
				ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
				err := m.WaitSlaveWrote(ctx, end)
				cancel()
				if err != nil {
					errs <- err
					return
				}
				if got := slave.LogEnd(storage.MessageLog); got < end {
					errs <- errors.New("WaitSlaveWrote returned before the slave wrote the batch")
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	if n := m.waiters.waiting.Load(); n != 0 {
		t.Fatalf("%d waiters left", n)
	}

	// The slave goes down: waits time out and name what the slave reported.
	sr.stop()
	end = p.appendBatch(t)
	ctx, cancel = context.WithTimeout(context.Background(), 200*time.Millisecond)
	err = m.WaitSlaveWrote(ctx, end)
	cancel()
	if !errors.Is(err, context.DeadlineExceeded) || !strings.Contains(err.Error(), "reported message-log offset") {
		t.Fatalf("wait with the slave down: %v", err)
	}
	if l := m.Lag(); l.MessageBytes <= 0 || l.MessageDelay <= 0 {
		t.Fatalf("lag with the slave down: %+v", l)
	}

	// Closing the master fails pending waits.
	done := make(chan error, 1)
	go func() { done <- m.WaitSlaveWrote(context.Background(), end) }()
	time.Sleep(20 * time.Millisecond)
	m.Close()
	if err := <-done; !errors.Is(err, errClosed) {
		t.Fatalf("wait after Close: %v", err)
	}
}

// WaitSlaveWroteActions returns once the slave holds the action log up to
// the offset (and its table has the action), times out naming what the
// slave reported, and fails when the master closes.
func TestWaitSlaveWroteActions(t *testing.T) {
	master := openStore(t, storeConfig(t.TempDir()))
	defer master.Close()
	slave := openStore(t, storeConfig(t.TempDir()))
	defer slave.Close()
	m, _ := startMaster(t, master, "127.0.0.1:0", nil)
	reset := func(group string) int64 {
		end, err := master.ApplyActionsDurable([]actionlog.Action{{Type: actionlog.Reset, Subject: "s", Group: group, ConsumerID: "c", LastMsgSeq: 41}})
		if err != nil {
			t.Fatal(err)
		}
		return end
	}
	end := reset("g0")
	ctx, cancel := context.WithTimeout(context.Background(), 150*time.Millisecond)
	err := m.WaitSlaveWroteActions(ctx, end)
	cancel()
	if !errors.Is(err, context.DeadlineExceeded) || !strings.Contains(err.Error(), "no slave has connected") {
		t.Fatalf("wait without a slave: %v", err)
	}
	_, sr := startSlave(t, m.Addr().String(), slave, nil)
	for i := range 20 {
		group := "g" + strconv.Itoa(i+1)
		end := reset(group)
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		err := m.WaitSlaveWroteActions(ctx, end)
		cancel()
		if err != nil {
			t.Fatal(err)
		}
		var ok bool
		slave.PullLog(func(tb *pulllog.Table) { _, ok = tb.GroupMaxPulledMsgSeq("s", group) })
		if got := slave.LogEnd(storage.ActionLog); got < end || !ok {
			t.Fatalf("WaitSlaveWroteActions returned with the slave's action log at %d (want %d), group known %v", got, end, ok)
		}
	}
	sr.stop()
	end = reset("down")
	ctx, cancel = context.WithTimeout(context.Background(), 200*time.Millisecond)
	err = m.WaitSlaveWroteActions(ctx, end)
	cancel()
	if !errors.Is(err, context.DeadlineExceeded) || !strings.Contains(err.Error(), "reported action-log offset") {
		t.Fatalf("wait with the slave down: %v", err)
	}
	done := make(chan error, 1)
	go func() { done <- m.WaitSlaveWroteActions(context.Background(), end) }()
	time.Sleep(20 * time.Millisecond)
	m.Close()
	if err := <-done; !errors.Is(err, errClosed) {
		t.Fatalf("wait after Close: %v", err)
	}
}

func TestSegmentSizeMismatchRefused(t *testing.T) {
	master := openStore(t, storeConfig(t.TempDir()))
	defer master.Close()
	cfg := storeConfig(t.TempDir())
	cfg.MessageSegmentSize = 128 << 10
	slave := openStore(t, cfg)
	defer slave.Close()
	m, _ := startMaster(t, master, "127.0.0.1:0", nil)
	logs := &testlog.Buffer{}
	s, _ := startSlave(t, m.Addr().String(), slave, func(c *SlaveConfig) { c.Logger = testLogger(t, "slave", logs) })
	time.Sleep(700 * time.Millisecond)
	st := s.Status()
	for _, want := range []string{"messagelog.segment.size", "65536", "131072"} {
		if !strings.Contains(st.LastError, want) {
			t.Fatalf("error %q does not name %s", st.LastError, want)
		}
	}
	if n := logs.Count("segment sizes differ"); n != 1 {
		t.Fatalf("%d error lines, want 1:\n%s", n, logs)
	}
	t.Logf("slave log:\n%s", logs)
	if slave.LogEnd(storage.MessageLog) != 0 || !slave.LogEmpty(storage.MessageLog) {
		t.Fatal("the refused slave wrote something")
	}
}

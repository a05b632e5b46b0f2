package replication

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/qmq-go/qmq/protocol"
	"github.com/qmq-go/qmq/protocol/remoting"
	"github.com/qmq-go/qmq/storage"
	"github.com/qmq-go/qmq/storage/messagelog"
)

// benchStoreConfig has production-like segments (16 MiB) and QMQ's flush policy.
func benchStoreConfig(root string) storage.Config {
	c := storeConfig(root)
	c.MessageSegmentSize = 16 << 20
	c.ActionSegmentSize = 4 << 20
	c.ConsumerLogSegmentUnit = 1 << 20
	c.FlushInterval = 500 * time.Millisecond
	c.MessageCheckpointInterval = 10000
	c.CheckpointMaxAge = time.Minute
	return c
}

// fillMaster appends about size bytes of 1 KiB messages to 10 subjects.
func fillMaster(tb testing.TB, s *storage.Store, size int64) {
	tb.Helper()
	body := make([]byte, 1000)
	for i := range body {
		body[i] = byte(i)
	}
	msgs := make([]messagelog.Message, 32)
	for s.MessageLogEnd() < size {
		for i := range msgs {
			msgs[i] = messagelog.Message{Subject: fmt.Sprintf("bench.subject.%d", i%10), Payload: body}
		}
		if _, err := s.Append(context.Background(), msgs); err != nil {
			tb.Fatal(err)
		}
	}
}

// chunk is one answer of the master: raw bytes at an offset.
type chunk struct {
	offset int64
	data   []byte
}

// masterChunks reads the whole message log as a slave would, batch bytes at a time.
func masterChunks(tb testing.TB, s *storage.Store, batch int) []chunk {
	tb.Helper()
	replicaCfg := benchStoreConfig(tb.TempDir())
	replica := openStore(tb, replicaCfg)
	defer replica.Close()
	var out []chunk
	for {
		off := replica.LogEnd(storage.MessageLog)
		v, err := s.ReadRaw(storage.MessageLog, off, batch)
		if err != nil {
			tb.Fatal(err)
		}
		if v.Len() == 0 {
			return out
		}
		out = append(out, chunk{off, slices.Clone(v.Bytes())})
		v.Release()
		if _, err := replica.AppendRaw(storage.MessageLog, off, out[len(out)-1].data); err != nil {
			tb.Fatal(err)
		}
	}
}

// BenchmarkMasterReadPath: copy requests answered by a master over a real
// connection (the master reads its log and sends it with sendfile; the
// client reads the answers), as a slave's copy loop sees it without appending.
func BenchmarkMasterReadPath(b *testing.B) {
	master := openStore(b, benchStoreConfig(b.TempDir()))
	defer master.Close()
	fillMaster(b, master, 64<<20)
	chunks := masterChunks(b, master, DefaultBatchSize)
	m, err := NewMaster(MasterConfig{Addr: "127.0.0.1:0", Store: ForBroker(master)})
	if err != nil {
		b.Fatal(err)
	}
	defer m.Close()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go m.Run(ctx)
	c, err := remoting.Dial(ctx, m.Addr().String(), 0)
	if err != nil {
		b.Fatal(err)
	}
	defer c.Close()
	b.SetBytes(master.MessageLogEnd() / int64(len(chunks)))
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		ch := chunks[i%len(chunks)]
		resp, err := c.Call(ctx, protocol.CodeSyncLogRequest, protocol.AppendSyncLogRequest(nil,
			protocol.SyncLogRequest{Type: protocol.SyncTypeMessage, MessageLogOffset: ch.offset}))
		if err != nil {
			b.Fatal(err)
		}
		r, err := protocol.DecodeSyncLogResponse(resp.Body)
		if resp.Header.Code != protocol.CodeSuccess || err != nil || r.StartOffset != ch.offset || len(r.Data) == 0 {
			b.Fatalf("answer %d (%v): %d bytes from %d", resp.Header.Code, err, len(r.Data), r.StartOffset)
		}
	}
}

// BenchmarkSlaveAppendPath: validating and appending the master's raw bytes
// (CRC of every record, sequences, the mapping write); the dispatcher runs
// concurrently as it does on a slave.
func BenchmarkSlaveAppendPath(b *testing.B) {
	master := openStore(b, benchStoreConfig(b.TempDir()))
	defer master.Close()
	fillMaster(b, master, 32<<20)
	chunks := masterChunks(b, master, DefaultBatchSize)
	b.SetBytes(master.MessageLogEnd())
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		b.StopTimer()
		replica := openStore(b, benchStoreConfig(b.TempDir()))
		b.StartTimer()
		for _, c := range chunks {
			if _, err := replica.AppendRaw(storage.MessageLog, c.offset, c.data); err != nil {
				b.Fatal(err)
			}
		}
		b.StopTimer()
		replica.Close()
		b.StartTimer()
	}
}

// BenchmarkCatchUp: a new slave copies a 64 MiB backlog over loopback.
func BenchmarkCatchUp(b *testing.B) {
	master := openStore(b, benchStoreConfig(b.TempDir()))
	defer master.Close()
	fillMaster(b, master, 64<<20)
	m, _ := startMaster(b, master, "127.0.0.1:0", nil)
	b.SetBytes(master.MessageLogEnd())
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		b.StopTimer()
		slave := openStore(b, benchStoreConfig(b.TempDir()))
		b.StartTimer()
		_, sr := startSlave(b, m.Addr().String(), slave, nil)
		waitCaughtUp(b, master, slave, time.Minute)
		b.StopTimer()
		sr.stop()
		slave.Close()
		b.StartTimer()
	}
}

// lagUnderLoad appends batches of 10 messages of 1 KiB every interval for
// d and returns, per batch, the time from the end of the append to the
// return of WaitSlaveWrote (the slave wrote the batch and said so).
func lagUnderLoad(tb testing.TB, interval, d time.Duration) []time.Duration {
	masterCfg, slaveCfg := benchStoreConfig(tb.TempDir()), benchStoreConfig(tb.TempDir())
	master := openStore(tb, masterCfg)
	defer master.Close()
	slave := openStore(tb, slaveCfg)
	defer slave.Close()
	m, _ := startMaster(tb, master, "127.0.0.1:0", nil)
	startSlave(tb, m.Addr().String(), slave, nil)
	body := make([]byte, 1000)
	msgs := make([]messagelog.Message, 10)
	var mu sync.Mutex
	var lags []time.Duration
	var wg sync.WaitGroup
	tick := time.NewTicker(interval)
	defer tick.Stop()
	deadline := time.Now().Add(d)
	for now := range tick.C {
		if now.After(deadline) {
			break
		}
		for i := range msgs {
			msgs[i] = messagelog.Message{Subject: fmt.Sprintf("lag.%d", i), Payload: body}
		}
		out, err := master.Append(context.Background(), msgs)
		if err != nil {
			tb.Fatal(err)
		}
		end := out[len(out)-1].Offset + int64(out[len(out)-1].Size)
		appended := time.Now()
		wg.Add(1)
		go func() {
			defer wg.Done()
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			if err := m.WaitSlaveWrote(ctx, end); err != nil {
				tb.Error(err)
				return
			}
			lag := time.Since(appended)
			mu.Lock()
			lags = append(lags, lag)
			mu.Unlock()
		}()
	}
	wg.Wait()
	slices.Sort(lags)
	return lags
}

func percentile(sorted []time.Duration, p float64) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	return sorted[min(len(sorted)-1, int(float64(len(sorted))*p))]
}

// BenchmarkReplicationLag reports the p50/p99 lag in ms at 5,000 messages/s.
func BenchmarkReplicationLag(b *testing.B) {
	for i := 0; i < b.N; i++ {
		lags := lagUnderLoad(b, 2*time.Millisecond, 3*time.Second)
		b.ReportMetric(float64(percentile(lags, 0.50).Microseconds())/1000, "p50-ms")
		b.ReportMetric(float64(percentile(lags, 0.99).Microseconds())/1000, "p99-ms")
		b.ReportMetric(float64(lags[len(lags)-1].Microseconds())/1000, "max-ms")
	}
}

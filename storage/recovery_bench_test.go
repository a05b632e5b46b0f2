package storage

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/qmq-go/qmq/storage/messagelog"
)

// TestHelperBulkWriter is the child of BenchmarkRecoveryAfterKill9: it fills
// the store with QMQ_BULK_BYTES of 1 KiB messages over 16 subjects using
// production segment sizes, prints "full", and waits to be killed.
func TestHelperBulkWriter(t *testing.T) {
	root := os.Getenv("QMQ_BULK_ROOT")
	if root == "" {
		t.Skip("child process of BenchmarkRecoveryAfterKill9")
	}
	target, _ := strconv.ParseInt(os.Getenv("QMQ_BULK_BYTES"), 10, 64)
	cfg := DefaultConfig(root)
	s, err := Open(cfg)
	if err != nil {
		fmt.Println("open:", err)
		os.Exit(3)
	}
	payload := []byte(strings.Repeat("q", 1024))
	batch := make([]messagelog.Message, 32)
	ctx := context.Background()
	for i := 0; s.MessageLogEnd() < target; i++ {
		for j := range batch {
			batch[j] = messagelog.Message{Subject: "subject." + strconv.Itoa((i*32+j)%16), Payload: payload}
		}
		if _, err := s.Append(ctx, batch); err != nil {
			fmt.Println("append:", err)
			os.Exit(4)
		}
	}
	_ = s.WaitDispatched(ctx, s.MessageLogEnd())
	fmt.Println("full")
	time.Sleep(time.Hour)
}

// BenchmarkRecoveryAfterKill9 measures Open (recovery scan, consumer-log
// replay, action replay) of a store holding QMQ_BULK_BYTES (default 1 GiB)
// whose writer was killed with SIGKILL. The target: under 3 s for 1 GiB.
func BenchmarkRecoveryAfterKill9(b *testing.B) {
	size := int64(1 << 30)
	if v := os.Getenv("QMQ_BULK_BYTES"); v != "" {
		size, _ = strconv.ParseInt(v, 10, 64)
	}
	root := b.TempDir()
	cmd := exec.Command(os.Args[0], "-test.run=^TestHelperBulkWriter$")
	cmd.Env = append(os.Environ(), "QMQ_BULK_ROOT="+root, "QMQ_BULK_BYTES="+strconv.FormatInt(size, 10))
	out, err := cmd.StdoutPipe()
	if err != nil {
		b.Fatal(err)
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		b.Fatal(err)
	}
	sc := bufio.NewScanner(out)
	for sc.Scan() {
		if sc.Text() == "full" {
			break
		}
		b.Fatalf("writer: %s", sc.Text())
	}
	_ = cmd.Process.Signal(syscall.SIGKILL)
	_ = cmd.Wait()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		start := time.Now()
		s, err := Open(DefaultConfig(root))
		if err != nil {
			b.Fatal(err)
		}
		took := time.Since(start)
		b.StopTimer()
		b.ReportMetric(took.Seconds(), "s/recovery")
		b.ReportMetric(float64(s.MessageLogEnd())/(1<<20), "MiB")
		// Leave the store as a kill -9 would: no final checkpoint for the next iteration.
		s.cancel()
		s.wg.Wait()
		_ = s.closeLogs()
		b.StartTimer()
	}
}

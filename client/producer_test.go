package client

import (
	"context"
	"errors"
	"fmt"
	"regexp"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/qmq-go/qmq/protocol"
)

func newTestProducer(t *testing.T, endpoint string, opts ...ProducerOption) *Producer {
	t.Helper()
	opts = append([]ProducerOption{WithAppCode("test-app"), WithLogger(testLogger(t, "client"))}, opts...)
	p, err := NewProducer(context.Background(), endpoint, opts...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.Close(context.Background()) })
	return p
}

func TestMessageIDFormatAndProperties(t *testing.T) {
	endpoint, mc := startMeta(t)
	startBroker(t, "g1", mc)
	p := newTestProducer(t, endpoint)
	m := p.NewMessage("order.created")
	if !regexp.MustCompile(`^\d{6}\.\d{6}\.[0-9.]+\.\d+\.\d+$`).MatchString(m.ID()) {
		t.Fatalf("id %q not in QMQ format", m.ID())
	}
	if m.Property(PropAppCode) != "test-app" || m.Property(PropCreateTime) == "" || m.Property(PropExpireTime) == "" {
		t.Fatalf("reserved properties: %v", m.Properties())
	}
	if m2 := p.NewMessage("order.created"); m2.ID() == m.ID() {
		t.Fatal("ids repeat")
	}
	big := strings.Repeat("é", 20000) // 20000 UTF-16 units, 40000 bytes
	m.SetBody(big).AddTag("a").AddTag("b").AddTag("a")
	if m.Body() != big || len(m.Tags()) != 2 {
		t.Fatal("body/tags")
	}
	if _, ok := m.LookupProperty(BodyKey + "#part2"); !ok {
		t.Fatalf("large string not split: %v", len(m.Properties()))
	}
	for i := 0; i < 10; i++ {
		m.AddTag(fmt.Sprint("t", i))
	}
	if err := p.Send(context.Background(), m); err == nil || !strings.Contains(err.Error(), "tags") {
		t.Fatalf("12 tags: %v", err)
	}
}

func TestSyncSendAndPerMessageCodes(t *testing.T) {
	endpoint, mc := startMeta(t)
	b := startBroker(t, "g1", mc)
	b.set(func(b *fakeBroker) {
		b.failSend = func(m *protocol.Message) int32 {
			switch attr(*m, "k") {
			case "dup":
				return protocol.SendDuplicate
			case "block":
				return protocol.SendBlock
			case "busy":
				return protocol.SendBrokerBusy
			}
			return 0
		}
	})
	p := newTestProducer(t, endpoint, WithMaxRetries(3))
	ctx := context.Background()

	ok := p.NewMessage("s1").SetProperty("k", "v").AddTag("x").SetBody("hello")
	if err := p.Send(ctx, ok); err != nil {
		t.Fatal(err)
	}
	got := b.stored("s1")
	if len(got) != 1 || got[0].MessageID != ok.ID() || attr(got[0], "k") != "v" || attr(got[0], BodyKey) != "hello" || got[0].Tags[0] != "x" {
		t.Fatalf("stored %+v", got)
	}

	dup := p.NewMessage("s1").SetProperty("k", "dup")
	block := p.NewMessage("s1").SetProperty("k", "block")
	busy := p.NewMessage("s1").SetProperty("k", "busy")
	fine := p.NewMessage("s1")
	err := p.Send(ctx, dup, block, busy, fine)
	var be *BatchError
	if !errors.As(err, &be) || len(be.Failed) != 2 {
		t.Fatalf("want 2 failures, got %v", err)
	}
	codes := map[string]*SendError{}
	for _, f := range be.Failed {
		codes[f.MessageID] = f
	}
	if e := codes[block.ID()]; e == nil || e.Code != CodeBlock || e.Tries != 1 {
		t.Fatalf("block: %+v (BLOCK must not be retried)", e)
	}
	if e := codes[busy.ID()]; e == nil || e.Code != CodeBrokerBusy || e.Tries != 3 {
		t.Fatalf("busy: %+v (want 3 tries)", e)
	}
	var se *SendError
	if !errors.As(err, &se) {
		t.Fatal("errors.As *SendError")
	}
	if n := len(b.stored("s1")); n != 2 {
		t.Fatalf("stored %d, want 2 (first + fine)", n)
	}
}

func TestSendRetriesOnOtherGroup(t *testing.T) {
	endpoint, mc := startMeta(t)
	b1 := startBroker(t, "g1", mc)
	b2 := startBroker(t, "g2", mc)
	bad := func(b *fakeBroker) { b.sendStatus = protocol.CodeBrokerError }
	b1.set(bad)
	p := newTestProducer(t, endpoint)
	ctx := context.Background()
	for i := 0; i < 20; i++ {
		if err := p.Send(ctx, p.NewMessage("s2").SetProperty("i", fmt.Sprint(i))); err != nil {
			t.Fatal(err)
		}
	}
	if n := len(b2.stored("s2")); n != 20 {
		t.Fatalf("g2 stored %d of 20", n)
	}
	// After repeated failures g1's breaker is open: it is skipped.
	b1.mu.Lock()
	sends := b1.sends
	b1.mu.Unlock()
	if sends > 5 {
		t.Fatalf("g1 tried %d times; the breaker should have opened", sends)
	}
	// Both failing: the error carries the broker's status.
	b2.set(bad)
	err := p.Send(ctx, p.NewMessage("s2"))
	var se *SendError
	if !errors.As(err, &se) || se.Code != CodeNoAnswer || se.Tries != DefaultSendTries || !strings.Contains(se.Error(), "BROKER_ERROR") {
		t.Fatalf("both down: %v", err)
	}
}

func TestSendDuplicateIsSuccessAndReadOnlyMovesOn(t *testing.T) {
	endpoint, mc := startMeta(t)
	b1 := startBroker(t, "g1", mc)
	b2 := startBroker(t, "g2", mc)
	b1.set(func(b *fakeBroker) {
		b.failSend = func(*protocol.Message) int32 { return protocol.SendBrokerReadOnly }
	})
	b2.set(func(b *fakeBroker) {
		b.failSend = func(*protocol.Message) int32 { return protocol.SendDuplicate }
	})
	p := newTestProducer(t, endpoint)
	for i := 0; i < 5; i++ {
		if err := p.Send(context.Background(), p.NewMessage("s3")); err != nil {
			t.Fatal(err)
		}
	}
}

func TestAsyncBatchingAndCallbacks(t *testing.T) {
	endpoint, mc := startMeta(t)
	b1 := startBroker(t, "g1", mc)
	b2 := startBroker(t, "g2", mc)
	for _, b := range []*fakeBroker{b1, b2} {
		b.set(func(b *fakeBroker) { b.sendDelay = 20 * time.Millisecond })
	}
	p := newTestProducer(t, endpoint, WithBatchSize(30), WithSenders(2))
	const n = 600
	var okCount, failCount atomic.Int64
	var mu sync.Mutex
	seen := map[string]bool{}
	for i := 0; i < n; i++ {
		m := p.NewMessage("async").SetProperty("i", fmt.Sprint(i))
		err := p.SendAsync(m, func(m *Message, err error) {
			mu.Lock()
			if seen[m.ID()] {
				t.Errorf("callback twice for %s", m.ID())
			}
			seen[m.ID()] = true
			mu.Unlock()
			if err != nil {
				failCount.Add(1)
			} else {
				okCount.Add(1)
			}
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	if err := p.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	if okCount.Load() != n || failCount.Load() != 0 {
		t.Fatalf("ok %d fail %d", okCount.Load(), failCount.Load())
	}
	stored := len(b1.stored("async")) + len(b2.stored("async"))
	b1.mu.Lock()
	b2.mu.Lock()
	reqs := b1.sends + b2.sends
	b2.mu.Unlock()
	b1.mu.Unlock()
	if stored != n {
		t.Fatalf("stored %d", stored)
	}
	if reqs > n/5 {
		t.Fatalf("%d requests for %d messages: not batched", reqs, n)
	}
	t.Logf("%d messages in %d requests", n, reqs)
	if err := p.SendAsync(p.NewMessage("async"), nil); !errors.Is(err, ErrClosed) {
		t.Fatalf("after close: %v", err)
	}
}

func TestAsyncQueueFullAndCloseTimeout(t *testing.T) {
	endpoint, mc := startMeta(t)
	b := startBroker(t, "g1", mc)
	b.set(func(b *fakeBroker) { b.sendDelay = 300 * time.Millisecond })
	p := newTestProducer(t, endpoint, WithQueueSize(5), WithSenders(1), WithBatchSize(1))
	var failed atomic.Int64
	full := false
	for i := 0; i < 50 && !full; i++ {
		err := p.SendAsync(p.NewMessage("q"), func(m *Message, err error) {
			if err != nil {
				failed.Add(1)
			}
		})
		full = errors.Is(err, ErrQueueFull)
	}
	if !full {
		t.Fatal("queue never full")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	if err := p.Close(ctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("close: %v", err)
	}
	if failed.Load() == 0 {
		t.Fatal("unsent messages should fail after a forced close")
	}
}

// TestBusyGroupIsSkipped: a group answering BROKER_BUSY for its messages (a
// master whose slave does not confirm writes) trips the group's breaker, so
// the producer sends to the other group instead of waiting on every send.
func TestBusyGroupIsSkipped(t *testing.T) {
	endpoint, mc := startMeta(t)
	b1 := startBroker(t, "g1", mc)
	b2 := startBroker(t, "g2", mc)
	b1.set(func(b *fakeBroker) { b.failSend = func(*protocol.Message) int32 { return protocol.SendBrokerBusy } })
	p := newTestProducer(t, endpoint)
	ctx := context.Background()
	for i := 0; i < 20; i++ {
		if err := p.Send(ctx, p.NewMessage("s3").SetProperty("i", fmt.Sprint(i))); err != nil {
			t.Fatal(err)
		}
	}
	if n := len(b2.stored("s3")); n != 20 {
		t.Fatalf("g2 stored %d of 20", n)
	}
	b1.mu.Lock()
	sends := b1.sends
	b1.mu.Unlock()
	if sends > 5 {
		t.Fatalf("the busy group was tried %d times; its breaker should have opened after 3", sends)
	}
}

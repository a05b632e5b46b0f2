package main

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/qmq-go/qmq/internal/loadgen"
)

// rabbitStampHeader carries the send time (Unix nanoseconds) of a bench message.
const rabbitStampHeader = "bench-ts"

// Queue kinds the harness runs RabbitMQ with: each one's idiomatic durable
// path for per-message acknowledgement.
const (
	rabbitQuorum = "quorum" // a durable quorum queue: competing consumers, per-message ack
	rabbitStream = "stream" // an append-only stream (x-queue-type=stream) read over AMQP 0-9-1
)

// rabbitBench runs the workloads against RabbitMQ: one durable queue of the
// given kind per subject (bench.<run>.<kind>.s<i>, deleted at the end),
// publishing with publisher confirms and a window of outstanding confirms
// (as nats.go's asynchronous publish), consuming with manual per-message ack
// and a prefetch.
//
// The run's consumer group starts when its first member subscribes and
// receives only what is published from then on, as a new QMQ consumer group
// and the JetStream durable of the NATS harness do: a quorum queue is purged
// then (the produce workload's messages are nobody's backlog).
//
// A stream has no competing consumers over AMQP: every consumer reads every
// entry. So subscriber k of n reads the streams i with i%n == k, and the
// run's "consumer group" is emulated by remembering the offset after the
// last entry delivered, where the next members start (what a stream
// consumer with server-side offset tracking does through the stream
// protocol, which AMQP clients cannot use).
type rabbitBench struct {
	url       string
	kind      string
	queues    []string
	index     map[string]int
	payload   []byte
	window    int
	prefetch  int
	consumers int

	mu      sync.Mutex
	next    []int64 // stream: per queue, the offset the group resumes at (-1: "next", i.e. only new entries)
	started bool    // the group exists: its first member subscribed
}

func newRabbitBench(url, kind, runID string, subjects, size, window, prefetch, consumers int) (*rabbitBench, error) {
	if kind != rabbitQuorum && kind != rabbitStream {
		return nil, fmt.Errorf("rabbit queue kind %q: want %s or %s", kind, rabbitQuorum, rabbitStream)
	}
	b := &rabbitBench{url: url, kind: kind, index: map[string]int{}, payload: make([]byte, size),
		window: window, prefetch: prefetch, consumers: consumers, next: make([]int64, subjects)}
	for i := range b.payload {
		b.payload[i] = 'x'
	}
	for i := 0; i < subjects; i++ {
		q := fmt.Sprintf("bench.%s.%s.s%d", runID, kind, i)
		b.queues = append(b.queues, q)
		b.index[q] = i
		b.next[i] = -1
	}
	conn, err := amqp.Dial(url)
	if err != nil {
		return nil, fmt.Errorf("connect to %s: %w", url, err)
	}
	defer conn.Close()
	ch, err := conn.Channel()
	if err != nil {
		return nil, err
	}
	for _, q := range b.queues {
		if _, err := ch.QueueDeclare(q, true, false, false, false, amqp.Table{"x-queue-type": kind}); err != nil {
			return nil, fmt.Errorf("declare %s queue %s: %w", kind, q, err)
		}
	}
	return b, nil
}

// Close deletes the run's queues.
func (b *rabbitBench) Close() {
	conn, err := amqp.Dial(b.url)
	if err != nil {
		return
	}
	defer conn.Close()
	ch, err := conn.Channel()
	if err != nil {
		return
	}
	for _, q := range b.queues {
		_, _ = ch.QueueDelete(q, false, false, false)
	}
}

type rabbitPublisher struct {
	b           *rabbitBench
	conn        *amqp.Connection
	ch          *amqp.Channel
	outstanding atomic.Int64
	ok          atomic.Int64
	failed      atomic.Int64
	confirmed   chan struct{} // closed when the confirmation channel closes
}

func (b *rabbitBench) NewPublisher(ctx context.Context) (loadgen.Publisher, error) {
	conn, err := amqp.Dial(b.url)
	if err != nil {
		return nil, err
	}
	ch, err := conn.Channel()
	if err == nil {
		err = ch.Confirm(false)
	}
	if err != nil {
		conn.Close()
		return nil, fmt.Errorf("publisher channel in confirm mode: %w", err)
	}
	p := &rabbitPublisher{b: b, conn: conn, ch: ch, confirmed: make(chan struct{})}
	// Buffered to the window: the library delivers every confirmation (a
	// "multiple" ack expanded) and must never block on this channel.
	confirms := ch.NotifyPublish(make(chan amqp.Confirmation, b.window+1))
	go func() {
		defer close(p.confirmed)
		for c := range confirms {
			if c.Ack {
				p.ok.Add(1)
			} else {
				p.failed.Add(1)
			}
			p.outstanding.Add(-1)
		}
	}()
	return p, nil
}

func (p *rabbitPublisher) Publish(subject int, stamp int64) error {
	if p.outstanding.Load() >= int64(p.b.window) {
		return loadgen.ErrBusy
	}
	p.outstanding.Add(1)
	err := p.ch.PublishWithContext(context.Background(), "", p.b.queues[subject], false, false, amqp.Publishing{
		Headers: amqp.Table{rabbitStampHeader: stamp}, DeliveryMode: amqp.Persistent, Body: p.b.payload})
	if err != nil {
		p.outstanding.Add(-1)
	}
	return err
}

func (p *rabbitPublisher) Acked() (int64, int64) { return p.ok.Load(), p.failed.Load() }

func (p *rabbitPublisher) Close(ctx context.Context) error {
	defer p.conn.Close()
	for p.outstanding.Load() > 0 {
		select {
		case <-ctx.Done():
			return fmt.Errorf("%d publishes unconfirmed: %w", p.outstanding.Load(), ctx.Err())
		case <-p.confirmed:
			return errors.New("confirmation channel closed with publishes unconfirmed")
		case <-time.After(time.Millisecond):
		}
	}
	return nil
}

type rabbitSubscriber struct {
	conn *amqp.Connection
	ch   *amqp.Channel
	tags []string
	wg   sync.WaitGroup
}

func (b *rabbitBench) NewSubscriber(ctx context.Context, idx int, fn func(int, int64)) (loadgen.Subscriber, error) {
	conn, err := amqp.Dial(b.url)
	if err != nil {
		return nil, err
	}
	s := &rabbitSubscriber{conn: conn}
	ch, err := conn.Channel()
	s.ch = ch
	if err == nil {
		err = b.startGroup(ch)
	}
	if err == nil {
		err = ch.Qos(b.prefetch, 0, false)
	}
	if err != nil {
		conn.Close()
		return nil, fmt.Errorf("consumer channel with prefetch %d: %w", b.prefetch, err)
	}
	for i, q := range b.queues {
		var args amqp.Table
		if b.kind == rabbitStream {
			if i%b.consumers != idx {
				continue
			}
			args = amqp.Table{"x-stream-offset": b.resumeAt(i)}
		}
		tag := fmt.Sprintf("bench-%d-%d", idx, i)
		s.tags = append(s.tags, tag)
		deliveries, err := ch.Consume(q, tag, false, false, false, false, args)
		if err != nil {
			conn.Close()
			return nil, fmt.Errorf("consume %s: %w", q, err)
		}
		s.wg.Add(1)
		go func(i int) {
			defer s.wg.Done()
			for d := range deliveries {
				stamp, ok := d.Headers[rabbitStampHeader].(int64)
				if !ok {
					stamp = -1
				}
				fn(i, stamp)
				_ = d.Ack(false)
				if b.kind == rabbitStream {
					if off, ok := d.Headers["x-stream-offset"].(int64); ok {
						b.delivered(i, off)
					}
				}
			}
		}(i)
	}
	return s, nil
}

// startGroup purges the quorum queues before the group's first member
// subscribes.
func (b *rabbitBench) startGroup(ch *amqp.Channel) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.started {
		return nil
	}
	if b.kind == rabbitQuorum {
		for _, q := range b.queues {
			if _, err := ch.QueuePurge(q, false); err != nil {
				return fmt.Errorf("purge %s before the group starts: %w", q, err)
			}
		}
	}
	b.started = true
	return nil
}

// resumeAt is where a new member of the group starts reading stream i.
func (b *rabbitBench) resumeAt(i int) any {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.next[i] < 0 {
		return "next"
	}
	return b.next[i]
}

func (b *rabbitBench) delivered(i int, offset int64) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if offset+1 > b.next[i] {
		b.next[i] = offset + 1
	}
}

// Close cancels the consumers and handles (and acknowledges) what was
// already delivered before closing the connection: closing with deliveries
// unacknowledged would have RabbitMQ deliver them again to the next member,
// counted twice and with the age of the earlier workload.
func (s *rabbitSubscriber) Close() error {
	for _, tag := range s.tags {
		_ = s.ch.Cancel(tag, false)
	}
	drained := make(chan struct{})
	go func() { s.wg.Wait(); close(drained) }()
	select {
	case <-drained:
	case <-time.After(10 * time.Second):
	}
	err := s.conn.Close()
	s.wg.Wait()
	return err
}

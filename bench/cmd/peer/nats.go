package main

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/qmq-go/qmq/internal/loadgen"
)

// natsStampHeader carries the send time (Unix nanoseconds) of a bench message.
const natsStampHeader = "Bench-Ts"

// natsBench runs the workloads against NATS JetStream: one file-storage
// stream per run covering bench.<run>.> (one replica unless --nats-replicas
// says more), a durable pull consumer with explicit ack, asynchronous
// publishing.
type natsBench struct {
	url      string
	stream   string
	durable  string
	subjects []string
	index    map[string]int
	payload  []byte
	maxPend  int
	nc       *nats.Conn
	js       jetstream.JetStream
	mu       sync.Mutex
	created  bool
}

func newNATSBench(ctx context.Context, url, runID string, subjects, size, maxPending, replicas int) (*natsBench, error) {
	b := &natsBench{url: url, stream: "BENCH_" + runID, durable: "bench_" + runID, index: map[string]int{},
		payload: make([]byte, size), maxPend: maxPending}
	for i := range b.payload {
		b.payload[i] = 'x'
	}
	for i := 0; i < subjects; i++ {
		s := fmt.Sprintf("bench.%s.s%d", runID, i)
		b.subjects = append(b.subjects, s)
		b.index[s] = i
	}
	nc, err := nats.Connect(url)
	if err != nil {
		return nil, err
	}
	b.nc = nc
	js, err := jetstream.New(nc)
	if err != nil {
		nc.Close()
		return nil, err
	}
	b.js = js
	if err := b.createStream(ctx, runID, replicas); err != nil {
		nc.Close()
		return nil, err
	}
	return b, nil
}

// createStream creates the run's stream. A replicated one is led by the
// server the bench is connected to, as a QMQ producer sends to the master
// itself: otherwise every publish would take one more hop. A cluster that
// has just started answers "JetStream system temporarily unavailable" until
// it has elected its meta leader, so creation is retried for a while.
func (b *natsBench) createStream(ctx context.Context, runID string, replicas int) error {
	cfg := jetstream.StreamConfig{Name: b.stream, Subjects: []string{"bench." + runID + ".>"},
		Storage: jetstream.FileStorage, Replicas: replicas}
	deadline := time.Now().Add(30 * time.Second)
	for {
		_, err := b.js.CreateStream(ctx, cfg)
		if err == nil {
			break
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("create stream %s with %d replicas (retried 30 s): %w", b.stream, replicas, err)
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("create stream %s: %w (last error: %v)", b.stream, ctx.Err(), err)
		case <-time.After(500 * time.Millisecond):
		}
	}
	if replicas <= 1 {
		return nil
	}
	local := b.nc.ConnectedServerName()
	for attempt := 0; ; attempt++ {
		info, err := b.js.Stream(ctx, b.stream)
		if err != nil {
			return fmt.Errorf("stream %s info: %w", b.stream, err)
		}
		ci := info.CachedInfo().Cluster
		if ci != nil && ci.Leader == local && len(ci.Replicas) == replicas-1 && allCurrent(ci.Replicas) {
			return nil
		}
		if attempt == 40 {
			return fmt.Errorf("stream %s: the leader is not %s (the server the bench is connected to) with every replica current after 40 tries: %+v",
				b.stream, local, ci)
		}
		if ci != nil && ci.Leader != "" && ci.Leader != local {
			// Step down: another replica takes over; repeat until it is ours.
			_, _ = b.nc.RequestWithContext(ctx, "$JS.API.STREAM.LEADER.STEPDOWN."+b.stream, nil)
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("wait for stream %s's leader: %w", b.stream, ctx.Err())
		case <-time.After(500 * time.Millisecond):
		}
	}
}

func allCurrent(peers []*jetstream.PeerInfo) bool {
	for _, p := range peers {
		if !p.Current {
			return false
		}
	}
	return true
}

// group creates the durable consumer (the run's "consumer group") when the
// first subscriber starts, delivering only what is published from then on,
// as a new QMQ consumer group does.
func (b *natsBench) group(ctx context.Context) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.created {
		return nil
	}
	_, err := b.js.CreateOrUpdateConsumer(ctx, b.stream, jetstream.ConsumerConfig{Durable: b.durable,
		AckPolicy: jetstream.AckExplicitPolicy, DeliverPolicy: jetstream.DeliverNewPolicy, MaxAckPending: 20000})
	b.created = err == nil
	return err
}

// Group returns a view of b that consumes as the i-th durable of the run
// (i = 0: b itself); it shares b's connection and stream.
func (b *natsBench) Group(i int) loadgen.Backend {
	if i == 0 {
		return b
	}
	return &natsBench{url: b.url, stream: b.stream, durable: fmt.Sprintf("%s_g%d", b.durable, i), subjects: b.subjects,
		index: b.index, payload: b.payload, maxPend: b.maxPend, nc: b.nc, js: b.js}
}

func (b *natsBench) Close() {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_ = b.js.DeleteStream(ctx, b.stream)
	b.nc.Close()
}

type natsPublisher struct {
	b      *natsBench
	nc     *nats.Conn
	js     jetstream.JetStream
	ok     atomic.Int64
	failed atomic.Int64
}

func (b *natsBench) NewPublisher(ctx context.Context) (loadgen.Publisher, error) {
	nc, err := nats.Connect(b.url)
	if err != nil {
		return nil, err
	}
	p := &natsPublisher{b: b, nc: nc}
	p.js, err = jetstream.New(nc,
		jetstream.WithPublishAsyncMaxPending(b.maxPend),
		jetstream.WithPublishAsyncAckHandler(func(jetstream.JetStream, *nats.Msg, *jetstream.PubAck) { p.ok.Add(1) }),
		jetstream.WithPublishAsyncErrHandler(func(jetstream.JetStream, *nats.Msg, error) { p.failed.Add(1) }))
	if err != nil {
		nc.Close()
		return nil, err
	}
	return p, nil
}

func (p *natsPublisher) Publish(subject int, stamp int64) error {
	m := nats.NewMsg(p.b.subjects[subject])
	m.Data = p.b.payload
	m.Header.Set(natsStampHeader, strconv.FormatInt(stamp, 10))
	_, err := p.js.PublishMsgAsync(m)
	if errors.Is(err, jetstream.ErrTooManyStalledMsgs) {
		return loadgen.ErrBusy
	}
	return err
}

func (p *natsPublisher) Acked() (int64, int64) { return p.ok.Load(), p.failed.Load() }

func (p *natsPublisher) Close(ctx context.Context) error {
	defer p.nc.Close()
	select {
	case <-p.js.PublishAsyncComplete():
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

type natsSubscriber struct {
	nc *nats.Conn
	cc jetstream.ConsumeContext
}

func (b *natsBench) NewSubscriber(ctx context.Context, _ int, fn func(int, int64)) (loadgen.Subscriber, error) {
	if err := b.group(ctx); err != nil {
		return nil, fmt.Errorf("create durable consumer: %w", err)
	}
	nc, err := nats.Connect(b.url)
	if err != nil {
		return nil, err
	}
	js, err := jetstream.New(nc)
	if err != nil {
		nc.Close()
		return nil, err
	}
	cons, err := js.Consumer(ctx, b.stream, b.durable)
	if err != nil {
		nc.Close()
		return nil, err
	}
	cc, err := cons.Consume(func(m jetstream.Msg) {
		stamp, err := strconv.ParseInt(m.Headers().Get(natsStampHeader), 10, 64)
		if err != nil {
			stamp = -1
		}
		i, ok := b.index[m.Subject()]
		if !ok {
			i = -1
		}
		fn(i, stamp)
		_ = m.Ack()
	})
	if err != nil {
		nc.Close()
		return nil, err
	}
	return &natsSubscriber{nc: nc, cc: cc}, nil
}

func (s *natsSubscriber) Close() error {
	s.cc.Stop()
	<-s.cc.Closed()
	s.nc.Close()
	return nil
}

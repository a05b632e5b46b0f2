package client

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/go-hclog"
	"go.opentelemetry.io/otel/trace"

	"github.com/qmq-go/qmq/protocol/names"
	"github.com/qmq-go/qmq/tracing"
)

// ErrQueueFull is returned by SendAsync when the send queue is full.
var ErrQueueFull = errors.New("qmq producer: send queue full")

// expireAfter is QMQ's informational qmq_expireTime offset (15 minutes).
const expireAfter = 15 * time.Minute

// Producer sends messages to the broker groups the metaserver routes each
// subject to. It is safe for concurrent use.
type Producer struct {
	cfg producerConfig
	log hclog.Logger
	r   *router
	s   *sender
	ids *idGen
	m   *producerMetrics

	qmu    sync.RWMutex
	closed bool
	queue  chan asyncItem

	// Coordination of the senders (worker): gate is held by the one
	// collecting from queue, inflight counts the requests being sent, and
	// idle is signalled when inflight drops to 0.
	gate     chan struct{}
	inflight atomic.Int32
	idle     chan struct{}

	workCtx    context.Context
	cancelWork context.CancelFunc
	wg         sync.WaitGroup
	closeOnce  sync.Once
	closeErr   error
}

type asyncItem struct {
	out   *outgoing
	done  func(*Message, error)
	start time.Time
}

// NewProducer connects to the metaserver at metaEndpoint
// (http://host:8080/meta/address, consul://qmq-metaserver or host:port) and
// starts the asynchronous senders.
func NewProducer(ctx context.Context, metaEndpoint string, opts ...ProducerOption) (*Producer, error) {
	cfg := producerConfig{
		commonConfig: commonConfig{maxRetries: DefaultSendTries, routeRefresh: DefaultRouteRefresh, sendTimeout: DefaultSendTimeout},
		batchSize:    DefaultBatchSize, queueSize: DefaultQueueSize, senders: DefaultSenders,
	}
	for _, o := range opts {
		o.applyProducer(&cfg)
	}
	if cfg.log == nil {
		cfg.log = hclog.NewNullLogger()
	}
	if cfg.clientID == "" {
		cfg.clientID = defaultClientID()
	}
	log := cfg.log.Named("producer")
	pm, err := newProducerMetrics(cfg.reg)
	if err != nil {
		return nil, metricsError("qmq producer", err)
	}
	r := newRouter(metaEndpoint, cfg.appCode, cfg.clientID, cfg.routeRefresh, log)
	r.ldc = cfg.ldc
	if _, err := r.meta(ctx); err != nil {
		r.close()
		return nil, err
	}
	r.start()
	p := &Producer{cfg: cfg, log: log, r: r, s: newSender(r, log, cfg.sendTimeout, cfg.maxRetries), ids: newIDGen(), m: pm, queue: make(chan asyncItem, cfg.queueSize),
		gate: make(chan struct{}, 1), idle: make(chan struct{}, 1)}
	p.s.rtt = pm.brokerTime
	p.workCtx, p.cancelWork = context.WithCancel(context.Background())
	for i := 0; i < cfg.senders; i++ {
		p.wg.Add(1)
		go p.worker()
	}
	return p, nil
}

// NewMessage returns a message for subject with a fresh QMQ message id
// (yyMMdd.HHmmss.<ip>.<pid>.<counter>), qmq_createTime, qmq_expireTime
// (+15 min, informational), qmq_appCode and, with WithEnv, qmq_env and
// qmq_subEnv.
func (p *Producer) NewMessage(subject string) *Message {
	now := time.Now()
	m := newMessage(subject, p.ids.next(now), now)
	m.props[PropExpireTime] = strconv.FormatInt(now.Add(expireAfter).UnixMilli(), 10)
	if p.cfg.appCode != "" {
		m.props[PropAppCode] = p.cfg.appCode
	}
	if p.cfg.env != "" { // QMQ's MessageProducerProvider.setupEnv
		m.props[PropEnv] = p.cfg.env
		m.props[PropSubEnv] = p.cfg.subEnv
	}
	return m
}

// Send sends messages synchronously and returns when each is stored or has
// failed for good. Each message gets up to WithMaxRetries tries across the
// subject's broker groups; a MESSAGE_DUPLICATE answer counts as success and
// BLOCK is not retried. On failure the error is a *BatchError whose Failed
// lists one *SendError per failed message (errors.As works for both).
// Invalid messages (a subject that is not a legal name, see package
// protocol/names; too many tags; an oversize property) fail before
// anything is sent; errors.As finds a *names.Error for a bad subject.
func (p *Producer) Send(ctx context.Context, msgs ...*Message) error {
	return p.sendSync(ctx, producerOutgoing, msgs)
}

// sendSync is Send with the message check as a parameter (tests send to
// dead-letter subjects with newOutgoing, as a consumer does).
func (p *Producer) sendSync(ctx context.Context, prepare func(*Message, time.Time) (*outgoing, error), msgs []*Message) error {
	if p.isClosed() {
		return ErrClosed
	}
	now := time.Now()
	items := make([]*outgoing, 0, len(msgs))
	for _, m := range msgs {
		var span trace.Span
		if p.cfg.tracer.On() {
			span = startSend(p.cfg.tracer, ctx, m)
		}
		it, err := prepare(m, now)
		if err != nil {
			if span != nil {
				tracing.End(span, err)
			}
			return err
		}
		it.span = span
		items = append(items, it)
	}
	p.m.send.Add(float64(len(items)))
	p.s.send(ctx, items, 1<<30)
	p.m.finished(items, now)
	if p.cfg.tracer.On() {
		for _, it := range items {
			it.endSpan()
		}
	}
	var failed []*SendError
	for _, it := range items {
		if it.err != nil {
			failed = append(failed, it.err)
		}
	}
	if len(failed) > 0 {
		return &BatchError{Failed: failed}
	}
	return nil
}

// SendAsync queues m for the background senders, which batch queued
// messages (up to WithBatchSize per request and broker group). done, if not
// nil, is called once from a sender goroutine with nil or the message's
// *SendError; it should return quickly. SendAsync fails at once with
// ErrQueueFull, ErrClosed, or a validation error (done is then not called).
func (p *Producer) SendAsync(m *Message, done func(*Message, error)) error {
	now := time.Now()
	var span trace.Span
	if p.cfg.tracer.On() {
		span = startSend(p.cfg.tracer, context.Background(), m)
	}
	it, err := producerOutgoing(m, now)
	if err != nil {
		if span != nil {
			tracing.End(span, err)
		}
		return err
	}
	it.span = span
	p.qmu.RLock()
	defer p.qmu.RUnlock()
	if p.closed {
		it.endSpanErr(ErrClosed)
		return ErrClosed
	}
	p.m.send.Inc()
	select {
	case p.queue <- asyncItem{out: it, done: done, start: now}:
		return nil
	default:
		p.m.queueFull.Inc()
		p.m.sendFail.Inc()
		it.endSpanErr(ErrQueueFull)
		return ErrQueueFull
	}
}

// producerOutgoing is newOutgoing for a message an application sends: its
// subject must be a legal name of its own (package protocol/names), not a
// retry or dead-letter subject, which only consumers send to. The broker
// would answer an illegal name BLOCK; refusing it here says why at once,
// and nothing is sent.
func producerOutgoing(m *Message, now time.Time) (*outgoing, error) {
	if err := names.Subject(m.subject); err != nil {
		return nil, fmt.Errorf("qmq producer: message %s not sent: %w", m.id, err)
	}
	return newOutgoing(m, now)
}

// coalesceWait bounds how long a sender holds a partial batch back while
// another request is in flight (see worker): a request that takes longer
// (a slow or dead broker group) no longer holds the others up.
const coalesceWait = time.Millisecond

func (p *Producer) worker() {
	defer p.wg.Done()
	// Drain a few batches' worth at a time: they are split per broker group.
	limit := p.cfg.batchSize * 4
	batch := make([]asyncItem, 0, limit)
	items := make([]*outgoing, 0, limit)
	var wait *time.Timer
	for {
		// One sender at a time collects from the queue (it holds gate
		// meanwhile), so that a burst of messages is not spread over all
		// the senders as a request each: with 8 senders each taking one
		// message of the bursts a 10k msg/s load makes, the e2e median was
		// 1.45-1.6x JetStream's in the same run, with 1 sender 0.8-0.9x
		// (issue 19): every request is a broker append, a long-poll
		// wake-up and a pull response of its own, and on 2 cores that CPU
		// is latency. A partial batch is held back while another request
		// is in flight, until that one returns (then the batch goes at
		// once: no timer on the common path), a full batch has gathered
		// (senders still send full batches in parallel: throughput), or
		// coalesceWait has passed.
		p.gate <- struct{}{}
		first, ok := <-p.queue
		if !ok {
			<-p.gate
			return
		}
		batch = append(batch[:0], first)
		closed := false
	collect:
		for len(batch) < limit {
			select {
			case it, ok := <-p.queue:
				if !ok {
					closed = true
					break collect
				}
				batch = append(batch, it)
				continue
			default:
			}
			if len(batch) >= p.cfg.batchSize || p.inflight.Load() == 0 {
				break
			}
			if wait == nil {
				wait = time.NewTimer(coalesceWait)
			} else {
				wait.Reset(coalesceWait)
			}
			select {
			case it, ok := <-p.queue:
				if !ok {
					closed = true
					break collect
				}
				batch = append(batch, it)
			case <-p.idle:
			case <-wait.C:
				break collect
			}
		}
		p.inflight.Add(1)
		<-p.gate
		items = items[:0]
		for _, b := range batch {
			items = append(items, b.out)
		}
		p.s.send(p.workCtx, items, p.cfg.batchSize)
		if p.inflight.Add(-1) == 0 {
			select {
			case p.idle <- struct{}{}:
			default:
			}
		}
		for _, b := range batch {
			p.m.finishedOne(b.out, b.start)
			b.out.endSpan()
			err := b.out.errOf()
			if err != nil {
				p.log.Debug("async send failed", "message", b.out.m.String(), "error", err)
			}
			if b.done != nil {
				b.done(b.out.m, err)
			}
		}
		clear(batch)
		if closed {
			return
		}
	}
}

func (p *Producer) isClosed() bool {
	p.qmu.RLock()
	defer p.qmu.RUnlock()
	return p.closed
}

// Close stops accepting messages, waits for the queued ones to be sent
// (their callbacks called) and releases the connections. If ctx ends first,
// the remaining messages fail with the context's error and Close returns
// it.
func (p *Producer) Close(ctx context.Context) error {
	p.closeOnce.Do(func() {
		p.qmu.Lock()
		p.closed = true
		close(p.queue)
		p.qmu.Unlock()
		done := make(chan struct{})
		go func() {
			p.wg.Wait()
			close(done)
		}()
		select {
		case <-done:
		case <-ctx.Done():
			p.closeErr = ctx.Err()
			p.cancelWork()
			<-done
		}
		p.cancelWork()
		p.r.close()
	})
	return p.closeErr
}

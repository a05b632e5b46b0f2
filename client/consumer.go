package client

import (
	"context"
	"errors"
	"fmt"
	"runtime/debug"
	"sync"
	"time"

	"github.com/hashicorp/go-hclog"
	"go.opentelemetry.io/otel/trace"

	"github.com/qmq-go/qmq/internal/backoff"
	"github.com/qmq-go/qmq/protocol"
	"github.com/qmq-go/qmq/protocol/names"
	"github.com/qmq-go/qmq/tracing"
)

// brokerError is a non-success status from a broker.
type brokerError struct {
	op     string
	group  string
	status int16
	msg    string
}

func (e *brokerError) Error() string {
	s := fmt.Sprintf("%s to broker group %s: %s", e.op, e.group, protocol.CodeName(e.status, true))
	if e.msg != "" {
		s += ": " + e.msg
	}
	return s
}

// Consumer receives the messages of one subject for one consumer group,
// from every broker group the subject is routed to, and its retry subject
// %RETRY%<subject>%<group>. Use either Pull or Run, not both.
type Consumer struct {
	cfg      consumerConfig
	log      hclog.Logger
	subject  string
	group    string
	clientID string
	r        *router
	s        *sender
	subjects []string // pulled subjects
	m        *consumerMetrics

	msgs     chan *Message
	closedCh chan struct{}

	mu      sync.Mutex
	mode    string // "", "pull", "run"
	closed  bool
	queues  map[queueKey]*ackQueue
	pullers map[queueKey]*puller
	addrs   map[queueKey]string

	pullCtx     context.Context // pullers and the route watcher
	cancelPull  context.CancelFunc
	pullWG      sync.WaitGroup
	retryCtx    context.Context // sends of failed messages to retry subjects
	cancelRetry context.CancelFunc
	retryWG     sync.WaitGroup
	retrySem    chan struct{}
	ackCtx      context.Context // ack loops
	cancelAck   context.CancelFunc
	ackWG       sync.WaitGroup

	// Forced offline by the metaserver: resumed is closed when the
	// consumer is online again (nil while online).
	stateMu sync.Mutex
	offline bool
	resumed chan struct{}

	closeOnce sync.Once
}

// NewConsumer subscribes group to subject through the metaserver at
// metaEndpoint. Nothing is pulled until Pull or Run is called.
func NewConsumer(ctx context.Context, metaEndpoint, subject, group string, opts ...ConsumerOption) (*Consumer, error) {
	cfg := consumerConfig{
		commonConfig: commonConfig{maxRetries: DefaultConsumerRetries, routeRefresh: DefaultRouteRefresh, sendTimeout: DefaultSendTimeout},
		concurrency:  1, pullBatch: DefaultPullBatch, pullTimeout: DefaultPullTimeout,
		heartbeat: DefaultHeartbeat, ackFlush: DefaultAckFlush, closeWait: DefaultCloseWait, retryDelay: time.Second,
	}
	for _, o := range opts {
		o.applyConsumer(&cfg)
	}
	// A consumer may read a retry or dead-letter subject (to drain dead
	// letters, say): any subject legal on the wire is accepted.
	if err := names.WireSubject(subject); err != nil {
		return nil, fmt.Errorf("qmq consumer: %w", err)
	}
	if group == "" && !cfg.broadcast {
		return nil, errors.New("qmq consumer: consumer group is empty (use WithBroadcast for a broadcast consumer)")
	}
	if group != "" {
		if err := names.Group(group); err != nil {
			return nil, fmt.Errorf("qmq consumer: %w", err)
		}
	}
	if cfg.log == nil {
		cfg.log = hclog.NewNullLogger()
	}
	if cfg.clientID == "" {
		cfg.clientID = defaultClientID()
	}
	if len(cfg.tags) > 0 && cfg.tagMode != TagOr && cfg.tagMode != TagAnd {
		return nil, fmt.Errorf("qmq consumer: unknown tag mode %d (use TagOr or TagAnd)", cfg.tagMode)
	}
	if cfg.env != "" {
		// QMQ's PullRegister: a consumer in a sub-environment is a group
		// of its own (a broadcast one is keyed by its client id).
		base := group
		if base == "" {
			base = cfg.clientID
		}
		renamed := base + "_" + cfg.env + "_" + cfg.subEnv
		if err := names.Group(renamed); err != nil && group != "" {
			// A broadcast consumer's group is its client id, not a name.
			return nil, fmt.Errorf("qmq consumer: WithEnv(%q, %q) makes the consumer group %q: %w", cfg.env, cfg.subEnv, renamed, err)
		}
		cfg.log.Named("consumer").Info("sub-environment isolation: consumer group renamed", "subject", subject, "group", group, "env", cfg.env, "sub_env", cfg.subEnv, "renamed_group", renamed)
		group = renamed
	}
	cm, err := newConsumerMetrics(cfg.reg, subject, group)
	if err != nil {
		return nil, metricsError("qmq consumer", err)
	}
	log := cfg.log.Named("consumer").With("subject", subject, "group", group)
	r := newRouter(metaEndpoint, cfg.appCode, cfg.clientID, cfg.routeRefresh, log)
	r.ldc = cfg.ldc
	c := &Consumer{
		cfg: cfg, log: log, subject: subject, group: group, clientID: cfg.clientID, r: r, m: cm,
		s:        newSender(r, log, cfg.sendTimeout, DefaultSendTries),
		subjects: []string{subject},
		closedCh: make(chan struct{}),
		queues:   map[queueKey]*ackQueue{}, pullers: map[queueKey]*puller{}, addrs: map[queueKey]string{},
		retrySem: make(chan struct{}, 64),
	}
	if !cfg.broadcast {
		c.subjects = append(c.subjects, RetrySubject(subject, group))
	}
	r.onState = c.setState
	// Register now so a misconfiguration shows at once.
	for _, s := range c.subjects {
		if _, err := r.groups(ctx, c.routeKey(s)); err != nil {
			r.close()
			return nil, fmt.Errorf("qmq consumer: register %s/%s: %w", s, group, err)
		}
	}
	r.start()
	c.pullCtx, c.cancelPull = context.WithCancel(context.Background())
	c.retryCtx, c.cancelRetry = context.WithCancel(context.Background())
	c.ackCtx, c.cancelAck = context.WithCancel(context.Background())
	return c, nil
}

func (c *Consumer) routeKey(subject string) routeKey {
	return routeKey{clientType: protocol.ClientTypeConsumer, subject: subject, group: c.group}
}

// ClientID is the consumer's client id (its pull log on the brokers).
func (c *Consumer) ClientID() string { return c.clientID }

// Group is the consumer group used with the brokers and the metaserver:
// the group given to NewConsumer, or <group>_<env>_<subEnv> with WithEnv.
func (c *Consumer) Group() string { return c.group }

func (c *Consumer) start(mode string) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return ErrClosed
	}
	if c.mode == mode {
		return nil
	}
	if c.mode != "" {
		return fmt.Errorf("qmq consumer: already used with %s; Pull and Run cannot be mixed", c.mode)
	}
	c.mode = mode
	// One pull batch of prefetch: the next pull is already under way while
	// the handlers work through the previous batch, instead of pulling and
	// handling taking turns. Prefetched messages a shutdown leaves unhandled
	// stay unacknowledged and are delivered again.
	buf := max(c.cfg.pullBatch, c.cfg.concurrency, 1)
	c.msgs = make(chan *Message, buf)
	c.pullWG.Add(1)
	go c.watchRoutes()
	return nil
}

// watchRoutes starts a puller per (subject, broker group) and stops those
// whose group left the route.
func (c *Consumer) watchRoutes() {
	defer c.pullWG.Done()
	t := time.NewTicker(time.Second)
	defer t.Stop()
	for {
		c.syncPullers()
		select {
		case <-c.pullCtx.Done():
			return
		case <-t.C:
		}
	}
}

func (c *Consumer) syncPullers() {
	for _, s := range c.subjects {
		rk := c.routeKey(s)
		groups, err := c.r.groups(c.pullCtx, rk)
		if err != nil {
			if c.pullCtx.Err() == nil {
				c.log.Warn("cannot get route", "pull_subject", s, "error", err)
			}
			continue
		}
		if len(groups) == 0 {
			c.r.invalidate(rk)
		}
		live := map[string]bool{}
		c.mu.Lock()
		if c.closed {
			c.mu.Unlock()
			return
		}
		for _, g := range groups {
			k := queueKey{subject: s, brokerGroup: g.Name}
			live[g.Name] = true
			c.addrs[k] = g.MasterAddress
			prev := c.pullers[k]
			if prev != nil && !prev.stopped {
				continue
			}
			q := c.queueLocked(k)
			ctx, cancel := context.WithCancel(c.pullCtx)
			p := &puller{cancel: cancel, done: make(chan struct{})}
			c.pullers[k] = p
			c.pullWG.Add(1)
			go func() {
				defer close(p.done)
				// One pull at a time per (subject, broker group): a pull
				// reports the last offset this consumer received, and one
				// sent beside another's unprocessed answer would make the
				// broker redeliver that answer. So a group that comes back
				// waits for its previous puller, cancelled, to return (even
				// if this one is cancelled too: its done must mean that no
				// puller of k before it still runs).
				if prev != nil {
					<-prev.done
				}
				c.pullLoop(ctx, q) // returns at once if ctx has ended
			}()
		}
		for k, p := range c.pullers {
			if k.subject == s && !live[k.brokerGroup] && !p.stopped {
				p.cancel()
				p.stopped = true // kept until replaced: its successor waits for done
			}
		}
		c.mu.Unlock()
	}
}

// puller is the goroutine pulling one (subject, broker group).
type puller struct {
	cancel  context.CancelFunc
	done    chan struct{} // closed when its pullLoop has returned
	stopped bool          // cancelled because the group left the route (c.mu)
}

// queueLocked returns the ack queue of k, starting its ack loop. c.mu held.
func (c *Consumer) queueLocked(k queueKey) *ackQueue {
	q := c.queues[k]
	if q == nil {
		q = newAckQueue(c, k)
		c.queues[k] = q
		c.ackWG.Add(1)
		go func() {
			defer c.ackWG.Done()
			q.loop(c.ackCtx)
		}()
	}
	return q
}

// brokerAddr is the master address of the queue's broker group.
func (c *Consumer) brokerAddr(ctx context.Context, k queueKey) (string, error) {
	if groups, err := c.r.groups(ctx, c.routeKey(k.subject)); err == nil {
		for _, g := range groups {
			if g.Name == k.brokerGroup {
				return g.MasterAddress, nil
			}
		}
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if a, ok := c.addrs[k]; ok {
		return a, nil
	}
	return "", fmt.Errorf("broker group %s is not in the route of %s", k.brokerGroup, k.subject)
}

// filters are the server-side filters of pulls of subject: the tag filter
// (WithTags), then the SUB_ENV_ISOLATION filter (WithEnv). The latter
// goes with pulls of the subscribed subject only: the retry subject is
// this renamed group's own, and a broker would look its rule up under
// %RETRY%<subject>%<group>, find none and drop every retry (QMQ's Java
// client sends it there too and loses them).
func (c *Consumer) filters(subject string) []protocol.PullFilter {
	var f []protocol.PullFilter
	if len(c.cfg.tags) > 0 {
		f = append(f, protocol.PullFilter{Type: protocol.PullFilterTag, TagType: int16(c.cfg.tagMode), Tags: c.cfg.tags})
	}
	if c.cfg.env != "" && subject == c.subject {
		f = append(f, protocol.PullFilter{Type: protocol.PullFilterSubEnvIsolation, Env: c.cfg.env, SubEnv: c.cfg.subEnv})
	}
	return f
}

// pullLoop long-polls one broker group for one subject and hands the
// messages to Pull or Run.
func (c *Consumer) pullLoop(ctx context.Context, q *ackQueue) {
	defer c.pullWG.Done()
	k := q.key
	log := c.log.With("pull_subject", k.subject, "broker_group", k.brokerGroup)
	filters := c.filters(k.subject)
	pm := q.m
	failures := 0
	// Every consumer of a broker that went away fails at once: jitter
	// spreads their retries.
	retry := backoff.Backoff{Min: c.cfg.retryDelay, Max: 5 * time.Second}
	failed := func(err error) {
		pm.pullError.Inc()
		failures++
		if failures == 1 || failures%30 == 0 {
			log.Warn("pull failed; retrying", "error", err, "failures", failures)
		}
		c.r.invalidate(c.routeKey(k.subject))
		_ = retry.Wait(ctx) // the loop checks ctx
	}
	for ctx.Err() == nil {
		if resumed := c.pausedUntil(); resumed != nil {
			select {
			case <-resumed:
			case <-ctx.Done():
				return
			}
			continue
		}
		addr, err := c.brokerAddr(ctx, k)
		if err != nil {
			failed(err)
			continue
		}
		conn, err := c.r.conn(ctx, addr)
		if err != nil {
			failed(err)
			continue
		}
		begin, last := q.offsets()
		req := protocol.PullRequest{
			Subject: k.subject, ConsumerGroup: c.group, ConsumerID: c.clientID,
			RequestNum: int32(c.cfg.pullBatch), Offset: -1,
			PullOffsetBegin: begin, PullOffsetLast: last,
			TimeoutMillis: c.cfg.pullTimeout.Milliseconds(), Broadcast: c.cfg.broadcast, Filters: filters,
		}
		body := protocol.AppendPullRequest(nil, &req, protocol.CurrentVersion)
		start := time.Now()
		cctx, cancel := context.WithTimeout(ctx, c.cfg.pullTimeout+DefaultPullRequestSlack)
		resp, err := conn.Call(cctx, protocol.CodePullMessage, body)
		cancel()
		if err != nil {
			if ctx.Err() != nil {
				return
			}
			failed(err)
			continue
		}
		pm.pullTime.Observe(time.Since(start).Seconds())
		switch resp.Header.Code {
		case protocol.CodeSuccess:
		case protocol.CodeNoMessage:
			failures = 0
			retry.Reset()
			if time.Since(start) < 10*time.Millisecond {
				_ = backoff.Sleep(ctx, 100*time.Millisecond) // a broker that does not long-poll
			}
			continue
		default:
			failed(&brokerError{op: "PULL", group: k.brokerGroup, status: resp.Header.Code, msg: protocol.DecodeErrorBody(resp.Body)})
			continue
		}
		pr, err := protocol.DecodePullResponseShared(resp.Body, protocol.CurrentVersion)
		if err != nil {
			failed(err)
			continue
		}
		failures = 0
		retry.Reset()
		if len(pr.Messages) == 0 {
			continue
		}
		pm.pulled.Add(float64(len(pr.Messages)))
		// A puller cancelled because its group left the route still hands
		// over what it has pulled: deliver registers the batch for acks
		// first, and a message registered but never handed over would hold
		// back every later ack of the group (acks complete in offset order)
		// and would not be delivered again by the broker (the next pull
		// reports it as received). Only the consumer's own end drops them.
		if !c.deliver(c.pullCtx, q, pr.Messages, start) {
			return
		}
	}
}

// deliver registers pulled messages for acking, skips (and acks) those not
// for this group, and hands the rest over. It returns false when ctx ended;
// undelivered messages then stay unacknowledged for redelivery.
//
// The batch's messages, with their ack entries, take one allocation, and
// their strings share one copy of the pull response
// (protocol.DecodePullResponseShared): a message kept after it was
// handled keeps its whole batch in memory.
func (c *Consumer) deliver(ctx context.Context, q *ackQueue, pulled []protocol.PulledMessage, pulledAt time.Time) bool {
	batch := make([]Message, len(pulled))
	for i := range pulled {
		m := &batch[i]
		m.setPulled(&pulled[i])
		m.ack = ackEntry{q: q, offset: pulled[i].PullOffset}
		m.entry = &m.ack
		m.brokerGroup = q.key.brokerGroup
	}
	q.add(batch)
	for i := range batch {
		m := &batch[i]
		// Only delayed retries, which come back on the real subject, are
		// for one group; copies in %RETRY%/%DEAD_RETRY% subjects keep the
		// failing group's mark but are for whoever reads those subjects.
		markedGroup := m.Property(PropConsumerGroup)
		otherGroup := protocol.RealSubject(q.key.subject) == q.key.subject && markedGroup != "" && markedGroup != c.group
		if otherGroup || (c.cfg.atMostOnce && m.Times() > 1) || m.Property(PropCorruptData) == "true" {
			// Another group's delayed retry, or a retry an at-most-once
			// consumer must not see.
			m.acked.Store(true)
			q.complete(m.entry)
			continue
		}
		if c.cfg.tracer.On() {
			c.tracePulled(m, q, pulledAt)
		}
		m.subject = c.subject
		if c.group != "" {
			m.setGroup(c.group)
		}
		if c.cfg.atMostOnce {
			m.acked.Store(true)
			q.complete(m.entry)
		}
		select {
		case c.msgs <- m:
		case <-ctx.Done():
			return false
		}
	}
	return true
}

// Pull returns up to max messages (at least one), waiting at most the pull
// timeout (WithPullTimeout): then it returns an empty slice and nil. It
// returns ctx's error if ctx ends first, ErrClosed after Close. Every
// message must be acknowledged with Ack.
func (c *Consumer) Pull(ctx context.Context, max int) ([]*Message, error) {
	if err := c.start("pull"); err != nil {
		return nil, err
	}
	if max <= 0 {
		max = 1
	}
	t := time.NewTimer(c.cfg.pullTimeout)
	defer t.Stop()
	var out []*Message
	select {
	case m := <-c.msgs:
		out = append(out, m)
	case <-t.C:
		return nil, nil
	case <-ctx.Done():
		return nil, ctx.Err()
	case <-c.closedCh:
		return nil, ErrClosed
	}
	for len(out) < max {
		select {
		case m := <-c.msgs:
			out = append(out, m)
		default:
			return out, nil
		}
	}
	return out, nil
}

// Run calls handler for each message from WithConcurrency goroutines. A
// nil result acknowledges the message. An error (or a panic, which is
// recovered) retries it: a copy with qmq_times+1 is sent to
// %RETRY%<subject>%<group>, or to %DEAD_RETRY%<subject>%<group> once the
// retries are used up (WithMaxRetries, default 32). A *RetryAtError
// (RetryAt) schedules the retry as a delay message when a delay broker
// group exists. Handlers get a context that is not cancelled when ctx ends,
// so they can finish.
//
// When ctx ends Run stops pulling, waits for the running handlers, sends
// their acks, closes the consumer and returns nil. Messages pulled but not
// handled are left unacknowledged; the broker delivers them again.
func (c *Consumer) Run(ctx context.Context, handler func(ctx context.Context, m *Message) error) error {
	if handler == nil {
		return errors.New("qmq consumer: Run needs a handler")
	}
	if err := c.start("run"); err != nil {
		return err
	}
	hctx := context.WithoutCancel(ctx)
	var wg sync.WaitGroup
	for i := 0; i < max(c.cfg.concurrency, 1); i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case <-ctx.Done():
					return
				case <-c.closedCh:
					return
				case m := <-c.msgs:
					if ctx.Err() != nil {
						return // shutting down: leave it for redelivery
					}
					m.Ack(c.handle(hctx, handler, m))
				}
			}
		}()
	}
	wg.Wait()
	return c.Close()
}

func (c *Consumer) handle(ctx context.Context, handler func(context.Context, *Message) error, m *Message) (err error) {
	if m.ack.tr != nil { // tracing on; deferred first so that it sees a recovered panic's error
		var span trace.Span
		ctx, span = c.startHandle(ctx, m)
		defer func() { tracing.End(span, err) }()
	}
	var start time.Time
	if c.m.vecs != nil {
		start = time.Now()
		c.m.createToHandle.Observe(start.Sub(m.createdAt).Seconds())
	}
	defer func() {
		if r := recover(); r != nil {
			c.log.Error("handler panicked; the message will be retried", "message", m.String(), "panic", r, "stack", string(debug.Stack()))
			err = fmt.Errorf("handler panic: %v", r)
		}
		if c.m.vecs != nil {
			c.m.handle.Observe(time.Since(start).Seconds())
		}
		if err != nil {
			c.m.handleFail.Inc()
		}
	}()
	return handler(ctx, m)
}

// Close stops pulling, waits (up to WithCloseWait) for retry sends and
// acknowledges what completed, then releases the connections. Messages
// received and not yet acknowledged are redelivered by the broker.
func (c *Consumer) Close() error {
	c.closeOnce.Do(func() {
		c.mu.Lock()
		c.closed = true
		close(c.closedCh)
		c.mu.Unlock()
		c.cancelPull()
		c.pullWG.Wait()

		deadline := time.Now().Add(c.cfg.closeWait)
		waitTimeout(&c.retryWG, c.cfg.closeWait)
		c.cancelRetry()
		c.retryWG.Wait()

		c.mu.Lock()
		queues := make([]*ackQueue, 0, len(c.queues))
		for _, q := range c.queues {
			queues = append(queues, q)
		}
		c.mu.Unlock()
		ctx, cancel := context.WithDeadline(context.Background(), deadline.Add(time.Second))
		var wg sync.WaitGroup
		for _, q := range queues {
			wg.Add(1)
			go func() {
				defer wg.Done()
				if err := q.flush(ctx, false); err != nil {
					c.log.Warn("final ack failed; the broker will redeliver", "pull_subject", q.key.subject, "broker_group", q.key.brokerGroup, "error", err)
				}
			}()
		}
		wg.Wait()
		cancel()
		c.cancelAck()
		c.ackWG.Wait()
		c.r.close()
	})
	return nil
}

func waitTimeout(wg *sync.WaitGroup, d time.Duration) {
	done := make(chan struct{})
	go func() {
		wg.Wait()
		close(done)
	}()
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-done:
	case <-t.C:
	}
}

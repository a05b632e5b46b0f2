package client

import (
	"context"
	"errors"
	"fmt"
	"runtime/debug"
	"sync"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/qmq-go/qmq/protocol"
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

	msgs     chan *Message
	closedCh chan struct{}

	mu      sync.Mutex
	mode    string // "", "pull", "run"
	closed  bool
	queues  map[queueKey]*ackQueue
	pullers map[queueKey]context.CancelFunc
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
	if subject == "" {
		return nil, errors.New("qmq consumer: subject is empty")
	}
	if group == "" && !cfg.broadcast {
		return nil, errors.New("qmq consumer: consumer group is empty (use WithBroadcast for a broadcast consumer)")
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
	log := cfg.log.Named("consumer").With("subject", subject, "group", group)
	r := newRouter(metaEndpoint, cfg.appCode, cfg.clientID, cfg.routeRefresh, log)
	c := &Consumer{
		cfg: cfg, log: log, subject: subject, group: group, clientID: cfg.clientID, r: r,
		s:        newSender(r, log, cfg.sendTimeout, DefaultSendTries),
		subjects: []string{subject},
		closedCh: make(chan struct{}),
		queues:   map[queueKey]*ackQueue{}, pullers: map[queueKey]context.CancelFunc{}, addrs: map[queueKey]string{},
		retrySem: make(chan struct{}, 64),
	}
	if !cfg.broadcast {
		c.subjects = append(c.subjects, RetrySubject(subject, group))
	}
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
			if _, ok := c.pullers[k]; ok {
				continue
			}
			q := c.queueLocked(k)
			ctx, cancel := context.WithCancel(c.pullCtx)
			c.pullers[k] = cancel
			c.pullWG.Add(1)
			go c.pullLoop(ctx, q)
		}
		for k, cancel := range c.pullers {
			if k.subject == s && !live[k.brokerGroup] {
				cancel()
				delete(c.pullers, k)
			}
		}
		c.mu.Unlock()
	}
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

func (c *Consumer) filters() []protocol.PullFilter {
	if len(c.cfg.tags) == 0 {
		return nil
	}
	return []protocol.PullFilter{{Type: protocol.PullFilterTag, TagType: int16(c.cfg.tagMode), Tags: c.cfg.tags}}
}

func sleepCtx(ctx context.Context, d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
	case <-ctx.Done():
	}
}

// pullLoop long-polls one broker group for one subject and hands the
// messages to Pull or Run.
func (c *Consumer) pullLoop(ctx context.Context, q *ackQueue) {
	defer c.pullWG.Done()
	k := q.key
	log := c.log.With("pull_subject", k.subject, "broker_group", k.brokerGroup)
	filters := c.filters()
	failures := 0
	backoff := func(err error) {
		failures++
		if failures == 1 || failures%30 == 0 {
			log.Warn("pull failed; retrying", "error", err, "failures", failures)
		}
		c.r.invalidate(c.routeKey(k.subject))
		sleepCtx(ctx, min(c.cfg.retryDelay*time.Duration(failures), 5*time.Second))
	}
	for ctx.Err() == nil {
		addr, err := c.brokerAddr(ctx, k)
		if err != nil {
			backoff(err)
			continue
		}
		conn, err := c.r.conn(ctx, addr)
		if err != nil {
			backoff(err)
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
			backoff(err)
			continue
		}
		switch resp.Header.Code {
		case protocol.CodeSuccess:
		case protocol.CodeNoMessage:
			failures = 0
			if time.Since(start) < 10*time.Millisecond {
				sleepCtx(ctx, 100*time.Millisecond) // a broker that does not long-poll
			}
			continue
		default:
			backoff(&brokerError{op: "PULL", group: k.brokerGroup, status: resp.Header.Code, msg: protocol.DecodeErrorBody(resp.Body)})
			continue
		}
		pr, err := protocol.DecodePullResponse(resp.Body, protocol.CurrentVersion)
		if err != nil {
			backoff(err)
			continue
		}
		failures = 0
		if len(pr.Messages) == 0 {
			continue
		}
		if !c.deliver(ctx, q, pr.Messages) {
			return
		}
	}
}

// deliver registers pulled messages for acking, skips (and acks) those not
// for this group, and hands the rest over. It returns false when ctx ended;
// undelivered messages then stay unacknowledged for redelivery.
func (c *Consumer) deliver(ctx context.Context, q *ackQueue, pulled []protocol.PulledMessage) bool {
	offsets := make([]int64, len(pulled))
	for i := range pulled {
		offsets[i] = pulled[i].PullOffset
	}
	entries := q.add(offsets)
	out := make([]*Message, 0, len(pulled))
	for i := range pulled {
		m := fromPulled(&pulled[i])
		m.entry = entries[i]
		m.brokerGroup = q.key.brokerGroup
		// Only delayed retries, which come back on the real subject, are
		// for one group; copies in %RETRY%/%DEAD_RETRY% subjects keep the
		// failing group's mark but are for whoever reads those subjects.
		otherGroup := realSubject(q.key.subject) == q.key.subject && m.props[PropConsumerGroup] != "" && m.props[PropConsumerGroup] != c.group
		if otherGroup || (c.cfg.atMostOnce && m.Times() > 1) || m.props[PropCorruptData] == "true" {
			// Another group's delayed retry, or a retry an at-most-once
			// consumer must not see.
			m.acked.Store(true)
			q.complete(m.entry)
			continue
		}
		m.subject = c.subject
		if c.group != "" {
			m.props[PropConsumerGroup] = c.group
		}
		if c.cfg.atMostOnce {
			m.acked.Store(true)
			q.complete(m.entry)
		}
		out = append(out, m)
	}
	for _, m := range out {
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
	defer func() {
		if r := recover(); r != nil {
			c.log.Error("handler panicked; the message will be retried", "message", m.String(), "panic", r, "stack", string(debug.Stack()))
			err = fmt.Errorf("handler panic: %v", r)
		}
	}()
	return handler(ctx, m)
}

// Ack completes a received message. nil acknowledges it; an error retries
// it as Run describes (a *RetryAtError schedules the retry). Only the first
// call counts. Ack never blocks on the network for successes; failures are
// sent to the retry subject in the background (at most 64 at a time, after
// which Ack waits).
func (m *Message) Ack(err error) {
	e := m.entry
	if e == nil || !m.acked.CompareAndSwap(false, true) {
		return
	}
	if err == nil {
		e.q.complete(e)
		return
	}
	e.q.c.nack(m, err)
}

// nack re-sends a failed message to the retry (or dead-letter) subject and
// completes it once that send succeeded.
func (c *Consumer) nack(m *Message, cause error) {
	q, e := m.entry.q, m.entry
	if c.cfg.broadcast {
		c.log.Warn("broadcast message failed; broadcast messages are not retried", "message", m.String(), "error", cause)
		q.complete(e)
		return
	}
	select {
	case c.retrySem <- struct{}{}:
	case <-c.retryCtx.Done():
		return // closing: leave it unacknowledged
	}
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		<-c.retrySem
		return // closing: leave it unacknowledged
	}
	c.retryWG.Add(1)
	c.mu.Unlock()
	go func() {
		defer c.retryWG.Done()
		defer func() { <-c.retrySem }()
		if c.sendBack(m, cause) {
			q.complete(e)
		}
	}()
}

func (c *Consumer) sendBack(m *Message, cause error) bool {
	ctx := c.retryCtx
	next := m.Times() + 1
	maxRetries := m.maxRetries()
	if maxRetries < 0 {
		maxRetries = c.cfg.maxRetries
	}
	var ra *RetryAtError
	if errors.As(cause, &ra) && next <= maxRetries {
		if c.sendDelayed(ctx, m, next, ra.At) {
			return true
		}
	}
	subject := RetrySubject(c.subject, c.group)
	if next > maxRetries {
		subject = DeadLetterSubject(c.subject, c.group)
		c.log.Warn("message failed too often; sending it to the dead-letter subject", "message", m.String(), "times", next-1, "max_retries", maxRetries, "error", cause)
	} else {
		c.log.Debug("message failed; sending it to the retry subject", "message", m.String(), "times", next, "error", cause)
	}
	cp := m.retryCopy(subject, next, time.Now())
	for attempt := 0; ctx.Err() == nil; attempt++ {
		it, err := newOutgoing(cp, time.Now())
		if err != nil {
			c.log.Error("cannot encode retry message; acknowledging it", "message", m.String(), "error", err)
			return true
		}
		c.s.send(ctx, []*outgoing{it}, 1)
		if it.err == nil {
			return true
		}
		if ctx.Err() == nil {
			c.log.Warn("cannot send message to retry subject; will try again", "message", m.String(), "subject", subject, "error", it.err)
			sleepCtx(ctx, min(time.Second*time.Duration(attempt+1), 5*time.Second))
		}
	}
	return false
}

// sendDelayed sends the retry as a delay message to the real subject,
// marked for this group only, as QMQ's client does for NeedRetryException.
func (c *Consumer) sendDelayed(ctx context.Context, m *Message, next int, at time.Time) bool {
	key := routeKey{clientType: protocol.ClientTypeDelayProducer, subject: c.subject}
	groups, err := c.r.groups(ctx, key)
	if err != nil || len(groups) == 0 {
		c.log.Debug("no delay broker group; retrying normally", "message", m.String())
		return false
	}
	cp := m.retryCopy(c.subject, next, time.Now())
	cp.props[PropConsumerGroup] = c.group
	cp.SetDelayUntil(at)
	it, err := newOutgoing(cp, time.Now())
	if err != nil {
		return false
	}
	c.s.send(ctx, []*outgoing{it}, 1)
	if it.err != nil {
		c.log.Warn("cannot send delayed retry; retrying normally", "message", m.String(), "error", it.err)
		return false
	}
	return true
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

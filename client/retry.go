package client

import (
	"context"
	"errors"
	"time"

	"go.opentelemetry.io/otel/trace"

	"github.com/qmq-go/qmq/internal/backoff"
	"github.com/qmq-go/qmq/protocol"
	"github.com/qmq-go/qmq/tracing"
)

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
	if e.tr != nil {
		e.tr.ack = e.q.c.startAck(m, err)
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

func (c *Consumer) sendBack(m *Message, cause error) (sent bool) {
	ctx := c.retryCtx
	next := m.Times() + 1
	maxRetries := m.maxRetries()
	if maxRetries < 0 {
		maxRetries = c.cfg.maxRetries
	}
	if c.cfg.tracer.On() {
		var span trace.Span
		ctx, span = c.startRetry(ctx, m, next, maxRetries, cause)
		defer func() { endRetry(span, sent) }()
	}
	var ra *RetryAtError
	if errors.As(cause, &ra) && next <= maxRetries {
		if c.sendDelayed(ctx, m, next, ra.At) {
			return true
		}
	}
	subject := RetrySubject(c.subject, c.group)
	if next > maxRetries {
		c.m.deadQueue.Inc()
		subject = DeadLetterSubject(c.subject, c.group)
		c.log.Warn("message failed too often; sending it to the dead-letter subject", "message", m.String(), "times", next-1, "max_retries", maxRetries, "error", cause)
	} else {
		c.log.Debug("message failed; sending it to the retry subject", "message", m.String(), "times", next, "error", cause)
	}
	cp := m.retryCopy(subject, next, time.Now())
	if c.cfg.tracer.On() {
		tracing.Inject(ctx, cp.setProp) // the retry continues the trace from the retry span
	}
	retry := backoff.Backoff{Min: time.Second, Max: 5 * time.Second}
	for ctx.Err() == nil {
		it, err := newOutgoing(cp, time.Now())
		if err != nil {
			c.log.Error("cannot encode retry message; acknowledging it", "message", m.String(), "error", err)
			return true
		}
		c.s.send(ctx, []*outgoing{it}, 1)
		if it.err == nil {
			return true
		}
		c.m.sendBackError.Inc()
		if ctx.Err() == nil {
			c.log.Warn("cannot send message to retry subject; will try again", "message", m.String(), "subject", subject, "error", it.err)
			_ = retry.Wait(ctx) // the loop checks ctx
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
	if c.cfg.tracer.On() {
		tracing.Inject(ctx, cp.setProp)
	}
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

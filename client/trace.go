package client

import (
	"context"
	"strconv"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/trace"

	"github.com/qmq-go/qmq/tracing"
)

// The client's tracing (WithTracerProvider). Every hook in the send and
// consume paths tests Tracer.On first, so with tracing off none of this
// runs and no property is read or written.

// msgTrace is a received message's place in its trace, kept in its ack
// entry (nil with tracing off, so a received message is 8 bytes larger,
// not more): the context of its pull span, then of its handle span, of
// which the ack, retry and dead-letter spans are children; and the ack
// span until the ACK covering the message is answered.
type msgTrace struct {
	ctx context.Context
	ack trace.Span
}

// startSend starts m's send span and writes its context into m's
// properties. The parent is ctx's span, else the trace m already carries
// (a message sent on, or resent by the watchdog), else none.
func startSend(tr tracing.Tracer, ctx context.Context, m *Message) trace.Span {
	parent := ctx
	if !trace.SpanContextFromContext(ctx).IsValid() {
		parent = tracing.Extract(ctx, m.prop)
	}
	sctx, span := tr.Start(parent, tracing.SpanSend, trace.SpanKindProducer, append(tracing.Message(m.subject, m.id), tracing.Operation("send"))...)
	tracing.Inject(sctx, m.setProp)
	return span
}

// endSpan ends the item's send span, if it has one, with its outcome.
func (it *outgoing) endSpan() {
	if it.span == nil {
		return
	}
	it.span.SetAttributes(tracing.Group(it.lastGroup), attribute.Int("qmq.send.tries", it.tries))
	tracing.End(it.span, it.errOf())
	it.span = nil
}

// endSpanErr ends the item's send span, if it has one, with err.
func (it *outgoing) endSpanErr(err error) {
	if it.span != nil {
		tracing.End(it.span, err)
		it.span = nil
	}
}

// tracePulled records the pull span of a received message: from the pull
// request to its answer, a child of the producer's trace.
func (c *Consumer) tracePulled(m *Message, q *ackQueue, pulledAt time.Time) {
	pctx := tracing.Extract(context.Background(), m.prop)
	ctx, span := c.cfg.tracer.StartAt(pctx, tracing.SpanPull, trace.SpanKindConsumer, pulledAt,
		append(tracing.Message(q.key.subject, m.id), tracing.Operation("receive"), tracing.ConsumerGroup(c.group), tracing.Group(q.key.brokerGroup),
			attribute.Int64("qmq.pull_offset", m.pullOffset))...)
	span.End()
	m.ack.tr = &msgTrace{ctx: ctx}
}

// startHandle starts the handle span; ctx (the handler's) carries it.
func (c *Consumer) startHandle(ctx context.Context, m *Message) (context.Context, trace.Span) {
	sctx, span := c.cfg.tracer.Start(trace.ContextWithSpanContext(ctx, trace.SpanContextFromContext(m.ack.tr.ctx)), tracing.SpanHandle, trace.SpanKindConsumer,
		append(tracing.Message(m.subject, m.id), tracing.Operation("process"), tracing.ConsumerGroup(c.group), attribute.Int(tracing.AttrTimes, m.Times()))...)
	m.ack.tr.ctx = trace.ContextWithSpanContext(m.ack.tr.ctx, span.SpanContext())
	return sctx, span
}

// startAck starts the ack span of a message being completed; the ack
// queue ends it when the broker has acknowledged the range holding it.
func (c *Consumer) startAck(m *Message, err error) trace.Span {
	_, span := c.cfg.tracer.Start(m.ack.tr.ctx, tracing.SpanAck, trace.SpanKindClient,
		append(tracing.Message(m.subject, m.id), tracing.Operation("settle"), tracing.ConsumerGroup(c.group), tracing.Group(m.brokerGroup),
			attribute.Bool("qmq.ack.failed", err != nil))...)
	return span
}

// startRetry starts the span of sending a failed message back: to the
// retry subject, as a delayed retry, or to the dead-letter subject.
func (c *Consumer) startRetry(ctx context.Context, m *Message, times, maxRetries int, cause error) (context.Context, trace.Span) {
	parent := ctx
	if m.ack.tr != nil {
		parent = trace.ContextWithSpanContext(ctx, trace.SpanContextFromContext(m.ack.tr.ctx))
	}
	name := tracing.SpanRetry
	if times > maxRetries {
		name = tracing.SpanDeadLetter
	}
	sctx, span := c.cfg.tracer.Start(parent, name, trace.SpanKindProducer,
		append(tracing.Message(m.subject, m.id), tracing.Operation("send"), tracing.ConsumerGroup(c.group),
			attribute.Int(tracing.AttrTimes, times), attribute.Int("qmq.max_retries", maxRetries), attribute.String("qmq.cause", cause.Error()))...)
	return sctx, span
}

// endRetry ends a retry span: sent, or not (the consumer closed first).
func endRetry(span trace.Span, sent bool) {
	if !sent {
		span.AddEvent("not sent back: the consumer closed; the broker redelivers the message")
	}
	span.End()
}

// ackSpan is an ack span waiting for its range's ACK.
type ackSpan struct {
	offset int64
	span   trace.Span
}

// endAckSpans ends the ack spans up to offset last (the queue's sendMu held).
func (q *ackQueue) endAckSpans(last int64) {
	q.mu.Lock()
	n := 0
	for n < len(q.spans) && q.spans[n].offset <= last {
		n++
	}
	done := q.spans[:n]
	q.spans = q.spans[n:]
	if len(q.spans) == 0 {
		q.spans = nil
	}
	q.mu.Unlock()
	for _, s := range done {
		s.span.SetAttributes(attribute.String("qmq.ack.range_last", strconv.FormatInt(last, 10)))
		s.span.End()
	}
}

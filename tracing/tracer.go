package tracing

import (
	"context"
	"fmt"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"
	"go.opentelemetry.io/otel/trace/noop"

	"github.com/qmq-go/qmq/protocol"
)

// ScopeName is the instrumentation scope of every qmq span.
const ScopeName = "github.com/qmq-go/qmq"

// Span names, one per step a message takes.
const (
	SpanSend           = "qmq.send"             // producer: until the broker (or delay server) has the message
	SpanStore          = "qmq.broker.store"     // broker: append to the message log (+ the slave's write)
	SpanDelaySchedule  = "qmq.delay.schedule"   // delay server: stored under its schedule time
	SpanDelayDispatch  = "qmq.delay.dispatch"   // delay server: sent to a real-time broker when due
	SpanWatchdogResend = "qmq.watchdog.resend"  // watchdog: a transactional message an application left behind
	SpanPull           = "qmq.consumer.pull"    // consumer: the pull that brought the message
	SpanHandle         = "qmq.consumer.handle"  // consumer: the handler (Run)
	SpanAck            = "qmq.consumer.ack"     // consumer: from Ack to the broker's answer to the ACK covering it
	SpanRetry          = "qmq.consumer.retry"   // consumer: a failed message sent to the retry subject (or delayed)
	SpanDeadLetter     = "qmq.consumer.dead"    // consumer: a message that failed too often, sent to the dead-letter subject
	EventSlaveWrote    = "slave wrote"          // on SpanStore: the slave confirmed the write (wait.slave.wrote)
	EventStored        = "stored"               // on SpanStore and SpanDelaySchedule: in the log
	AttrGroup          = "qmq.broker.group"     // broker group
	AttrTimes          = "qmq.times"            // qmq_times: the delivery count
	AttrScheduleTime   = "qmq.schedule_time_ms" // a delay message's schedule time
)

// Tracer starts qmq's spans. The zero Tracer is off: On is false and every
// caller skips its tracing, so a component without a TracerProvider pays a
// field read per hook.
type Tracer struct {
	t  trace.Tracer
	on bool
}

// New wraps tp; nil or otel's no-op provider give a Tracer that is off.
func New(tp trace.TracerProvider) Tracer {
	if tp == nil {
		return Tracer{}
	}
	if _, off := tp.(noop.TracerProvider); off {
		return Tracer{}
	}
	return Tracer{t: tp.Tracer(ScopeName), on: true}
}

// On reports whether spans are recorded. Callers test it before building
// anything a span needs.
func (t Tracer) On() bool { return t.on }

// Start starts a span (on a Tracer that is off, a no-op span).
func (t Tracer) Start(ctx context.Context, name string, kind trace.SpanKind, attrs ...attribute.KeyValue) (context.Context, trace.Span) {
	if !t.on {
		return ctx, trace.SpanFromContext(context.Background())
	}
	return t.t.Start(ctx, name, trace.WithSpanKind(kind), trace.WithAttributes(attrs...))
}

// StartAt is Start with an explicit start time (a span about something that
// began before the code that can start it, such as a pull).
func (t Tracer) StartAt(ctx context.Context, name string, kind trace.SpanKind, at time.Time, attrs ...attribute.KeyValue) (context.Context, trace.Span) {
	if !t.on {
		return ctx, trace.SpanFromContext(context.Background())
	}
	return t.t.Start(ctx, name, trace.WithSpanKind(kind), trace.WithTimestamp(at), trace.WithAttributes(attrs...))
}

// Message is the messaging attributes of one message (OpenTelemetry's
// semantic conventions for messaging).
func Message(subject, id string) []attribute.KeyValue {
	return []attribute.KeyValue{
		attribute.String("messaging.system", "qmq"),
		attribute.String("messaging.destination.name", subject),
		attribute.String("messaging.message.id", id),
	}
}

// Operation is messaging.operation.type: send, receive, process or settle.
func Operation(op string) attribute.KeyValue {
	return attribute.String("messaging.operation.type", op)
}

// ConsumerGroup is messaging.consumer.group.name.
func ConsumerGroup(g string) attribute.KeyValue {
	return attribute.String("messaging.consumer.group.name", g)
}

// Group is the broker group a step ran on.
func Group(g string) attribute.KeyValue { return attribute.String(AttrGroup, g) }

// End ends span, with an error status when err is not nil.
func End(span trace.Span, err error) {
	if err != nil {
		span.RecordError(err)
		span.SetStatus(codes.Error, err.Error())
	}
	span.End()
}

// Spans are the spans of one batch of stored messages (a broker's or a
// delay server's SEND_MESSAGE, a dispatch batch), one per message, each a
// child of the trace context its producer put in the message. A nil *Spans
// does nothing: callers keep one only while tracing is on.
type Spans struct {
	spans []trace.Span
	ids   []string
}

// StartRaw starts a span named name for each message msgs[i], i in idx.
func (t Tracer) StartRaw(ctx context.Context, name string, msgs []protocol.RawMessage, idx []int, attrs ...attribute.KeyValue) *Spans {
	if !t.on || len(idx) == 0 {
		return nil
	}
	s := &Spans{spans: make([]trace.Span, 0, len(idx)), ids: make([]string, 0, len(idx))}
	for _, i := range idx {
		m := &msgs[i]
		s.add(t, ctx, name, m.Message.Subject, m.Message.MessageID, m.Payload, attrs)
	}
	return s
}

// StartWire starts a span for each of n messages whose subject, id and
// wire form (CRC in front, as the delay server stores them) ref gives.
func (t Tracer) StartWire(ctx context.Context, name string, n int, ref func(i int) (subject, id string, wire []byte), attrs ...attribute.KeyValue) *Spans {
	if !t.on || n == 0 {
		return nil
	}
	s := &Spans{spans: make([]trace.Span, 0, n), ids: make([]string, 0, n)}
	for i := range n {
		subject, id, wire := ref(i)
		if len(wire) < 8 {
			wire = make([]byte, 8)
		}
		s.add(t, ctx, name, subject, id, wire[8:], attrs)
	}
	return s
}

func (s *Spans) add(t Tracer, ctx context.Context, name, subject, id string, payload []byte, attrs []attribute.KeyValue) {
	pctx := ExtractPayload(ctx, payload)
	a := append(Message(subject, id), attrs...)
	_, span := t.t.Start(pctx, name, trace.WithSpanKind(trace.SpanKindServer), trace.WithAttributes(a...))
	s.spans = append(s.spans, span)
	s.ids = append(s.ids, id)
}

// Event adds an event to every span.
func (s *Spans) Event(name string, attrs ...attribute.KeyValue) {
	if s == nil {
		return
	}
	for _, sp := range s.spans {
		sp.AddEvent(name, trace.WithAttributes(attrs...))
	}
}

// End ends every span: those of messages listed in fails with an error
// status (the send code and remark), the others with okEvent if it is not "".
func (s *Spans) End(fails []protocol.SendResult, okEvent string) {
	if s == nil {
		return
	}
	for i, sp := range s.spans {
		failed := false
		for _, f := range fails {
			if f.MessageID == s.ids[i] && f.Code != protocol.SendSuccess && f.Code != protocol.SendDuplicate {
				failed = true
				sp.SetStatus(codes.Error, fmt.Sprintf("%s: %s", protocol.SendCodeName(f.Code), f.Remark))
				break
			}
		}
		if !failed && okEvent != "" {
			sp.AddEvent(okEvent)
		}
		sp.End()
	}
}

// EndWith ends every span with err when it is not nil, else as End(fails, "").
func (s *Spans) EndWith(fails []protocol.SendResult, err error) {
	if err != nil {
		s.EndError(err)
		return
	}
	s.End(fails, "")
}

// EndError ends every span with err (nil: success).
func (s *Spans) EndError(err error) {
	if s == nil {
		return
	}
	for _, sp := range s.spans {
		End(sp, err)
	}
}

package tracing

import (
	"context"

	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"

	"github.com/qmq-go/qmq/protocol"
)

// Message property keys of the trace context. W3C Trace Context's header
// names are used as they are; QMQ's Java client (OpenTracing, TraceUtil)
// writes whatever keys its tracer injects behind OpenTracingPrefix, which
// Extract reads too.
const (
	KeyTraceParent    = "traceparent"
	KeyTraceState     = "tracestate"
	OpenTracingPrefix = "qtrace_"
)

// w3c is W3C Trace Context; it has no state.
var w3c propagation.TraceContext

// funcCarrier adapts a message's property accessors to otel's TextMapCarrier.
type funcCarrier struct {
	get func(string) (string, bool)
	set func(key, value string)
}

func (c funcCarrier) Get(key string) string {
	if v, ok := c.get(key); ok {
		return v
	}
	v, _ := c.get(OpenTracingPrefix + key) // QMQ's Java client
	return v
}

func (c funcCarrier) Set(key, value string) { c.set(key, value) }

// Keys is not used by TraceContext.Extract.
func (c funcCarrier) Keys() []string { return []string{KeyTraceParent, KeyTraceState} }

// Extract returns ctx with the remote span context found in a message's
// properties (get looks one up); ctx unchanged when there is none.
func Extract(ctx context.Context, get func(key string) (string, bool)) context.Context {
	return w3c.Extract(ctx, funcCarrier{get: get})
}

// Inject writes the span context of ctx into a message's properties (set
// writes one); nothing when ctx has no valid span context.
func Inject(ctx context.Context, set func(key, value string)) {
	w3c.Inject(ctx, funcCarrier{set: set})
}

// ExtractPayload is Extract for a message as a broker stores it (the wire
// form after the CRC), reading the attributes in place.
func ExtractPayload(ctx context.Context, payload []byte) context.Context {
	var parent, state, qparent, qstate string
	protocol.PayloadAttrs(payload, func(k, v []byte) bool {
		switch string(k) {
		case KeyTraceParent:
			parent = string(v)
		case KeyTraceState:
			state = string(v)
		case OpenTracingPrefix + KeyTraceParent:
			qparent = string(v)
		case OpenTracingPrefix + KeyTraceState:
			qstate = string(v)
		}
		return true
	})
	if parent == "" {
		parent, state = qparent, qstate
	}
	if parent == "" {
		return ctx
	}
	return Extract(ctx, func(k string) (string, bool) {
		switch k {
		case KeyTraceParent:
			return parent, true
		case KeyTraceState:
			return state, state != ""
		}
		return "", false
	})
}

// ExtractWire is ExtractPayload for a message with its 8-byte CRC in front
// (what the delay server stores).
func ExtractWire(ctx context.Context, wire []byte) context.Context {
	if len(wire) < 8 {
		return ctx
	}
	return ExtractPayload(ctx, wire[8:])
}

// HasRemote reports whether ctx carries a span context from a message.
func HasRemote(ctx context.Context) bool { return trace.SpanContextFromContext(ctx).IsValid() }

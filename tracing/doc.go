// Package tracing carries OpenTelemetry traces through QMQ messages: from
// the producer's send, through the broker's store (and its slave's write),
// the delay server's schedule and dispatch and the watchdog's resend, to
// the consumer's pull, handle, ack, retry and dead letter.
//
// The trace context travels in the message's properties as W3C Trace
// Context (traceparent, tracestate). Messages from QMQ's Java client,
// whose OpenTracing integration writes the tracer's keys with the prefix
// "qtrace_", are read too when that tracer speaks W3C (qtrace_traceparent).
//
// Tracing is off unless the standard OTEL_* environment variables turn it
// on (SettingsFromEnv, Setup); components take a trace.TracerProvider in
// their Options and wrap it in a Tracer, whose On is a plain field read:
// with tracing off no message property is read or written, so the send and
// consume paths cost what they cost without this package. Nothing here
// sets OpenTelemetry's global provider; only cmd/qmq does.
package tracing

package watchdog

import (
	"context"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/trace"

	"github.com/qmq-go/qmq/tracing"
)

// startResend starts a resend span per row, each a child of the trace its
// message carries (the application's send, when it was traced), and
// writes the span into the message: the producer's send span is then its
// child, and the consumer's spans follow.
func startResend(ctx context.Context, tr tracing.Tracer, db string, rows []dueRow) []resendSpan {
	spans := make([]resendSpan, len(rows))
	for i, r := range rows {
		m := r.msg
		pctx := tracing.Extract(ctx, m.LookupProperty)
		sctx, span := tr.Start(pctx, tracing.SpanWatchdogResend, trace.SpanKindInternal,
			append(tracing.Message(m.Subject(), m.ID()), attribute.Int64("qmq.watchdog.row", r.id), attribute.Int64("qmq.watchdog.errors", r.errors),
				attribute.String("qmq.watchdog.db", db))...)
		tracing.Inject(sctx, func(k, v string) { m.SetProperty(k, v) })
		spans[i] = resendSpan{id: m.ID(), span: span}
	}
	return spans
}

// resendSpan is the span of one resent message.
type resendSpan struct {
	id   string
	span trace.Span
}

// endResend ends the spans with each message's outcome (failed: by id).
func endResend(spans []resendSpan, failed map[string]error) {
	for _, s := range spans {
		tracing.End(s.span, failed[s.id])
	}
}

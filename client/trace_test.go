package client_test

import (
	"context"
	"errors"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"

	"github.com/qmq-go/qmq/client"
	"github.com/qmq-go/qmq/internal/testutil"
	"github.com/qmq-go/qmq/tests/framework"
	"github.com/qmq-go/qmq/tracing"
)

// A traced producer and consumer against an in-process cluster: the
// message's trace runs send → pull → handle → ack, its failure adds a
// retry span, and the retried copy is pulled under that span. (The
// servers' spans, and the whole trace over OTLP, are cmd/qmq's
// TestObservabilityDev.)
func TestTracingSendConsumeRetry(t *testing.T) {
	c := framework.StartCluster(t, framework.ClusterOptions{})
	rec := tracetest.NewSpanRecorder()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(rec))
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	p, err := client.NewProducer(ctx, c.Endpoint(), client.WithTracerProvider(tp))
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close(context.Background())
	cons, err := client.NewConsumer(ctx, c.Endpoint(), "trace.subject", "g", client.WithTracerProvider(tp), client.WithPullTimeout(200*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	var tries atomic.Int32
	runCtx, stop := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = cons.Run(runCtx, func(ctx context.Context, m *client.Message) error {
			if !trace.SpanContextFromContext(ctx).IsValid() {
				t.Error("the handler's context has no span")
			}
			if m.Property("kind") == "warm" {
				return nil
			}
			if tries.Add(1) == 1 {
				return errors.New("first try fails")
			}
			return nil
		})
	}()
	defer func() { stop(); <-done }()
	// A new group starts at the latest message: warm up until one arrives.
	testutil.Eventually(t, 20*time.Second, "the consumer receives", func() bool {
		_ = p.Send(ctx, p.NewMessage("trace.subject").SetProperty("kind", "warm"))
		for _, s := range rec.Ended() {
			if s.Name() == tracing.SpanHandle {
				return true
			}
		}
		return false
	})

	appCtx, root := tp.Tracer("test").Start(ctx, "app")
	m := p.NewMessage("trace.subject").SetProperty("kind", "real")
	if err := p.Send(appCtx, m); err != nil {
		t.Fatal(err)
	}
	root.End()
	if m.Property(tracing.KeyTraceParent) == "" {
		t.Fatal("Send wrote no traceparent into the message")
	}
	byName := func(name string) []sdktrace.ReadOnlySpan {
		var out []sdktrace.ReadOnlySpan
		for _, s := range rec.Ended() {
			if s.Name() != name || s.SpanContext().TraceID() != root.SpanContext().TraceID() {
				continue
			}
			out = append(out, s)
		}
		return out
	}
	testutil.EventuallyState(t, 30*time.Second, "the retried message acknowledged", func() (bool, string) {
		acks, pulls := len(byName(tracing.SpanAck)), len(byName(tracing.SpanPull))
		return acks == 2 && pulls == 2, fmt.Sprintf("%d ack and %d pull spans", acks, pulls)
	})
	send := byName(tracing.SpanSend)
	retry := byName(tracing.SpanRetry)
	if len(send) != 1 || len(retry) != 1 {
		t.Fatalf("%d send and %d retry spans in the trace, want 1 and 1", len(send), len(retry))
	}
	if send[0].Parent().SpanID() != root.SpanContext().SpanID() {
		t.Error("the send span is not a child of the caller's span")
	}
	parents := map[trace.SpanID]int{}
	for _, s := range byName(tracing.SpanPull) {
		parents[s.Parent().SpanID()]++
	}
	if parents[send[0].SpanContext().SpanID()] != 1 || parents[retry[0].SpanContext().SpanID()] != 1 {
		t.Errorf("pull spans' parents %v: want one under the send span, one under the retry span", parents)
	}
	for _, h := range byName(tracing.SpanHandle) {
		if h.Parent().SpanID() == retry[0].Parent().SpanID() && h.Status().Description == "" {
			t.Error("the failed handle span has no error status")
		}
	}
}

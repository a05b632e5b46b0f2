package tracing

import (
	"context"
	"testing"

	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"
	"go.opentelemetry.io/otel/trace/noop"

	"github.com/qmq-go/qmq/protocol"
)

func env(m map[string]string) func(string) string { return func(k string) string { return m[k] } }

func TestSettingsFromEnv(t *testing.T) {
	cases := []struct {
		name     string
		env      map[string]string
		on       bool
		endpoint string
		sampler  string
		ratio    float64
		service  string
		wantErr  bool
	}{
		{name: "nothing set: off", env: nil, service: "qmq-broker", ratio: 1},
		{name: "endpoint alone turns it on", env: map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": "http://c:4318/"}, on: true, endpoint: "http://c:4318/v1/traces", service: "qmq-broker", ratio: 1},
		{name: "traces endpoint as is", env: map[string]string{"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "http://c:4318/x", "OTEL_EXPORTER_OTLP_ENDPOINT": "http://d:4318"}, on: true, endpoint: "http://c:4318/x", service: "qmq-broker", ratio: 1},
		{name: "exporter otlp without endpoint", env: map[string]string{"OTEL_TRACES_EXPORTER": "otlp"}, on: true, service: "qmq-broker", ratio: 1},
		{name: "exporter none wins over endpoint", env: map[string]string{"OTEL_TRACES_EXPORTER": "none", "OTEL_EXPORTER_OTLP_ENDPOINT": "http://c:4318"}, endpoint: "http://c:4318/v1/traces", service: "qmq-broker", ratio: 1},
		{name: "sdk disabled wins", env: map[string]string{"OTEL_SDK_DISABLED": "true", "OTEL_TRACES_EXPORTER": "otlp"}, service: "qmq-broker", ratio: 1},
		{name: "sampler and service", env: map[string]string{"OTEL_TRACES_EXPORTER": "otlp", "OTEL_TRACES_SAMPLER": "parentbased_traceidratio", "OTEL_TRACES_SAMPLER_ARG": "0.25", "OTEL_SERVICE_NAME": "b1"}, on: true, sampler: "parentbased_traceidratio", ratio: 0.25, service: "b1"},
		{name: "unknown exporter", env: map[string]string{"OTEL_TRACES_EXPORTER": "zipkin"}, wantErr: true},
		{name: "unknown sampler", env: map[string]string{"OTEL_TRACES_SAMPLER": "sometimes"}, wantErr: true},
		{name: "ratio out of range", env: map[string]string{"OTEL_TRACES_SAMPLER_ARG": "2"}, wantErr: true},
		{name: "ratio not a number", env: map[string]string{"OTEL_TRACES_SAMPLER_ARG": "half"}, wantErr: true},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			s, err := SettingsFromEnv("qmq-broker", env(c.env))
			if c.wantErr {
				if err == nil {
					t.Fatalf("want an error, got %+v", s)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if s.Enabled() != c.on || s.Endpoint != c.endpoint || s.Sampler != c.sampler || s.SamplerArg != c.ratio || s.ServiceName != c.service {
				t.Fatalf("got %+v", s)
			}
		})
	}
}

func TestSetupOffIsNoop(t *testing.T) {
	tp, shutdown, err := Setup(context.Background(), DefaultSettings("x"))
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = shutdown(context.Background()) }()
	if New(tp).On() {
		t.Fatal("tracing off must give a Tracer that is off")
	}
	if New(nil).On() || New(noop.NewTracerProvider()).On() {
		t.Fatal("nil and no-op providers must be off")
	}
}

func TestSetupOnExports(t *testing.T) {
	s := DefaultSettings("x")
	s.Exporter = ExporterOTLP
	s.Endpoint = "http://127.0.0.1:1/v1/traces" // nothing listens: only the construction is tested
	tp, shutdown, err := Setup(context.Background(), s)
	if err != nil {
		t.Fatal(err)
	}
	if !New(tp).On() {
		t.Fatal("tracing on must give a Tracer that is on")
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel() // do not wait on the unreachable collector
	_ = shutdown(ctx)
}

// A span context injected into properties comes back out, and the
// OpenTracing keys of QMQ's Java client are read too.
func TestPropagation(t *testing.T) {
	rec := tracetest.NewSpanRecorder()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(rec))
	ctx, span := New(tp).Start(context.Background(), "x", trace.SpanKindProducer)
	defer span.End()
	props := map[string]string{}
	Inject(ctx, func(k, v string) { props[k] = v })
	if props[KeyTraceParent] == "" {
		t.Fatalf("no traceparent injected: %v", props)
	}
	get := func(m map[string]string) func(string) (string, bool) {
		return func(k string) (string, bool) { v, ok := m[k]; return v, ok }
	}
	got := trace.SpanContextFromContext(Extract(context.Background(), get(props)))
	if got.TraceID() != span.SpanContext().TraceID() || got.SpanID() != span.SpanContext().SpanID() || !got.IsRemote() {
		t.Fatalf("extracted %v, want %v", got, span.SpanContext())
	}
	java := map[string]string{OpenTracingPrefix + KeyTraceParent: props[KeyTraceParent]}
	if got := trace.SpanContextFromContext(Extract(context.Background(), get(java))); got.TraceID() != span.SpanContext().TraceID() {
		t.Fatalf("qtrace_traceparent not read: %v", got)
	}
	if HasRemote(Extract(context.Background(), get(map[string]string{"other": "x"}))) {
		t.Fatal("a message without trace properties must give no span context")
	}

	// The same from the wire form a broker stores.
	for _, key := range []string{KeyTraceParent, OpenTracingPrefix + KeyTraceParent} {
		wire, err := protocol.AppendMessage(nil, &protocol.Message{Subject: "s", MessageID: "id", Attrs: []protocol.Attr{{Key: "a", Value: "b"}, {Key: key, Value: props[KeyTraceParent]}}})
		if err != nil {
			t.Fatal(err)
		}
		if got := trace.SpanContextFromContext(ExtractWire(context.Background(), wire)); got.SpanID() != span.SpanContext().SpanID() {
			t.Fatalf("%s: ExtractWire found %v", key, got)
		}
	}
}

// Spans of a stored batch are children of their producers' spans, and the
// failed ones carry the refusal.
func TestStartRawEnd(t *testing.T) {
	rec := tracetest.NewSpanRecorder()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(rec))
	tr := New(tp)
	pctx, parent := tr.Start(context.Background(), "send", trace.SpanKindProducer)
	parent.End()
	var attrs []protocol.Attr
	Inject(pctx, func(k, v string) { attrs = append(attrs, protocol.Attr{Key: k, Value: v}) })
	var body []byte
	for _, id := range []string{"m1", "m2", "m3"} {
		var err error
		if body, err = protocol.AppendMessage(body, &protocol.Message{Subject: "s", MessageID: id, Attrs: attrs}); err != nil {
			t.Fatal(err)
		}
	}
	msgs, err := protocol.DecodeMessageHeaders(body, protocol.CurrentVersion, 0)
	if err != nil {
		t.Fatal(err)
	}
	spans := tr.StartRaw(context.Background(), SpanStore, msgs, []int{0, 2}, Group("g1"))
	spans.End([]protocol.SendResult{{MessageID: "m3", Code: protocol.SendBrokerBusy, Remark: "slow slave"}}, EventSlaveWrote)
	ended := rec.Ended()
	if len(ended) != 3 { // send + 2 stored
		t.Fatalf("%d spans ended, want 3", len(ended))
	}
	for _, s := range ended[1:] {
		if s.Parent().SpanID() != parent.SpanContext().SpanID() {
			t.Errorf("%s: parent %v, want the send span", s.Name(), s.Parent().SpanID())
		}
	}
	if ev := ended[1].Events(); len(ev) != 1 || ev[0].Name != EventSlaveWrote {
		t.Errorf("stored span events %v, want %q", ev, EventSlaveWrote)
	}
	if st := ended[2].Status(); st.Description != "BROKER_BUSY: slow slave" {
		t.Errorf("failed span status %+v", st)
	}
	var off Tracer
	if off.StartRaw(context.Background(), SpanStore, msgs, []int{0}) != nil {
		t.Fatal("an off Tracer must start nothing")
	}
}

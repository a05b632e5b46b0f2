package broker

import (
	"context"
	"fmt"
	"strings"
	"testing"

	"github.com/hashicorp/go-hclog"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"

	"github.com/qmq-go/qmq/protocol"
	"github.com/qmq-go/qmq/protocol/remoting"
)

// BenchmarkHandleSend is the broker's work for one SEND_MESSAGE of 30
// messages of 100 bytes (decode, checks, store append), with tracing off
// (no TracerProvider: what every broker without OTEL_* runs) and on (every
// message sampled, spans batched to an exporter that drops them). The
// messages carry a traceparent either way, as a traced producer sends them.
// The store is real (mmap'ed logs in a temporary directory): run it with
// a bounded -benchtime such as 20000x.
func BenchmarkHandleSend(b *testing.B) {
	for _, on := range []bool{false, true} {
		name := "tracing=off"
		var tp trace.TracerProvider
		if on {
			name = "tracing=on"
			sdk := sdktrace.NewTracerProvider(sdktrace.WithBatcher(tracetest.NewNoopExporter()))
			b.Cleanup(func() { _ = sdk.Shutdown(context.Background()) })
			tp = sdk
		}
		b.Run(name, func(b *testing.B) { benchHandleSend(b, tp) })
	}
}

func benchHandleSend(b *testing.B, tp trace.TracerProvider) {
	s := DefaultSettings()
	s.MetaEndpoint = "127.0.0.1:1" // never contacted: Run is not called
	s.Port, s.SyncPort, s.HTTPPort = 0, 0, -1
	s.BindHost = "127.0.0.1"
	s.RouteCheck = false
	s.Store.Root = b.TempDir()
	s.Store.MessageSegmentSize = 64 << 20
	ctx := context.Background()
	srv, err := New(ctx, s, Options{Logger: hclog.NewNullLogger(), Hostname: "bench", TracerProvider: tp})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = srv.Close() })
	inst := srv.current.Load()
	inst.online.Store(true)

	// A traced producer's trace context (what the client writes).
	attrs := []protocol.Attr{{Key: "traceparent", Value: "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"}}
	attrs = append(attrs, protocol.Attr{Key: "qmq_appCode", Value: "bench"}, protocol.Attr{Key: "data", Value: strings.Repeat("x", 100)})
	var body []byte
	for i := range 30 {
		body, err = protocol.AppendMessage(body, &protocol.Message{Subject: "bench.subject", MessageID: fmt.Sprintf("id-%d", i), CreateTime: 1, ExpireOrScheduleTime: 1, Attrs: attrs})
		if err != nil {
			b.Fatal(err)
		}
	}
	req := &remoting.Request{Frame: protocol.Frame{Header: protocol.Header{Code: protocol.CodeSendMessage, Version: protocol.CurrentVersion}, Body: body}}
	b.SetBytes(int64(len(body)))
	b.ReportAllocs()
	b.ResetTimer()
	for range b.N {
		resp := inst.handleSend(ctx, req)
		if len(resp.Body) != 0 {
			b.Fatalf("refused: %v", resp.Body)
		}
	}
}

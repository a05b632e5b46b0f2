package client_test

import (
	"context"
	"testing"

	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"

	"github.com/qmq-go/qmq/client"
	"github.com/qmq-go/qmq/services/broker"
)

// benchTracerProvider samples every span and drops it after batching: the
// cost of tracing on, without a collector.
func benchTracerProvider(b *testing.B) trace.TracerProvider {
	tp := sdktrace.NewTracerProvider(sdktrace.WithBatcher(tracetest.NewNoopExporter()))
	b.Cleanup(func() { _ = tp.Shutdown(context.Background()) })
	return tp
}

// tracingOptions are the client options of BenchmarkProduceConsume.
func tracingOptions(b *testing.B, on bool) []client.Option {
	if !on {
		return nil
	}
	return []client.Option{client.WithTracerProvider(benchTracerProvider(b))}
}

// tracingBroker would give the brokers of BenchmarkProduceConsume a
// provider; the framework builds brokers from Settings alone, so the
// broker's own cost is measured by services/broker's BenchmarkHandleSend.
func tracingBroker(*testing.B, bool) func(string, int, *broker.Settings) { return nil }

func consumerOptions(opts []client.Option) []client.ConsumerOption {
	out := make([]client.ConsumerOption, len(opts))
	for i, o := range opts {
		out[i] = o
	}
	return out
}

func producerOptions(opts []client.Option) []client.ProducerOption {
	out := make([]client.ProducerOption, len(opts))
	for i, o := range opts {
		out[i] = o
	}
	return out
}

package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"time"

	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"

	"github.com/qmq-go/qmq/tracing"
)

// setupTracing turns tracing on when the OTEL_* environment asks for it
// (package tracing, SettingsFromEnv) and returns the provider to hand to
// the components, and a stop that flushes the spans still queued. It also
// sets OpenTelemetry's global provider and propagator: this binary is the
// only place that does, for libraries that look there.
func setupTracing(ctx context.Context, service string, stderr io.Writer) (trace.TracerProvider, func(), error) {
	s, err := tracing.SettingsFromEnv(service, os.Getenv)
	if err != nil {
		return nil, nil, fmt.Errorf("tracing: %w", err)
	}
	tp, shutdown, err := tracing.Setup(ctx, s)
	if err != nil {
		return nil, nil, err
	}
	if s.Enabled() {
		otel.SetTracerProvider(tp)
		otel.SetTextMapPropagator(propagation.NewCompositeTextMapPropagator(propagation.TraceContext{}, propagation.Baggage{}))
		fmt.Fprintf(stderr, "tracing on: service %s, OTLP to %s, sampler %s\n", s.ServiceName, endpointOrDefault(s.Endpoint), samplerOrDefault(s.Sampler))
	}
	return tp, func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := shutdown(ctx); err != nil {
			fmt.Fprintf(stderr, "tracing: flushing the last spans failed: %v\n", err)
		}
	}, nil
}

func endpointOrDefault(ep string) string {
	if ep == "" {
		return "the exporter's default (http://localhost:4318/v1/traces)"
	}
	return ep
}

func samplerOrDefault(s string) string {
	if s == "" {
		return tracing.SamplerParentBasedAlwaysOn
	}
	return s
}

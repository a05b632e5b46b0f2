package tracing

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracehttp"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/trace"
	"go.opentelemetry.io/otel/trace/noop"
)

// Exporter names of OTEL_TRACES_EXPORTER that Setup knows.
const (
	ExporterNone = "none"
	ExporterOTLP = "otlp"
)

// Samplers of OTEL_TRACES_SAMPLER (the OpenTelemetry specification's names).
const (
	SamplerAlwaysOn                = "always_on"
	SamplerAlwaysOff               = "always_off"
	SamplerTraceIDRatio            = "traceidratio"
	SamplerParentBasedAlwaysOn     = "parentbased_always_on"
	SamplerParentBasedAlwaysOff    = "parentbased_always_off"
	SamplerParentBasedTraceIDRatio = "parentbased_traceidratio"
)

// Settings say whether and where spans are exported. The zero value, like
// DefaultSettings, exports nothing.
type Settings struct {
	// Exporter is ExporterOTLP (OTLP over HTTP/protobuf) or ExporterNone/""
	// (tracing off).
	Exporter string
	// Endpoint is the OTLP traces URL (http://collector:4318/v1/traces);
	// "" leaves it to the exporter, which reads the OTEL_EXPORTER_OTLP_*
	// variables itself (and defaults to http://localhost:4318/v1/traces).
	// Headers, timeout, compression and TLS are always the exporter's
	// OTEL_EXPORTER_OTLP_* variables.
	Endpoint string
	// Sampler is one of the Sampler* names; "" is parentbased_always_on.
	Sampler string
	// SamplerArg is the ratio of the traceidratio samplers, in [0, 1].
	SamplerArg float64
	// ServiceName is service.name of the spans; OTEL_SERVICE_NAME, read by
	// SettingsFromEnv, overrides the component's default.
	ServiceName string
	// ResourceAttributes are more resource attributes (OTEL_RESOURCE_ATTRIBUTES).
	ResourceAttributes []attribute.KeyValue
}

// DefaultSettings is tracing off, service serviceName.
func DefaultSettings(serviceName string) Settings {
	return Settings{ServiceName: serviceName, SamplerArg: 1}
}

// Enabled reports whether these settings export spans.
func (s Settings) Enabled() bool { return s.Exporter == ExporterOTLP }

// Validate checks the names and the ratio.
func (s Settings) Validate() error {
	switch s.Exporter {
	case "", ExporterNone, ExporterOTLP:
	default:
		return fmt.Errorf("OTEL_TRACES_EXPORTER=%q: qmq exports traces with %q (OTLP over HTTP) or not at all (%q)", s.Exporter, ExporterOTLP, ExporterNone)
	}
	switch s.Sampler {
	case "", SamplerAlwaysOn, SamplerAlwaysOff, SamplerTraceIDRatio, SamplerParentBasedAlwaysOn, SamplerParentBasedAlwaysOff, SamplerParentBasedTraceIDRatio:
	default:
		return fmt.Errorf("OTEL_TRACES_SAMPLER=%q: want one of always_on, always_off, traceidratio, parentbased_always_on, parentbased_always_off, parentbased_traceidratio", s.Sampler)
	}
	if s.SamplerArg < 0 || s.SamplerArg > 1 {
		return fmt.Errorf("OTEL_TRACES_SAMPLER_ARG=%v: the sampling ratio must be between 0 and 1", s.SamplerArg)
	}
	return nil
}

// SettingsFromEnv reads the standard variables through getenv (os.Getenv
// when nil), starting from DefaultSettings(serviceName):
//
//   - OTEL_SDK_DISABLED=true turns tracing off whatever else is set;
//   - OTEL_TRACES_EXPORTER: otlp or none; unset, tracing is on only when an
//     endpoint (OTEL_EXPORTER_OTLP_TRACES_ENDPOINT or
//     OTEL_EXPORTER_OTLP_ENDPOINT) is set: qmq is quiet by default, unlike
//     the specification's default of otlp;
//   - OTEL_EXPORTER_OTLP_TRACES_ENDPOINT (used as is) or
//     OTEL_EXPORTER_OTLP_ENDPOINT (+ /v1/traces);
//   - OTEL_TRACES_SAMPLER and OTEL_TRACES_SAMPLER_ARG;
//   - OTEL_SERVICE_NAME and OTEL_RESOURCE_ATTRIBUTES (key=value,…).
func SettingsFromEnv(serviceName string, getenv func(string) string) (Settings, error) {
	if getenv == nil {
		getenv = os.Getenv
	}
	s := DefaultSettings(serviceName)
	if strings.EqualFold(strings.TrimSpace(getenv("OTEL_SDK_DISABLED")), "true") {
		return s, nil
	}
	if ep := strings.TrimSpace(getenv("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")); ep != "" {
		s.Endpoint = ep
	} else if ep := strings.TrimSpace(getenv("OTEL_EXPORTER_OTLP_ENDPOINT")); ep != "" {
		s.Endpoint = strings.TrimRight(ep, "/") + "/v1/traces"
	}
	switch exp := strings.ToLower(strings.TrimSpace(getenv("OTEL_TRACES_EXPORTER"))); exp {
	case "":
		if s.Endpoint != "" {
			s.Exporter = ExporterOTLP
		}
	default:
		s.Exporter = exp
	}
	s.Sampler = strings.ToLower(strings.TrimSpace(getenv("OTEL_TRACES_SAMPLER")))
	if arg := strings.TrimSpace(getenv("OTEL_TRACES_SAMPLER_ARG")); arg != "" {
		v, err := strconv.ParseFloat(arg, 64)
		if err != nil {
			return s, fmt.Errorf("OTEL_TRACES_SAMPLER_ARG=%q is not a number (a ratio between 0 and 1)", arg)
		}
		s.SamplerArg = v
	}
	if name := strings.TrimSpace(getenv("OTEL_SERVICE_NAME")); name != "" {
		s.ServiceName = name
	}
	for _, kv := range strings.Split(getenv("OTEL_RESOURCE_ATTRIBUTES"), ",") {
		k, v, ok := strings.Cut(kv, "=")
		if ok && strings.TrimSpace(k) != "" {
			s.ResourceAttributes = append(s.ResourceAttributes, attribute.String(strings.TrimSpace(k), strings.TrimSpace(v)))
		}
	}
	return s, s.Validate()
}

// Shutdown flushes and stops what Setup started.
type Shutdown func(context.Context) error

// Setup builds the TracerProvider the settings ask for: a no-op provider
// when tracing is off (Tracer.On is then false everywhere it is passed),
// else an SDK provider exporting in batches over OTLP/HTTP. Shutdown flushes
// the spans still queued; call it before the process exits.
func Setup(ctx context.Context, s Settings) (trace.TracerProvider, Shutdown, error) {
	if err := s.Validate(); err != nil {
		return nil, nil, err
	}
	if !s.Enabled() {
		return noop.NewTracerProvider(), func(context.Context) error { return nil }, nil
	}
	var opts []otlptracehttp.Option
	if s.Endpoint != "" {
		opts = append(opts, otlptracehttp.WithEndpointURL(s.Endpoint))
	}
	exp, err := otlptracehttp.New(ctx, opts...)
	if err != nil {
		return nil, nil, fmt.Errorf("tracing: OTLP exporter to %q: %w", s.Endpoint, err)
	}
	attrs := append([]attribute.KeyValue{attribute.String("service.name", s.ServiceName)}, s.ResourceAttributes...)
	res, err := resource.Merge(resource.Default(), resource.NewSchemaless(attrs...))
	if err != nil {
		// Merge fails only on conflicting schema URLs; the attributes alone do.
		res = resource.NewSchemaless(attrs...)
	}
	tp := sdktrace.NewTracerProvider(
		sdktrace.WithBatcher(exp),
		sdktrace.WithResource(res),
		sdktrace.WithSampler(sampler(s)),
	)
	return tp, func(ctx context.Context) error {
		return errors.Join(tp.ForceFlush(ctx), tp.Shutdown(ctx))
	}, nil
}

func sampler(s Settings) sdktrace.Sampler {
	switch s.Sampler {
	case SamplerAlwaysOn:
		return sdktrace.AlwaysSample()
	case SamplerAlwaysOff:
		return sdktrace.NeverSample()
	case SamplerTraceIDRatio:
		return sdktrace.TraceIDRatioBased(s.SamplerArg)
	case SamplerParentBasedAlwaysOff:
		return sdktrace.ParentBased(sdktrace.NeverSample())
	case SamplerParentBasedTraceIDRatio:
		return sdktrace.ParentBased(sdktrace.TraceIDRatioBased(s.SamplerArg))
	}
	return sdktrace.ParentBased(sdktrace.AlwaysSample())
}

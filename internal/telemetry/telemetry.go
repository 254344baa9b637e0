// Package telemetry sets up tracing: an OpenTelemetry tracer provider exporting over OTLP
// when an endpoint is configured, and nothing at all otherwise. It also carries trace
// context across the queue (W3C traceparent in message headers), for the adapters.
//
// Off, tracing costs nothing: Start returns the no-op provider, and the Tracer of a
// no-op provider starts no span and touches no context, so the hot paths allocate
// nothing for it.
package telemetry

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"net/url"
	"runtime/debug"
	"strings"

	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracehttp"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	semconv "go.opentelemetry.io/otel/semconv/v1.43.0"
	"go.opentelemetry.io/otel/trace"
	"go.opentelemetry.io/otel/trace/noop"
)

// Config configures Start.
type Config struct {
	// ServiceName names the process in its traces (OTEL_SERVICE_NAME). Required.
	ServiceName string
	// Endpoint is OTEL_EXPORTER_OTLP_ENDPOINT, the collector's base URL: traces go to
	// its /v1/traces. TracesEndpoint is OTEL_EXPORTER_OTLP_TRACES_ENDPOINT, the full URL,
	// and wins. Both unset, tracing is off. The exporter reads the other
	// OTEL_EXPORTER_OTLP_* variables (headers, timeout, compression) itself, and the
	// SDK OTEL_TRACES_SAMPLER.
	Endpoint, TracesEndpoint string
}

// Start returns the tracer provider cfg asks for and its shutdown, which flushes the
// spans not yet exported. With no endpoint it is the no-op provider: no exporter, no
// goroutine.
func Start(ctx context.Context, cfg Config) (trace.TracerProvider, func(context.Context) error, error) {
	endpoint, err := tracesURL(cfg)
	if err != nil || endpoint == "" {
		return noop.NewTracerProvider(), func(context.Context) error { return nil }, err
	}
	if cfg.ServiceName == "" {
		return nil, nil, errors.New("telemetry: ServiceName is required")
	}
	exporter, err := otlptracehttp.New(ctx, otlptracehttp.WithEndpointURL(endpoint))
	if err != nil {
		return nil, nil, fmt.Errorf("creating the OTLP trace exporter: %w", err)
	}
	res, err := resource.Merge(resource.Default(), resource.NewWithAttributes(semconv.SchemaURL,
		semconv.ServiceName(cfg.ServiceName), semconv.ServiceVersion(version())))
	if err != nil {
		return nil, nil, fmt.Errorf("describing the service for traces: %w", err)
	}
	tp := sdktrace.NewTracerProvider(sdktrace.WithBatcher(exporter), sdktrace.WithResource(res))
	return tp, tp.Shutdown, nil
}

// tracesURL is where cfg sends traces, "" for nowhere.
func tracesURL(cfg Config) (string, error) {
	name, raw := "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", cfg.TracesEndpoint
	if raw == "" {
		name, raw = "OTEL_EXPORTER_OTLP_ENDPOINT", cfg.Endpoint
		if raw != "" {
			raw = strings.TrimSuffix(raw, "/") + "/v1/traces"
		}
	}
	if raw == "" {
		return "", nil
	}
	// The exporter would quietly fall back to localhost on a URL it cannot read.
	if u, err := url.Parse(raw); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return "", fmt.Errorf("%s: must be an http(s) URL", name)
	}
	return raw, nil
}

// version is the module's version, or its VCS revision, from the build.
func version() string {
	info, ok := debug.ReadBuildInfo()
	if !ok {
		return "unknown"
	}
	v := info.Main.Version
	for _, s := range info.Settings {
		if s.Key == "vcs.revision" && (v == "" || v == "(devel)") {
			v = s.Value
		}
	}
	return cmp.Or(v, "unknown")
}

// Enabled reports whether tp records spans: not when it is nil or the no-op provider.
func Enabled(tp trace.TracerProvider) bool {
	switch tp.(type) {
	case nil, noop.TracerProvider, *noop.TracerProvider:
		return false
	}
	return true
}

// Tracer starts spans when its provider records them, and otherwise does nothing: it
// returns the context it is given and a span that records nothing, without the context
// (an allocation) that even a no-op tracer makes. The zero Tracer is off.
type Tracer struct{ t trace.Tracer }

// NewTracer returns the Tracer of tp for the instrumentation scope scope (a package path).
func NewTracer(tp trace.TracerProvider, scope string) Tracer {
	if !Enabled(tp) {
		return Tracer{}
	}
	return Tracer{t: tp.Tracer(scope)}
}

// Enabled reports whether t starts spans.
func (t Tracer) Enabled() bool { return t.t != nil }

// noSpan is the span of a Tracer that is off.
var noSpan trace.Span = noop.Span{}

// Start starts a span of kind named name, a child of the span in ctx. Attributes are
// set on the span after, where span.IsRecording(), so that building them costs nothing
// when tracing is off or the span not sampled.
func (t Tracer) Start(ctx context.Context, name string, kind trace.SpanKind) (context.Context, trace.Span) {
	if t.t == nil {
		return ctx, noSpan
	}
	return t.t.Start(ctx, name, trace.WithSpanKind(kind))
}

// StartLinked is Start for a span with links to other spans.
func (t Tracer) StartLinked(ctx context.Context, name string, kind trace.SpanKind, links []trace.Link) (context.Context, trace.Span) {
	if t.t == nil {
		return ctx, noSpan
	}
	return t.t.Start(ctx, name, trace.WithSpanKind(kind), trace.WithLinks(links...))
}

// End ends span, marked as failed with err when err is not nil.
func End(span trace.Span, err error) {
	if err != nil && span.IsRecording() {
		span.SetStatus(codes.Error, err.Error())
	}
	span.End()
}

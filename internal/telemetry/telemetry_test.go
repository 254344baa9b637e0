package telemetry_test

import (
	"context"
	"net/http"
	"testing"

	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/otel/propagation"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/trace"
	"go.opentelemetry.io/otel/trace/noop"

	"github.com/billing/billing/internal/telemetry"
)

func TestOffWithoutEndpoint(t *testing.T) {
	tp, shutdown, err := telemetry.Start(context.Background(), telemetry.Config{ServiceName: "billing-test"})
	require.NoError(t, err)
	require.False(t, telemetry.Enabled(tp))
	require.NoError(t, shutdown(context.Background()))
	require.False(t, telemetry.Enabled(nil))
	require.True(t, telemetry.Enabled(sdktrace.NewTracerProvider()))
}

func TestEndpointMustBeAURL(t *testing.T) {
	_, _, err := telemetry.Start(context.Background(), telemetry.Config{ServiceName: "billing-test", Endpoint: "collector:4318"})
	require.ErrorContains(t, err, "OTEL_EXPORTER_OTLP_ENDPOINT")
	_, _, err = telemetry.Start(context.Background(), telemetry.Config{ServiceName: "billing-test", TracesEndpoint: "ftp://collector"})
	require.ErrorContains(t, err, "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")
}

func TestOnExportsAndFlushes(t *testing.T) {
	tp, shutdown, err := telemetry.Start(context.Background(), telemetry.Config{ServiceName: "billing-test", Endpoint: "http://127.0.0.1:1"})
	require.NoError(t, err)
	require.True(t, telemetry.Enabled(tp))
	ctx, cancel := context.WithCancel(context.Background())
	cancel() // nothing listens: the flush gives up at once
	_ = shutdown(ctx)
}

// Off, a span and the injection of its context into a request's or message's headers
// allocate nothing: the ingest's hot path pays nothing for tracing.
func TestOffAllocatesNothing(t *testing.T) {
	tracer := telemetry.NewTracer(noop.NewTracerProvider(), "test")
	require.False(t, tracer.Enabled())
	ctx := context.Background()
	h := http.Header{}
	allocs := testing.AllocsPerRun(1000, func() {
		sctx, span := tracer.Start(ctx, "POST /v1/charges", trace.SpanKindServer)
		telemetry.Inject(sctx, "", propagation.HeaderCarrier(h))
		telemetry.End(span, nil)
	})
	require.Zero(t, allocs)
	require.Empty(t, h)
}

func TestBatchInjectsEachMessagesOwn(t *testing.T) {
	tp := sdktrace.NewTracerProvider()
	tracer := telemetry.NewTracer(tp, "test")
	ctx, a := tracer.Start(context.Background(), "a", trace.SpanKindInternal)
	_, b := tracer.Start(context.Background(), "b", trace.SpanKindInternal)
	ctx = telemetry.WithBatch(ctx, map[string]trace.SpanContext{"ch_b": b.SpanContext()})

	hb, ha := http.Header{}, http.Header{}
	telemetry.Inject(ctx, "ch_b", propagation.HeaderCarrier(hb))
	telemetry.Inject(ctx, "ch_other", propagation.HeaderCarrier(ha))
	require.Contains(t, hb.Get("traceparent"), b.SpanContext().SpanID().String())
	require.Contains(t, ha.Get("traceparent"), a.SpanContext().SpanID().String())
}

func BenchmarkOff(b *testing.B) {
	tracer := telemetry.NewTracer(noop.NewTracerProvider(), "test")
	ctx := context.Background()
	h := http.Header{}
	b.ReportAllocs()
	for b.Loop() {
		sctx, span := tracer.Start(ctx, "POST /v1/charges", trace.SpanKindServer)
		telemetry.Inject(sctx, "", propagation.HeaderCarrier(h))
		telemetry.End(span, nil)
	}
}

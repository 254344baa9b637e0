package telemetry

import (
	"context"

	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"
)

// propagator writes and reads W3C trace context (traceparent, tracestate). Both ends are
// ours, so no global propagator is configured.
var propagator = propagation.TraceContext{}

// Inject writes into carrier the trace context of ctx: the one WithBatch gave key when
// ctx carries a batch's, else ctx's own span's. Nothing when there is none.
func Inject(ctx context.Context, key string, carrier propagation.TextMapCarrier) {
	if key != "" {
		if sc, ok := ctx.Value(batchKey{}).(batch)[key]; ok {
			ctx = trace.ContextWithRemoteSpanContext(ctx, sc)
		}
	}
	propagator.Inject(ctx, carrier)
}

// Extract returns ctx with the trace context carrier holds, as a remote parent.
func Extract(ctx context.Context, carrier propagation.TextMapCarrier) context.Context {
	return propagator.Extract(ctx, carrier)
}

// Message is a queued message whose headers can be read: consume.Message is one.
type Message interface {
	Header(key string) string
}

// FromMessage returns ctx with the trace context m's headers carry, as a remote parent.
func FromMessage(ctx context.Context, m Message) context.Context {
	if m.Header(traceparent) == "" {
		return ctx
	}
	return propagator.Extract(ctx, messageCarrier{m})
}

// traceparent is the header of W3C trace context that every message with one carries.
const traceparent = "traceparent"

// messageCarrier reads a message's headers for Extract.
type messageCarrier struct{ m Message }

func (c messageCarrier) Get(key string) string { return c.m.Header(key) }
func (messageCarrier) Set(string, string)      {}
func (messageCarrier) Keys() []string          { return nil }

// batch maps the messages of a batch publish, by key, to the span each continues.
type batch map[string]trace.SpanContext

type batchKey struct{}

// WithBatch returns ctx for a publish of many messages on behalf of many traces (the
// events of a batch of commands): spans maps each message's key (its charge id, its
// event id) to the span it continues, which Inject writes into that message.
func WithBatch(ctx context.Context, spans map[string]trace.SpanContext) context.Context {
	if len(spans) == 0 {
		return ctx
	}
	return context.WithValue(ctx, batchKey{}, batch(spans))
}

// SpanContextOf returns the span context m's headers carry; not valid when none.
func SpanContextOf(m Message) trace.SpanContext {
	return trace.SpanContextFromContext(FromMessage(context.Background(), m))
}

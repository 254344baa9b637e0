package queue

import (
	"context"

	"github.com/nats-io/nats.go"
	"go.opentelemetry.io/otel/attribute"
	semconv "go.opentelemetry.io/otel/semconv/v1.43.0"
	"go.opentelemetry.io/otel/trace"

	"github.com/billing/billing/internal/charge"
	"github.com/billing/billing/internal/telemetry"
)

// headerCarrier lets the trace propagator write and read a message's headers. nats.Header
// keeps the case of its keys: traceparent stays traceparent.
type headerCarrier nats.Header

func (h headerCarrier) Get(key string) string { return nats.Header(h).Get(key) }
func (h headerCarrier) Set(key, value string) { nats.Header(h).Set(key, value) }
func (h headerCarrier) Keys() []string {
	keys := make([]string, 0, len(h))
	for k := range h {
		keys = append(keys, k)
	}
	return keys
}

// startPublish starts the span of the publish of cmd as msg, a child of the request's,
// and writes its context into msg's headers: the worker's span of the command continues
// it.
func (c *Conn) startPublish(ctx context.Context, cmd charge.Command, msg *nats.Msg, msgID string) (context.Context, trace.Span) {
	ctx, span := c.tracer.Start(ctx, "send "+StreamCharges, trace.SpanKindProducer)
	if span.IsRecording() {
		span.SetAttributes(semconv.MessagingSystemKey.String("nats"), semconv.MessagingOperationTypeSend,
			semconv.MessagingDestinationName(msg.Subject), semconv.MessagingMessageID(msgID),
			attribute.String("billing.command", string(cmd.Type)), attribute.String("billing.charge_id", cmd.ChargeID))
	}
	if msg.Header == nil {
		msg.Header = nats.Header{}
	}
	telemetry.Inject(ctx, "", headerCarrier(msg.Header))
	return ctx, span
}

// inject writes into h the trace context of the message keyed key (see
// telemetry.WithBatch), when tracing is on.
func (c *Conn) inject(ctx context.Context, key string, h nats.Header) {
	if c.tracer.Enabled() {
		telemetry.Inject(ctx, key, headerCarrier(h))
	}
}

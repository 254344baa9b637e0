package webhook

import (
	"context"
	"net/http"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	semconv "go.opentelemetry.io/otel/semconv/v1.43.0"
	"go.opentelemetry.io/otel/trace"
)

// startAttempt starts the span of an attempt of task t, a child of the trace its message
// carries (the command whose event it delivers). It names the endpoint by id only: its
// URL may hold a secret, and neither it nor the payload goes in a span. The trace context
// is not sent to the endpoint, which is not ours.
func (d *Deliverer) startAttempt(ctx context.Context, t Task, attempt int) trace.Span {
	_, span := d.tracer.Start(ctx, "webhook.Deliver", trace.SpanKindClient)
	if span.IsRecording() {
		span.SetAttributes(semconv.HTTPRequestMethodPost, attribute.String("billing.webhook.endpoint_id", t.Endpoint),
			attribute.String("billing.event_id", t.Event), attribute.Int("billing.webhook.attempt", attempt))
	}
	return span
}

// endAttempt ends the span of an attempt that got status (0: no answer) or failed with
// sendErr, described as the merchant sees it (no address).
func (d *Deliverer) endAttempt(span trace.Span, status int, sendErr error) {
	if span.IsRecording() {
		switch {
		case sendErr != nil:
			span.SetStatus(codes.Error, deliveryError(sendErr, d.cfg.Timeout))
		case status < 200 || status > 299:
			span.SetStatus(codes.Error, http.StatusText(status))
		}
		if status != 0 {
			span.SetAttributes(semconv.HTTPResponseStatusCode(status))
		}
	}
	span.End()
}

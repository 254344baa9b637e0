package worker

import (
	"cmp"
	"context"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"

	"github.com/billing/billing/internal/charge"
	"github.com/billing/billing/internal/telemetry"
)

// Traces. Each command's handling is a span, "process <command type>", continuing the trace its
// message carries (the ingest's publish), so that one trace runs from the request to the
// settlement. The processor call is a child of it. A store write or event publish serves
// the whole batch (or wave) at once; it is recorded in the trace of every command it
// serves, as a child span with the write's timing and "billing.batch.commands" saying how
// many shared it: each trace then shows where its command's time went. (One batch span
// linked to the commands would leave their traces without their writes.) The events carry
// the trace of their command's publish span on to the webhooks.

// startSpans starts the span of each item's command.
func (w *Worker) startSpans(ctx context.Context, items []*item) {
	if !w.tracer.Enabled() {
		return
	}
	for _, it := range items {
		name := "process " + cmp.Or(string(it.cmd.Type), "undecodable")
		_, it.span = w.tracer.Start(telemetry.FromMessage(ctx, it.msg), name, trace.SpanKindConsumer)
		if it.span.IsRecording() {
			it.span.SetAttributes(attribute.String("messaging.system", "nats"),
				attribute.String("messaging.destination.name", it.msg.Subject()),
				attribute.String("billing.command", string(it.cmd.Type)), attribute.String("billing.charge_id", it.cmd.ChargeID),
				attribute.Int64("billing.attempt", int64(it.msg.Attempt())), attribute.Int64("messaging.message.delivery_count", int64(it.msg.NumDelivered())))
		}
	}
}

// outcomeNames name outcomes in spans.
var outcomeNames = map[outcome]string{
	outcomeAck: "ack", outcomeRetry: "retry", outcomeAway: "away", outcomeWait: "wait",
	outcomeRefused: "refused", outcomeDeadLetter: "dead_letter",
}

// endSpans ends the span of each item's command with its outcome.
func (w *Worker) endSpans(items []*item) {
	if !w.tracer.Enabled() {
		return
	}
	for _, it := range items {
		if it.span.IsRecording() {
			it.span.SetAttributes(attribute.String("billing.outcome", outcomeNames[it.outcome]))
			if it.outcome == outcomeDeadLetter {
				it.span.SetStatus(codes.Error, it.reason)
			}
		}
		it.span.End()
	}
}

// within returns ctx in the span of it's command, for a child span; ctx when tracing is
// off.
func (w *Worker) within(ctx context.Context, it *item) context.Context {
	if !w.tracer.Enabled() || it.span == nil {
		return ctx
	}
	return trace.ContextWithSpan(ctx, it.span)
}

// startCall starts the span of a processor call for it's command. Its context, in the
// returned ctx, goes with the request to the processor.
func (w *Worker) startCall(ctx context.Context, it *item, name string) (context.Context, trace.Span) {
	if !w.tracer.Enabled() {
		return ctx, nil
	}
	ctx, span := w.tracer.Start(w.within(ctx, it), name, trace.SpanKindClient)
	if span.IsRecording() {
		span.SetAttributes(attribute.String("billing.charge_id", it.cmd.ChargeID))
	}
	return ctx, span
}

// callNames name the processor call of each operation's span.
var callNames = map[charge.CommandType]string{
	charge.CommandCapture: "processor.Capture", charge.CommandCancel: "processor.Void", charge.CommandRefund: "processor.Refund",
}

// endCall ends span, if any, failed with err.
func endCall(span trace.Span, err error) {
	if span != nil {
		telemetry.End(span, err)
	}
}

// step is a write (or publish) that serves many commands, with its span in each one's
// trace.
type step struct {
	items []*item
	spans []trace.Span
}

// startStep starts the spans of a write named name that serves items.
func (w *Worker) startStep(ctx context.Context, name string, kind trace.SpanKind, items []*item) step {
	if !w.tracer.Enabled() || len(items) == 0 {
		return step{}
	}
	s := step{items: items, spans: make([]trace.Span, len(items))}
	for i, it := range items {
		_, s.spans[i] = w.tracer.Start(w.within(ctx, it), name, kind)
		if s.spans[i].IsRecording() {
			s.spans[i].SetAttributes(attribute.Int("billing.batch.commands", len(items)))
		}
	}
	return s
}

// startOpsStep is startStep for the commands of ops.
func (w *Worker) startOpsStep(ctx context.Context, name string, kind trace.SpanKind, ops []*op) step {
	if !w.tracer.Enabled() || len(ops) == 0 {
		return step{}
	}
	items := make([]*item, len(ops))
	for i, o := range ops {
		items[i] = o.it
	}
	return w.startStep(ctx, name, kind, items)
}

// end ends the step's spans, failed with err.
func (s step) end(err error) {
	for _, span := range s.spans {
		telemetry.End(span, err)
	}
}

// publishing returns ctx for the publish of the step's events: each event carries the
// step's span of its charge's command.
func (s step) publishing(ctx context.Context) context.Context {
	if len(s.spans) == 0 {
		return ctx
	}
	spans := make(map[string]trace.SpanContext, len(s.items))
	for i, it := range s.items {
		spans[it.cmd.ChargeID] = s.spans[i].SpanContext()
	}
	return telemetry.WithBatch(ctx, spans)
}

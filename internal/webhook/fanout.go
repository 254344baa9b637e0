package webhook

import (
	"context"
	"encoding/json"
	"log/slog"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.opentelemetry.io/otel/trace"

	"github.com/billing/billing/internal/charge"
	"github.com/billing/billing/internal/consume"
	"github.com/billing/billing/internal/telemetry"
)

// Fanout turns each published event into one delivery task per enabled endpoint of its
// merchant that subscribes to its type. Tasks are keyed by event and endpoint, so a
// redelivered event publishes no second task (the queue drops the duplicate).
type Fanout struct {
	store  Store
	tasks  TaskPublisher
	logger *slog.Logger
	loop   *consume.Loop
}

// NewFanout returns a Fanout; reg receives its counter of events settled.
func NewFanout(store Store, tasks TaskPublisher, logger *slog.Logger, reg prometheus.Registerer, now charge.TimeNow) *Fanout {
	loop := consume.New(consume.Config{
		Name: "webhook fan-out", Metric: "billing_webhook_fanout_events_total",
		Help:  "Events fanned out to webhook endpoints, by result (acked, waiting, dead_lettered).",
		Batch: 256, StepTimeout: 30 * time.Second,
	}, store, logger, reg, now)
	return &Fanout{store: store, tasks: tasks, logger: logger, loop: loop}
}

// Run fans out events from src until ctx ends; a batch in hand is finished first.
func (f *Fanout) Run(ctx context.Context, src Source) error {
	return f.loop.Run(ctx, src, f.handle)
}

// fanoutWait is how long events wait when the store or the queue failed their fan-out.
const fanoutWait = time.Second

func (f *Fanout) handle(ctx context.Context, msgs []Message) {
	outs := make([]consume.Outcome, len(msgs))
	defer func() { f.loop.Settle(ctx, msgs, outs) }()
	type ref struct {
		ID   string `json:"id"`
		Type string `json:"type"`
	}
	refs := make([]ref, len(msgs))
	merchants := map[string]bool{}
	for i, m := range msgs {
		err := json.Unmarshal(m.Data(), &refs[i])
		switch {
		case err != nil:
			outs[i] = consume.Refuse("undecodable event: " + err.Error())
		case refs[i].ID == "" || refs[i].Type == "":
			outs[i] = consume.Refuse("event without an id or a type")
		case m.Header(MerchantHeader) == "":
			outs[i] = consume.Refuse("event without its merchant header")
		default:
			merchants[m.Header(MerchantHeader)] = true
		}
	}
	wait := func(err error) {
		f.logger.WarnContext(ctx, "fanning out events; they wait", "error", err, "events", len(msgs))
		for i := range outs {
			if outs[i].Kind != consume.KindRefuse {
				outs[i] = consume.Wait(fanoutWait)
			}
		}
	}
	if len(merchants) == 0 {
		return
	}
	list := make([]string, 0, len(merchants))
	for m := range merchants {
		list = append(list, m)
	}
	endpoints, err := f.store.EnabledEndpoints(ctx, list)
	if err != nil {
		wait(err)
		return
	}
	var (
		tasks  []Task
		traces map[string]trace.SpanContext // each task goes on with its event's trace
	)
	for i, m := range msgs {
		if outs[i].Kind == consume.KindRefuse {
			continue
		}
		if sc := telemetry.SpanContextOf(m); sc.IsValid() {
			if traces == nil {
				traces = map[string]trace.SpanContext{}
			}
			traces[refs[i].ID] = sc
		}
		merchant := m.Header(MerchantHeader)
		for _, e := range endpoints[merchant] {
			if e.Subscribes(refs[i].Type) {
				tasks = append(tasks, Task{Key: TaskKey(refs[i].ID, e.ID), Merchant: merchant, Endpoint: e.ID, Event: refs[i].ID, Body: m.Data()})
			}
		}
	}
	if err := f.tasks.PublishTasks(telemetry.WithBatch(ctx, traces), tasks); err != nil {
		wait(err)
	}
}

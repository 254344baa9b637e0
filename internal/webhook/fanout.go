package webhook

import (
	"context"
	"encoding/json"
	"log/slog"
	"time"
)

// Fanout turns each published event into one delivery task per enabled endpoint of its
// merchant that subscribes to its type. Tasks are keyed by event and endpoint, so a
// redelivered event publishes no second task (the queue drops the duplicate).
type Fanout struct {
	Store  Store
	Tasks  TaskPublisher
	Source Source
	Logger *slog.Logger
}

// Run fans out events until ctx ends; a batch in hand is finished first.
func (f *Fanout) Run(ctx context.Context) error {
	for {
		msgs, err := f.Source.Fetch(ctx, 256, time.Second)
		if ctx.Err() != nil {
			f.handle(context.WithoutCancel(ctx), msgs)
			return nil
		}
		if err != nil {
			f.Logger.WarnContext(ctx, "fetching events", "error", err)
			select {
			case <-ctx.Done():
				return nil
			case <-time.After(time.Second):
			}
			continue
		}
		f.handle(ctx, msgs)
	}
}

func (f *Fanout) handle(ctx context.Context, msgs []Message) {
	if len(msgs) == 0 {
		return
	}
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	type ref struct {
		ID   string `json:"id"`
		Type string `json:"type"`
	}
	merchants := map[string]bool{}
	for _, m := range msgs {
		merchants[m.Header(MerchantHeader)] = true
	}
	list := make([]string, 0, len(merchants))
	for m := range merchants {
		list = append(list, m)
	}
	endpoints, err := f.Store.EnabledEndpoints(ctx, list)
	if err != nil {
		f.retry(ctx, msgs, err)
		return
	}
	var tasks []Task
	for _, m := range msgs {
		var ev ref
		if err := json.Unmarshal(m.Data(), &ev); err != nil || ev.ID == "" {
			f.Logger.ErrorContext(ctx, "undecodable event; skipped", "error", err)
			continue
		}
		merchant := m.Header(MerchantHeader)
		for _, e := range endpoints[merchant] {
			if e.Subscribes(ev.Type) {
				tasks = append(tasks, Task{Key: TaskKey(ev.ID, e.ID), Merchant: merchant, Endpoint: e.ID, Event: ev.ID, Body: m.Data()})
			}
		}
	}
	if err := f.Tasks.PublishTasks(ctx, tasks); err != nil {
		f.retry(ctx, msgs, err)
		return
	}
	for _, m := range msgs {
		if err := m.Ack(ctx); err != nil {
			f.Logger.WarnContext(ctx, "acknowledging event", "error", err)
		}
	}
}

func (f *Fanout) retry(ctx context.Context, msgs []Message, err error) {
	f.Logger.WarnContext(ctx, "fanning out events; will retry", "error", err, "events", len(msgs))
	for _, m := range msgs {
		_ = m.NakWithDelay(time.Second)
	}
}

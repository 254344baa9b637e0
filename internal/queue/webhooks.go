package queue

import (
	"context"
	"encoding/json"
	"fmt"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/billing/billing/internal/webhook"
)

// PublishTasks puts webhook delivery tasks on WEBHOOKS, on a subject per endpoint, each
// deduplicated by its key, and returns once all are stored. Each carries the trace
// context telemetry.WithBatch gave its event id, or else ctx's.
func (c *Conn) PublishTasks(ctx context.Context, ts []webhook.Task) error {
	if len(ts) == 0 {
		return nil
	}
	msgs := make([]*nats.Msg, len(ts))
	for i, t := range ts {
		if !validToken(t.Endpoint) {
			return invalid("endpoint id %q", t.Endpoint)
		}
		data, err := json.Marshal(t)
		if err != nil {
			return fmt.Errorf("encoding task %s: %w", t.Key, err)
		}
		msgs[i] = &nats.Msg{Subject: subjectWebhooks + "." + t.Endpoint, Data: data, Header: nats.Header{}}
		msgs[i].Header.Set(jetstream.MsgIDHeader, t.Key)
		c.inject(ctx, t.Event, msgs[i].Header)
	}
	return c.publishAll(ctx, fmt.Sprintf("publishing %d webhook tasks", len(ts)), msgs)
}

package queue

import (
	"context"
	"fmt"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// The names of our streams and buckets.
const (
	StreamCharges     = "CHARGES"
	StreamEvents      = "EVENTS"
	StreamWebhooks    = "WEBHOOKS"
	BucketIdempotency = "IDEMPOTENCY"
	BucketReports     = "REPORTS"
)

const (
	// duplicateWindow is how long a stream remembers a Nats-Msg-Id to drop a republish.
	duplicateWindow = 2 * time.Minute
	// eventsMaxAge is how long EVENTS keeps an event.
	eventsMaxAge = 30 * 24 * time.Hour
)

// EnsureStreams creates the streams and the buckets, or updates them to the configuration
// of this version. It is idempotent and safe to run from every replica at start.
func (c *Conn) EnsureStreams(ctx context.Context) error {
	charges, err := c.js.CreateOrUpdateStream(ctx, jetstream.StreamConfig{
		Name:        StreamCharges,
		Description: "accepted charge commands, one message per command, removed when a worker acks it",
		Subjects:    []string{subjectCharges + ".>", subjectChargesLater + ".>"},
		Retention:   jetstream.WorkQueuePolicy,
		Storage:     jetstream.FileStorage,
		Replicas:    c.cfg.Replicas,
		Duplicates:  duplicateWindow,
		AllowDirect: true,
		// No MaxBytes: the stream would drop accepted commands (DiscardOld), and the
		// server refuses DiscardNew beside message schedules. ChargesMaxBytes is enforced
		// by the publishers of new commands instead (publishCommand).
		// Msg.Later: commands that wait long do not hold the consumer's places.
		AllowMsgSchedules: true,
	})
	if err != nil {
		return unavailable("ensuring stream "+StreamCharges, err)
	}
	if err := schedulesOn(charges.CachedInfo()); err != nil {
		return err
	}
	_, err = c.js.CreateOrUpdateStream(ctx, jetstream.StreamConfig{
		Name:        StreamEvents,
		Description: "charge events, for webhooks fan-out and waiting readers",
		Subjects:    []string{subjectEvents + ".>"},
		Retention:   jetstream.LimitsPolicy,
		MaxAge:      eventsMaxAge,
		Storage:     jetstream.FileStorage,
		Replicas:    c.cfg.Replicas,
		Duplicates:  duplicateWindow,
	})
	if err != nil {
		return unavailable("ensuring stream "+StreamEvents, err)
	}
	webhooks, err := c.js.CreateOrUpdateStream(ctx, jetstream.StreamConfig{
		Name:        StreamWebhooks,
		Description: "webhook delivery tasks, one per (event, endpoint), removed when delivered or given up",
		Subjects:    []string{subjectWebhooks + ".>", subjectWebhooksLater + ".>"},
		Retention:   jetstream.WorkQueuePolicy,
		Storage:     jetstream.FileStorage,
		Replicas:    c.cfg.Replicas,
		Duplicates:  duplicateWindow,
		// Msg.Later: retries hours apart do not hold the consumer's places.
		AllowMsgSchedules: true,
	})
	if err != nil {
		return unavailable("ensuring stream "+StreamWebhooks, err)
	}
	if err := schedulesOn(webhooks.CachedInfo()); err != nil {
		return err
	}
	idem, err := c.js.CreateOrUpdateKeyValue(ctx, jetstream.KeyValueConfig{
		Bucket:      BucketIdempotency,
		Description: "idempotency records of the ingest API",
		TTL:         c.cfg.IdempotencyTTL,
		Storage:     jetstream.FileStorage,
		Replicas:    c.cfg.Replicas,
		History:     1,
	})
	if err != nil {
		return unavailable("ensuring bucket "+BucketIdempotency, err)
	}
	reports, err := c.js.CreateOrUpdateKeyValue(ctx, jetstream.KeyValueConfig{
		Bucket:      BucketReports,
		Description: "the last report of each operator's tool (worker reconcile), for the dashboard",
		Storage:     jetstream.FileStorage,
		Replicas:    c.cfg.Replicas,
		History:     1,
	})
	if err != nil {
		return unavailable("ensuring bucket "+BucketReports, err)
	}
	c.handles.Store(&handles{charges: charges, idempotency: idem, reports: reports})
	return nil
}

// schedulesOn refuses a stream whose server did not take allow_msg_schedules: a server
// older than 2.12 ignores the setting, and would then store the copies Msg.Later makes as
// plain messages that no consumer takes and nothing ever republishes.
func schedulesOn(info *jetstream.StreamInfo) error {
	if info == nil || !info.Config.AllowMsgSchedules {
		name := ""
		if info != nil {
			name = info.Config.Name
		}
		return fmt.Errorf("stream %s: the NATS server did not enable message schedules; nats-server 2.12 or newer is required", name)
	}
	return nil
}

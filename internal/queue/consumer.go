package queue

import (
	"cmp"
	"context"
	"errors"
	"strconv"
	"strings"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// CommandConsumerName is the durable consumer of CHARGES that every worker replica
// shares. The autoscaler follows its lag (deploy/worker-scaledobject.yaml), so renaming it
// leaves the workers unscaled: deploy's test holds the two together.
const CommandConsumerName = "workers"

// TaskConsumerName is the durable consumer of WEBHOOKS that every worker running the
// webhooks role shares.
const TaskConsumerName = "webhook-delivery"

// maxAckPending caps the commands delivered and not yet acknowledged, over all workers.
const maxAckPending = 4096

// maxTaskAckPending caps the webhook tasks delivered and not yet acknowledged: those in a
// delayed retry count, so it is far higher.
const maxTaskAckPending = 100_000

// ConsumerConfig configures CommandConsumer.
type ConsumerConfig struct {
	// Durable names the consumer that all worker replicas share. Defaults to
	// CommandConsumerName for CommandConsumer.
	Durable string
	// AckWait is how long a delivered command may go without Ack, Nak or InProgress before
	// the server delivers it again. Defaults to 30s.
	AckWait time.Duration
}

// Consumer is the durable pull consumer of CHARGES. Any number of Consumers, in any
// number of processes, can share one durable name: each command goes to one of them at a
// time.
type Consumer struct {
	c  jetstream.Consumer
	js jetstream.JetStream
	// later names where Msg.Later puts a message of this consumer; nil for EVENTS.
	later *laterSubject
	// workQueue is the consumer's stream when it is a work queue (CHARGES, WEBHOOKS):
	// there every message not yet acknowledged is in the stream, and only there.
	workQueue jetstream.Stream
}

// CommandConsumer creates or updates the durable consumer of CHARGES and returns it. The
// consumer never gives up on a command by itself (no delivery limit): the worker decides,
// from NumDelivered, when to fail a charge and Term its command.
func (c *Conn) CommandConsumer(ctx context.Context, cfg ConsumerConfig) (*Consumer, error) {
	cfg.Durable = cmp.Or(cfg.Durable, CommandConsumerName)
	return c.consumer(ctx, StreamCharges, "charge workers", cfg, maxAckPending, laterCommand)
}

// EventConsumer creates or updates the durable consumer of EVENTS that fans events out to
// webhook endpoints, shared by every worker that runs the webhooks role.
func (c *Conn) EventConsumer(ctx context.Context, cfg ConsumerConfig) (*Consumer, error) {
	cfg.Durable = cmp.Or(cfg.Durable, "webhook-fanout")
	return c.consumer(ctx, StreamEvents, "webhook fan-out", cfg, maxAckPending, nil)
}

// TaskConsumer creates or updates the durable consumer of WEBHOOKS, the delivery tasks.
// A task that waits for its next attempt is handed back for later (Msg.Later) and holds
// no place; those deferred for a few seconds behind their endpoint's other tasks do, so
// the ack-pending limit is high.
func (c *Conn) TaskConsumer(ctx context.Context, cfg ConsumerConfig) (*Consumer, error) {
	cfg.Durable = cmp.Or(cfg.Durable, TaskConsumerName)
	return c.consumer(ctx, StreamWebhooks, "webhook deliveries", cfg, maxTaskAckPending, laterTask)
}

// consumer creates or updates a durable consumer of stream. A consumer of a work queue
// takes only the stream's first subject space (charges.>, webhooks.>): the other holds
// the messages handed back with Msg.Later, which later names.
func (c *Conn) consumer(ctx context.Context, stream, description string, cfg ConsumerConfig, ackPending int, later *laterSubject) (*Consumer, error) {
	cfg.AckWait = cmp.Or(cfg.AckWait, 30*time.Second)
	if !validToken(cfg.Durable) {
		return nil, invalid("consumer name %q", cfg.Durable)
	}
	if cfg.AckWait < time.Second {
		return nil, invalid("AckWait must be at least 1s, got %s", cfg.AckWait)
	}
	cons, err := c.js.CreateOrUpdateConsumer(ctx, stream, jetstream.ConsumerConfig{
		Durable:       cfg.Durable,
		Description:   description,
		AckPolicy:     jetstream.AckExplicitPolicy,
		AckWait:       cfg.AckWait,
		MaxDeliver:    -1,
		MaxAckPending: ackPending,
		DeliverPolicy: jetstream.DeliverAllPolicy,
		FilterSubject: later.filter(),
	})
	if err != nil {
		return nil, unavailable("ensuring consumer "+cfg.Durable, err)
	}
	k := &Consumer{c: cons, js: c.js, later: later}
	if later != nil { // the work queues: CHARGES, WEBHOOKS
		if k.workQueue, err = c.js.Stream(ctx, stream); err != nil {
			return nil, unavailable("reading stream "+stream, err)
		}
	}
	return k, nil
}

// Fetch returns up to max commands, waiting up to wait for the first ones. It returns an
// empty slice, not an error, when nothing arrived in time.
//
// When ctx ends first it returns ctx.Err(), and the commands received so far are handed
// back to the server (Nak) for immediate redelivery. Commands the server sent after that
// are delivered again only after AckWait: to stop fetching, stop calling Fetch rather
// than cancelling one in flight.
//
// A deadline of ctx earlier than wait shortens the wait: the fetch ends a little before
// that deadline (nats.go keeps a margin for the server's reply), returning what arrived
// and no error.
//
// An error after some commands arrived is not reported: the commands are returned, and
// the next Fetch will meet the error again if it lasts.
func (k *Consumer) Fetch(ctx context.Context, max int, wait time.Duration) ([]*Msg, error) {
	if max <= 0 {
		return nil, invalid("fetch max must be positive, got %d", max)
	}
	if wait <= 0 {
		return nil, invalid("fetch wait must be positive, got %s", wait)
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	// What is there already, at once; if nothing is, wait for one message (a pull of one
	// ends as soon as it arrives, where a larger pull would wait to fill up) and take what
	// came with it. A pull request is never abandoned while it may still deliver.
	if msgs, err := k.fetchNoWait(max); err != nil || len(msgs) > 0 {
		return msgs, err
	}
	// FetchContext, not FetchMaxWait: the fetch then ends as soon as ctx does. The pull
	// request expires on the server a little before fctx does (nats.go keeps a margin).
	fctx, cancel := context.WithTimeout(ctx, wait)
	defer cancel()
	batch, err := k.c.Fetch(1, jetstream.FetchContext(fctx))
	if err != nil {
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		return nil, unavailable("fetching commands", err)
	}
	msgs := make([]*Msg, 0, max)
	for m := range batch.Messages() {
		msgs = append(msgs, k.wrap(m))
	}
	if err := ctx.Err(); err != nil {
		for _, m := range msgs {
			_ = m.m.Nak() // best effort: if lost, AckWait redelivers
		}
		return nil, err
	}
	if err := batch.Error(); err != nil && len(msgs) == 0 && !errors.Is(err, context.DeadlineExceeded) {
		return nil, unavailable("fetching commands", err)
	}
	if len(msgs) > 0 && max > 1 {
		more, _ := k.fetchNoWait(max - 1) // an error here returns on the next Fetch
		msgs = append(msgs, more...)
	}
	return msgs, nil
}

// fetchNoWait returns up to max messages that are available now.
func (k *Consumer) fetchNoWait(max int) ([]*Msg, error) {
	batch, err := k.c.FetchNoWait(max)
	if err != nil {
		return nil, unavailable("fetching", err)
	}
	var msgs []*Msg
	for m := range batch.Messages() {
		msgs = append(msgs, k.wrap(m))
	}
	if err := batch.Error(); err != nil && len(msgs) == 0 && !errors.Is(err, context.DeadlineExceeded) && !errors.Is(err, jetstream.ErrNoMessages) {
		return nil, unavailable("fetching", err)
	}
	return msgs, nil
}

// Pending returns how many messages are not yet done: waiting for a worker, in a worker's
// hands, or handed back to wait (Msg.Later). Tests wait for it to drop to zero.
//
// On a work queue it is the stream's message count, exact at any moment: a message is
// stored before its publish is acknowledged and removed when its ack is processed. The
// consumer's own counts are not (see Lag). EVENTS keeps its messages, so there it is the
// consumer's Lag.
func (k *Consumer) Pending(ctx context.Context) (uint64, error) {
	if k.workQueue == nil {
		return k.Lag(ctx)
	}
	info, err := k.workQueue.Info(ctx)
	if err != nil {
		return 0, unavailable("reading stream info", err)
	}
	return info.State.Msgs, nil
}

// Lag returns how many messages wait for a worker or are in a worker's hands (delivered,
// not yet acknowledged, a delayed nak included): the work more workers could take on,
// and what KEDA's nats-jetstream scaler reads. Messages handed back to wait are not in it.
// It is the consumer's count, which the server updates asynchronously: just after a
// publish it can be short (seen: 1 of 3), so wait on Pending, not on Lag.
func (k *Consumer) Lag(ctx context.Context) (uint64, error) {
	info, err := k.c.Info(ctx)
	if err != nil {
		return 0, unavailable("reading consumer info", err)
	}
	return info.NumPending + uint64(info.NumAckPending), nil
}

// Waiting returns about how many messages are handed back to wait (Msg.Later): Pending
// less Lag, which, read one after the other and Lag being late, is an estimate.
func (k *Consumer) Waiting(ctx context.Context) (uint64, error) {
	lag, err := k.Lag(ctx)
	if err != nil {
		return 0, err
	}
	all, err := k.Pending(ctx)
	if err != nil {
		return 0, err
	}
	return all - min(all, lag), nil
}

// Header returns the value of a header of the message, or "".
func (m *Msg) Header(key string) string { return m.m.Headers().Get(key) }

// Headers returns the message's own headers: not those of NATS (Nats-*) nor those that
// Later adds to a copy.
func (m *Msg) Headers() map[string]string {
	var h map[string]string
	for k, v := range m.m.Headers() {
		switch {
		case len(v) == 0, strings.HasPrefix(k, "Nats-"), k == deliveredHeader, k == attemptHeader, k == idHeader:
			continue
		}
		if h == nil {
			h = map[string]string{}
		}
		h[k] = v[0]
	}
	return h
}

// ID names the message, the same on each of its deliveries and on its copies handed back
// for later: a command's subject, which is its own (one create, capture and cancel per
// charge, a refund's id in its subject); on the other streams, whose subjects are shared
// (a webhook endpoint's tasks), the subject and the stream sequence.
func (m *Msg) ID() string {
	if id := m.m.Headers().Get(idHeader); id != "" {
		return id
	}
	if m.later != nil && !m.later.bySeq {
		return m.m.Subject()
	}
	md, err := m.m.Metadata()
	if err != nil {
		return m.m.Subject()
	}
	return m.m.Subject() + "#" + strconv.FormatUint(md.Sequence.Stream, 10)
}

// Attempt returns which attempt of the work this delivery is: 1, or what the Later that
// made this copy said.
func (m *Msg) Attempt() uint64 {
	if n, err := strconv.ParseUint(m.m.Headers().Get(attemptHeader), 10, 64); err == nil && n > 0 {
		return n
	}
	return 1
}

// Msg is one delivered message. Exactly one of Ack, NakWithDelay, Later or Term settles
// it; InProgress extends its AckWait meanwhile.
type Msg struct {
	m     jetstream.Msg
	js    jetstream.JetStream
	later *laterSubject
}

func (k *Consumer) wrap(m jetstream.Msg) *Msg { return &Msg{m: m, js: k.js, later: k.later} }

// Data returns the payload: the JSON of a charge.Command.
func (m *Msg) Data() []byte { return m.m.Data() }

// Subject returns the subject: charges.<charge id>.<command>, or for a refund
// charges.<charge id>.refund.<refund id>.
func (m *Msg) Subject() string { return m.m.Subject() }

// NumDelivered returns how many times this message has been delivered, this time
// included: 1 the first time. Deliveries before it was handed back with Later count. It
// is 1 if the delivery metadata cannot be read.
func (m *Msg) NumDelivered() uint64 {
	before, _ := strconv.ParseUint(m.m.Headers().Get(deliveredHeader), 10, 64)
	md, err := m.m.Metadata()
	if err != nil || md.NumDelivered == 0 {
		return before + 1
	}
	return before + md.NumDelivered
}

// Ack acknowledges the command and waits for the server to confirm it: once it returns
// nil the command is gone from CHARGES.
func (m *Msg) Ack(ctx context.Context) error {
	if err := m.m.DoubleAck(ctx); err != nil {
		return unavailable("acking "+m.m.Subject(), err)
	}
	return nil
}

// NakWithDelay asks for the command to be delivered again after d.
func (m *Msg) NakWithDelay(d time.Duration) error {
	if err := m.m.NakWithDelay(d); err != nil {
		return unavailable("naking "+m.m.Subject(), err)
	}
	return nil
}

// Term removes the command for good; the worker has recorded why.
func (m *Msg) Term() error {
	if err := m.m.Term(); err != nil {
		return unavailable("terminating "+m.m.Subject(), err)
	}
	return nil
}

// InProgress tells the server the command is still being worked on, resetting AckWait.
func (m *Msg) InProgress() error {
	if err := m.m.InProgress(); err != nil {
		return unavailable("extending "+m.m.Subject(), err)
	}
	return nil
}

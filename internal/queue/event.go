package queue

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sync"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/billing/billing/internal/charge"
	"github.com/billing/billing/internal/webhook"
)

// PublishEvents stores es in EVENTS, on events.<charge id>.<event type>, and returns once
// the stream has acknowledged every one. The message id is the event id, so publishing the
// same events again within the duplicate window (2 minutes) stores nothing new. Each
// carries the trace context telemetry.WithBatch gave its charge id, or else ctx's.
//
// The events are published together without waiting for each ack in turn. Any failure
// matches charge.ErrUnavailable: publish them all again. An event that cannot be put on a
// subject matches ErrInvalid and nothing is published.
func (c *Conn) PublishEvents(ctx context.Context, es []charge.Event) error {
	if len(es) == 0 {
		return nil
	}
	msgs := make([]*nats.Msg, len(es))
	for i, e := range es {
		subject, err := eventSubject(e)
		if err != nil {
			return err
		}
		data, err := json.Marshal(e.Public())
		if err != nil {
			return fmt.Errorf("encoding event %s: %w", e.ID, err)
		}
		msgs[i] = &nats.Msg{Subject: subject, Data: data, Header: nats.Header{}}
		msgs[i].Header.Set(jetstream.MsgIDHeader, e.ID)
		msgs[i].Header.Set(HeaderMerchant, e.Merchant)
		c.inject(ctx, e.ChargeID, msgs[i].Header)
	}
	return c.publishAll(ctx, fmt.Sprintf("publishing %d events", len(es)), msgs)
}

// publishAll publishes msgs, each deduplicated by its Nats-Msg-Id header, without waiting
// for each ack in turn, and returns once all are acknowledged.
func (c *Conn) publishAll(ctx context.Context, what string, msgs []*nats.Msg) error {
	if err := ctx.Err(); err != nil {
		return unavailable(what, err, ErrNotAccepted)
	}
	// The futures are awaited one by one rather than with PublishAsyncComplete, which
	// waits for every publish of the connection, other goroutines' included.
	futures := make([]jetstream.PubAckFuture, 0, len(msgs))
	for _, m := range msgs {
		f, err := c.js.PublishMsgAsync(m)
		if err != nil {
			return publishAllError(what, m, err)
		}
		futures = append(futures, f)
	}
	for i, f := range futures {
		select {
		case <-f.Ok():
		case err := <-f.Err():
			return publishAllError(what, msgs[i], err)
		case <-ctx.Done():
			return unavailable(what, ctx.Err())
		}
	}
	return nil
}

// publishAllError is the error of publishAll when m's publish failed with err: the
// message refused for good if it is too large for the server or the stream (retrying
// would not help), unavailable otherwise.
func publishAllError(what string, m *nats.Msg, err error) error {
	err = fmt.Errorf("%s: %w", m.Header.Get(jetstream.MsgIDHeader), err)
	if errors.Is(err, nats.ErrMaxPayload) || apiErrorCode(err) == jetstream.JSErrCodeStreamMessageExceedsMaximum {
		return fmt.Errorf("%s: %w: %w", what, charge.ErrRejected, err)
	}
	return unavailable(what, err)
}

// HeaderMerchant carries the merchant of an event, which its public JSON does not show.
const HeaderMerchant = webhook.MerchantHeader

// WaitForCharge subscribes to the events of one charge. The channel receives a value
// (it holds at most one) whenever an event of that charge is published; stop unsubscribes.
// The subscription is active on the server when WaitForCharge returns, so a caller that
// subscribes, then reads the charge, then waits misses no change.
//
// Delivery is best effort (core NATS): a reader must read the charge again after a signal
// or a timeout, never trust the signal alone. A chargeID that could not be an id gives
// charge.ErrNotFound.
func (c *Conn) WaitForCharge(ctx context.Context, chargeID string) (<-chan struct{}, func(), error) {
	if !validToken(chargeID) {
		return nil, nil, charge.ErrNotFound
	}
	ch := make(chan struct{}, 1)
	sub, err := c.nc.Subscribe(subjectEvents+"."+chargeID+".>", func(*nats.Msg) {
		select {
		case ch <- struct{}{}:
		default:
		}
	})
	if err != nil {
		return nil, nil, unavailable("subscribing to events of "+chargeID, err)
	}
	var once sync.Once
	stop := func() {
		once.Do(func() {
			err := sub.Unsubscribe()
			if err != nil && !errors.Is(err, nats.ErrConnectionClosed) && !errors.Is(err, nats.ErrBadSubscription) {
				c.logger.Warn("unsubscribing from charge events", "charge_id", chargeID, "error", err)
			}
		})
	}
	// A round trip to the server, so that it has registered the subscription.
	fctx, cancel := withTimeout(ctx)
	defer cancel()
	if err := c.nc.FlushWithContext(fctx); err != nil {
		stop()
		return nil, nil, unavailable("subscribing to events of "+chargeID, err)
	}
	return ch, stop, nil
}

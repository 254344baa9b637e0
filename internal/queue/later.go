package queue

import (
	"context"
	"errors"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"golang.org/x/sync/errgroup"
)

// Handing a message back for later.
//
// A delayed Nak keeps the message among its consumer's unacknowledged ones until the
// server delivers it again, and a consumer caps those (MaxAckPending): once enough
// messages wait long (refunds of charges not captured yet, webhooks to an endpoint that is
// down), the consumer delivers nothing else, to anyone. Later instead stores a copy as a
// JetStream message schedule, on a subject of the same stream that the consumer does not
// take, and acknowledges the delivery; at the time given the server publishes the copy
// again on the original subject, as a new message, and removes the schedule.
//
// A stream holds one schedule per subject, so a second Later of the same message (a
// redelivery after a crash between the schedule and the ack) replaces the first: the
// message is not doubled.

// The first tokens of the subjects that hold messages handed back for later.
const (
	subjectChargesLater  = "charges_later"
	subjectWebhooksLater = "webhooks_later"
)

// laterSubject maps a consumer's subjects to those of their later copies.
type laterSubject struct {
	from, to string
	// bySeq: many messages share a subject (a webhook endpoint's tasks); the stream
	// sequence of the delivery tells their copies apart.
	bySeq bool
}

var (
	// A command's subject is its own (one create, capture and cancel per charge, a refund's
	// id in its subject): charges_later.<charge id>.refund.<refund id>, found by refund id
	// alone like the command itself.
	laterCommand = &laterSubject{from: subjectCharges, to: subjectChargesLater}
	// webhooks_later.<endpoint>.<stream sequence>.
	laterTask = &laterSubject{from: subjectWebhooks, to: subjectWebhooksLater, bySeq: true}
)

// filter is the consumer's filter subject: all of the stream but the later copies. ""
// (all) for a stream without them.
func (l *laterSubject) filter() string {
	if l == nil {
		return ""
	}
	return l.from + ".>"
}

// subject names the later copy of a message on subject with stream sequence seq.
func (l *laterSubject) subject(subject string, seq uint64) string {
	s := l.to + strings.TrimPrefix(subject, l.from)
	if l.bySeq {
		s += "." + strconv.FormatUint(seq, 10)
	}
	return s
}

// deliveredHeader carries, on a later copy, how many times the message was delivered
// before it was handed back, so that NumDelivered goes on counting.
const deliveredHeader = "Billing-Delivered"

// attemptHeader carries, on a later copy, which attempt its delivery is (Msg.Attempt).
const attemptHeader = "Billing-Attempt"

// idHeader carries, on a later copy, the ID of the message it copies.
const idHeader = "Billing-Message-Id"

// Later hands the message back to be delivered again once d has passed, without holding a
// place among the consumer's unacknowledged messages meanwhile (see above). It returns
// once the copy is stored and this delivery acknowledged. The copy keeps the payload, the
// headers but those of NATS (Nats-*) and the ID; its NumDelivered goes on from this
// one's, and its Attempt is attempt.
//
// An error means the copy was not stored: settle the delivery otherwise (a delayed nak).
// Once the copy is stored, a failed ack of this delivery is not reported: there is
// nothing better to do than what follows anyway, AckWait redelivering this delivery,
// whose Later then replaces the copy.
func (m *Msg) Later(ctx context.Context, d time.Duration, attempt uint64) error {
	if m.later == nil {
		return invalid("%s: this stream does not take messages back for later", m.m.Subject())
	}
	md, err := m.m.Metadata()
	if err != nil {
		return unavailable("reading the metadata of "+m.m.Subject(), err)
	}
	copied := &nats.Msg{Subject: m.later.subject(m.m.Subject(), md.Sequence.Stream), Data: m.m.Data(), Header: withoutNATSHeaders(m.m.Headers())}
	copied.Header.Set(deliveredHeader, strconv.FormatUint(m.NumDelivered(), 10))
	copied.Header.Set(attemptHeader, strconv.FormatUint(max(attempt, 1), 10))
	copied.Header.Set(idHeader, m.ID())
	copied.Header.Set("Nats-Schedule", "@at "+time.Now().Add(d).UTC().Format(time.RFC3339Nano))
	copied.Header.Set("Nats-Schedule-Target", m.m.Subject())
	if _, err := m.js.PublishMsg(ctx, copied); err != nil {
		return unavailable("handing "+m.m.Subject()+" back for later", err)
	}
	_ = m.Ack(ctx)
	return nil
}

// ReleaseTasks brings back at once every webhook task of endpoint handed back for later:
// each copy is published again on its target subject, with its payload and headers (its
// delivery count and attempt go on), and its schedule deleted. The deliverer parks the
// backlog of an endpoint that is down for long, and releases it when the endpoint answers
// again. It returns how many it released.
//
// A crash between a publish and its deletion leaves the schedule to fire too: the task is
// delivered twice, as at-least-once delivery allows (the publish itself is deduplicated
// within the stream's window, by the schedule's sequence). So is a schedule that fires
// while it is being released.
func (c *Conn) ReleaseTasks(ctx context.Context, endpoint string) (int, error) {
	if !validToken(endpoint) {
		return 0, invalid("endpoint %q", endpoint)
	}
	stream, err := c.js.Stream(ctx, StreamWebhooks)
	if err != nil {
		return 0, unavailable("reading stream "+StreamWebhooks, err)
	}
	filter := subjectWebhooksLater + "." + endpoint + ".>"
	info, err := stream.Info(ctx, jetstream.WithSubjectFilter(filter))
	if err != nil {
		return 0, unavailable("listing the parked tasks of "+endpoint, err)
	}
	// One task after another is three round trips each; a backlog of thousands goes out
	// a bounded number at once.
	var (
		released atomic.Int64
		g        errgroup.Group
	)
	g.SetLimit(releaseConcurrency)
	for subject := range info.State.Subjects {
		g.Go(func() error {
			ok, err := c.releaseTask(ctx, stream, subject)
			if ok {
				released.Add(1)
			}
			return err
		})
	}
	err = g.Wait()
	return int(released.Load()), err
}

// releaseConcurrency bounds the parked tasks ReleaseTasks releases at once.
const releaseConcurrency = 64

// releaseTask releases the parked task on subject, if it is still there.
func (c *Conn) releaseTask(ctx context.Context, stream jetstream.Stream, subject string) (bool, error) {
	raw, err := stream.GetLastMsgForSubject(ctx, subject)
	if errors.Is(err, jetstream.ErrMsgNotFound) {
		return false, nil // fired or released meanwhile
	}
	if err != nil {
		return false, unavailable("reading "+subject, err)
	}
	target := raw.Header.Get("Nats-Schedule-Target")
	if !strings.HasPrefix(target, subjectWebhooks+".") {
		return false, nil
	}
	m := &nats.Msg{Subject: target, Data: raw.Data, Header: withoutNATSHeaders(raw.Header)}
	m.Header.Set(jetstream.MsgIDHeader, "released:"+strconv.FormatUint(raw.Sequence, 10))
	if _, err := c.js.PublishMsg(ctx, m); err != nil {
		if apiErrorCode(err) == errCodeDuplicateInProcess {
			return false, nil // another worker releases it at this moment
		}
		return false, unavailable("releasing "+subject, err)
	}
	// The server refuses a deletion (ErrMsgDeleteUnsuccessful, its reason only as text)
	// of a schedule another worker deleted first; if this one stays, it fires later: a
	// second delivery, as at-least-once allows.
	if err := stream.DeleteMsg(ctx, raw.Sequence); err != nil && !errors.Is(err, jetstream.ErrMsgDeleteUnsuccessful) {
		return true, unavailable("deleting the schedule of "+subject, err)
	}
	return true, nil
}

// withoutNATSHeaders copies h but the headers of NATS (Nats-*: a message id, a schedule),
// for a copy of a message published anew.
func withoutNATSHeaders(h nats.Header) nats.Header {
	out := nats.Header{}
	for k, v := range h {
		if !strings.HasPrefix(k, "Nats-") {
			out[k] = v
		}
	}
	return out
}

// errCodeDuplicateInProcess is JetStream's answer to a publish whose message id another
// publish, in flight, carries: two workers releasing one endpoint's tasks at once.
const errCodeDuplicateInProcess jetstream.ErrorCode = 10158

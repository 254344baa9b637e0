package queue

import (
	"context"
	"strconv"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
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
	copied := &nats.Msg{Subject: m.later.subject(m.m.Subject(), md.Sequence.Stream), Data: m.m.Data(), Header: nats.Header{}}
	for k, v := range m.m.Headers() {
		if !strings.HasPrefix(k, "Nats-") {
			copied.Header[k] = v
		}
	}
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

package queue

import (
	"context"
	"strings"

	"github.com/nats-io/nats.go"

	"github.com/billing/billing/internal/charge"
)

// Replay publishes a dead letter's message again, on its subject with its payload and
// headers, for the consumer that gave up on it to try once more: after a fix, or once what
// refused it is mended. It returns once the stream has stored it. Every consumer's
// handling is idempotent, so a replay of a message whose work was in fact done changes
// nothing.
func (c *Conn) Replay(ctx context.Context, d charge.DeadLetter) error {
	if !strings.HasPrefix(d.Subject, subjectCharges+".") && !strings.HasPrefix(d.Subject, subjectEvents+".") &&
		!strings.HasPrefix(d.Subject, subjectWebhooks+".") {
		return invalid("dead letter %s: subject %q is on none of our streams", d.ID, d.Subject)
	}
	m := &nats.Msg{Subject: d.Subject, Data: d.Data, Header: nats.Header{}}
	for k, v := range d.Headers {
		m.Header.Set(k, v)
	}
	if _, err := c.js.PublishMsg(ctx, m); err != nil {
		return unavailable("replaying "+d.ID, err)
	}
	return nil
}

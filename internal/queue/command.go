package queue

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"go.opentelemetry.io/otel/trace"

	"github.com/billing/billing/internal/charge"
	"github.com/billing/billing/internal/telemetry"
)

// PublishCommand stores cmd in CHARGES and returns once the stream has acknowledged it.
// The subject and message id are commandAddress's: a republish of the same command within
// the duplicate window (2 minutes) is stored once.
//
// A capture or cancel is stored only while no other operation of its charge is (see
// operationLock); otherwise it fails with charge.ErrOperationInProgress, certainly not
// stored. Any other failure matches charge.ErrUnavailable and one of ErrNotAccepted
// (certainly not stored) or ErrPublishUncertain (maybe stored; see
// PublishOutcomeUnknown). An invalid command matches ErrInvalid.
func (c *Conn) PublishCommand(ctx context.Context, cmd charge.Command) error {
	_, err := c.publishCommand(ctx, cmd, nil)
	return err
}

// PublishEncodedCommand is PublishCommand for a command whose JSON encoding the caller
// has already made: data, stored as the message as it is.
func (c *Conn) PublishEncodedCommand(ctx context.Context, cmd charge.Command, data []byte) error {
	if len(data) == 0 {
		return invalid("command %s without its encoding", cmd.ChargeID)
	}
	_, err := c.publishCommand(ctx, cmd, data)
	return err
}

// PublishOperation is PublishCommand for a capture or cancel, which also returns the
// stream sequence this publish stored it under, or 0 when an earlier publish of the same
// command had (a republish): see WithdrawCommand.
func (c *Conn) PublishOperation(ctx context.Context, cmd charge.Command) (uint64, error) {
	if operationLock(cmd) == "" {
		return 0, invalid("%s is not an operation", cmd.Type)
	}
	return c.publishCommand(ctx, cmd, nil)
}

// WithdrawCommand removes the command stored under stream sequence seq, which its
// publisher has found will come to nothing. A worker that has fetched it already handles
// it as it would have anyway. Removing a message already gone is no error.
func (c *Conn) WithdrawCommand(ctx context.Context, seq uint64) error {
	err := c.streams().charges.DeleteMsg(ctx, seq)
	if err != nil && !errors.Is(err, jetstream.ErrMsgNotFound) {
		return unavailable(fmt.Sprintf("withdrawing command %d", seq), err)
	}
	return nil
}

// publishCommand publishes cmd, encoded as data (encoded here when nil), and returns the
// stream sequence it stored it under, 0 for a republish of a command stored before.
func (c *Conn) publishCommand(ctx context.Context, cmd charge.Command, data []byte) (_ uint64, err error) {
	subject, msgID, err := commandAddress(cmd)
	if err != nil {
		return 0, err
	}
	if data == nil {
		if data, err = json.Marshal(cmd); err != nil {
			return 0, fmt.Errorf("encoding command %s: %w", cmd.ChargeID, err)
		}
	}
	what := "publishing command " + string(cmd.Type) + " for " + cmd.ChargeID
	// nats.go answers ErrConnectionClosed and context errors both before and after
	// sending; checked here first, they are known to be before.
	if err := ctx.Err(); err != nil {
		return 0, unavailable(what, err, ErrNotAccepted)
	}
	if c.nc.IsClosed() {
		return 0, unavailable(what, errors.New("connection closed"), ErrNotAccepted)
	}
	if err := c.checkRoom(ctx, what); err != nil {
		return 0, err
	}
	opts := []jetstream.PublishOpt{jetstream.WithMsgID(msgID)}
	msg := &nats.Msg{Subject: subject, Data: data}
	if c.tracer.Enabled() {
		var span trace.Span
		ctx, span = c.startPublish(ctx, cmd, msg, msgID)
		defer func() { telemetry.End(span, err) }()
	}
	lock := operationLock(cmd)
	if lock != "" {
		opts = append(opts, jetstream.WithExpectLastSequenceForSubject(0, lock))
	}
	// A publish whose answer is lost (the server leading the stream died, the connection
	// moved to another) is sent again with the same message id, which the stream stores
	// once, until it is answered or requestTimeout is spent (whatever the caller's
	// deadline): the caller then knows, and the request needs no retry by its client.
	ctx, cancel := context.WithTimeout(ctx, requestTimeout)
	defer cancel()
	// sent: an attempt may have stored the command, so the outcome stays unknown
	// whatever later attempts answer.
	sent := false
	failed := func(err error) error {
		if sent {
			return unavailable(what, err, ErrPublishUncertain)
		}
		return publishError(what, err)
	}
	for attempt := 1; ; attempt++ {
		ack, err := c.js.PublishMsg(ctx, msg, opts...)
		switch {
		case err == nil && ack.Duplicate:
			return 0, nil
		case err == nil:
			c.noteStored(len(subject) + len(msgID) + len(data))
			return ack.Sequence, nil
		case lock != "" && wrongLastSequence(err):
			return 0, c.lockHeld(ctx, lock, cmd, what)
		case notSent(err) && !errors.Is(err, nats.ErrNoResponders) && !errors.Is(err, jetstream.ErrNoStreamResponse):
			return 0, failed(err)
		}
		// Maybe stored, or no stream answered (one electing its leader): again, if there
		// is time for it.
		sent = sent || !notSent(err)
		wait := time.Duration(attempt) * republishWait
		if d, ok := ctx.Deadline(); !ok || time.Until(d) < wait+republishWait || ctx.Err() != nil {
			return 0, failed(err)
		}
		c.logger.DebugContext(ctx, "publishing command again with the same id", "charge_id", cmd.ChargeID, "attempt", attempt, "error", err)
		select {
		case <-ctx.Done():
			return 0, failed(err)
		case <-time.After(wait):
		}
	}
}

// republishWait is the pause before the second publish of a command whose answer was
// lost; each further one waits that much longer.
const republishWait = 100 * time.Millisecond

// lockHeld answers a capture or cancel whose publish found its charge's operation lock
// held: nil when what holds it is cmd itself, stored by an earlier publish of the same
// request (whose answer was lost, or whose ingest died), charge.ErrOperationInProgress
// otherwise. The stream checks the lock before it looks for duplicates, so a republish of
// a stored command lands here rather than being acknowledged as a duplicate.
func (c *Conn) lockHeld(ctx context.Context, lock string, cmd charge.Command, what string) error {
	held, err := c.lastCommand(ctx, lock, cmd.ChargeID)
	switch {
	case errors.Is(err, charge.ErrNotFound):
		// Released since: the operation that held it has just settled. The caller
		// retries and is answered by the charge as it is now.
		return fmt.Errorf("%s: %w", what, charge.ErrOperationInProgress)
	case err != nil:
		return unavailable(what, err, ErrNotAccepted)
	case cmd.ID != "" && held.ID == cmd.ID:
		return nil
	}
	return fmt.Errorf("%s: %w", what, charge.ErrOperationInProgress)
}

// wrongLastSequence reports whether a publish was refused for its expected last
// sequence (the code differs on replicated streams).
func wrongLastSequence(err error) bool {
	code := apiErrorCode(err)
	return code == jetstream.JSErrCodeStreamWrongLastSequence || code == jetstream.JSErrCodeStreamWrongLastSequenceConstant
}

// LookupCommand returns the create command of a charge while it is still in CHARGES, that
// is until a worker has handled and acknowledged it, including while it waits handed back
// for a later attempt (Msg.Later): the last message on *.<charge id>.create covers the
// command and its later copy in one read. It returns charge.ErrNotFound when there is
// none, or when chargeID could not be an id at all.
func (c *Conn) LookupCommand(ctx context.Context, chargeID string) (charge.Command, error) {
	if !validToken(chargeID) {
		return charge.Command{}, charge.ErrNotFound
	}
	token, err := commandToken(charge.CommandCreate)
	if err != nil {
		return charge.Command{}, err
	}
	return c.lastCommand(ctx, "*."+chargeID+"."+token, chargeID)
}

// LookupRefund returns the command of a refund while it is still in CHARGES, that is
// until a worker has handled and acknowledged it, including while it waits handed back
// for later (Msg.Later). The refund id alone finds it: the last message on
// *.*.refund.<refund id>, which covers charges.<charge id>.refund.<refund id> and its later
// copy charges_later.<charge id>.refund.<refund id> in one read, so that a refund moving
// from one to the other is never missed. It returns charge.ErrNotFound when there is none,
// or when refundID could not be an id at all.
func (c *Conn) LookupRefund(ctx context.Context, refundID string) (charge.Command, error) {
	if !validToken(refundID) {
		return charge.Command{}, charge.ErrNotFound
	}
	return c.lastCommand(ctx, "*.*.refund."+refundID, refundID)
}

// lastCommand returns the command last stored on subject, which may hold wildcards; what
// names it in errors.
func (c *Conn) lastCommand(ctx context.Context, subject, what string) (charge.Command, error) {
	msg, err := c.streams().charges.GetLastMsgForSubject(ctx, subject)
	if errors.Is(err, jetstream.ErrMsgNotFound) {
		return charge.Command{}, charge.ErrNotFound
	}
	if err != nil {
		return charge.Command{}, unavailable("looking up command for "+what, err)
	}
	var cmd charge.Command
	if err := json.Unmarshal(msg.Data, &cmd); err != nil {
		return charge.Command{}, fmt.Errorf("decoding command for %s (stream sequence %d): %w", what, msg.Sequence, err)
	}
	return cmd, nil
}

// roomCheckEvery is how old a reading of the size of CHARGES may be when checkRoom
// decides on it.
const roomCheckEvery = 250 * time.Millisecond

// roomReadTimeout bounds one reading of the size of CHARGES.
const roomReadTimeout = time.Second

// room is the last reading of the size of CHARGES.
type room struct {
	mu    sync.Mutex
	at    time.Time
	bytes uint64
}

// checkRoom refuses a new command (ErrNotAccepted, so its idempotency claim is released)
// while CHARGES holds ChargesMaxBytes or more, from a reading at most roomCheckEvery old
// plus what this process stored since (noteStored). The stream itself has no limit: a
// limit there would drop accepted commands or, with DiscardNew, is refused beside message
// schedules; the workers' hand-backs (Later) must never be refused either. The limit is
// overshot by the publishes in flight at once, and by what other ingests store within
// roomCheckEvery. If the size cannot be read, the publish goes ahead: it fails by itself
// if NATS is away.
func (c *Conn) checkRoom(ctx context.Context, what string) error {
	limit := c.cfg.ChargesMaxBytes
	if limit <= 0 {
		return nil
	}
	// One reading at a time, which the requests behind it share: bounded, and when it
	// fails the last reading stands until the next is due, so that a server away costs
	// the requests one short wait each period, not one each.
	c.room.mu.Lock()
	defer c.room.mu.Unlock()
	if time.Since(c.room.at) >= roomCheckEvery {
		ictx, cancel := context.WithTimeout(ctx, roomReadTimeout)
		info, err := c.streams().charges.Info(ictx)
		cancel()
		c.room.at = time.Now()
		if err != nil {
			return nil
		}
		c.room.bytes = info.State.Bytes
	}
	if c.room.bytes >= uint64(limit) {
		return unavailable(what, fmt.Errorf("%s holds %d bytes of commands not yet settled, its limit is %d",
			StreamCharges, c.room.bytes, limit), ErrNotAccepted, ErrFull)
	}
	return nil
}

// storedOverhead approximates what the stream stores for a command beyond its subject,
// message id and body: headers and the message's own record.
const storedOverhead = 64

// noteStored counts a command of about n bytes (subject, id and body) just stored into the
// last reading of the size of CHARGES, until the next reading replaces it.
func (c *Conn) noteStored(n int) {
	if c.cfg.ChargesMaxBytes <= 0 {
		return
	}
	c.room.mu.Lock()
	c.room.bytes += uint64(n + storedOverhead)
	c.room.mu.Unlock()
}

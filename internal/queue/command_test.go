package queue

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/stretchr/testify/require"

	"github.com/billing/billing/internal/charge"
)

func TestPublishCommand(t *testing.T) {
	t.Parallel()

	t.Run("PublishAndLookup", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		cmd := newCommand("acct_1")
		require.NoError(t, b.conn.PublishCommand(b.ctx, cmd))

		got, err := b.conn.LookupCommand(b.ctx, cmd.ChargeID)
		require.NoError(t, err)
		require.Equal(t, cmd.ChargeID, got.ChargeID)
		require.Equal(t, cmd.Merchant, got.Merchant)
		require.Equal(t, cmd.Type, got.Type)
		require.True(t, cmd.AcceptedAt.Equal(got.AcceptedAt))
		require.NotNil(t, got.Charge)
		require.Equal(t, int64(1000), got.Charge.Amount)
		require.Equal(t, "42", got.Charge.Metadata["order"])
	})

	t.Run("LookupMissing", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		_, err := b.conn.LookupCommand(b.ctx, charge.NewID(charge.PrefixCharge))
		require.ErrorIs(t, err, charge.ErrNotFound)
		for _, id := range []string{"", "ch_1.x", "ch_*", ">", "ch 1", "ch\t1", "a\x00b"} {
			_, err := b.conn.LookupCommand(b.ctx, id)
			require.ErrorIs(t, err, charge.ErrNotFound, "id %q", id)
		}
	})

	t.Run("DuplicateStoredOnce", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		cmd := newCommand("acct_1")
		require.NoError(t, b.conn.PublishCommand(b.ctx, cmd))
		require.NoError(t, b.conn.PublishCommand(b.ctx, cmd))
		require.Equal(t, uint64(1), streamMsgs(t, b, StreamCharges))
	})

	t.Run("Invalid", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		cmd := newCommand("acct_1")
		cmd.ChargeID = "ch.1"
		require.ErrorIs(t, b.conn.PublishCommand(b.ctx, cmd), ErrInvalid)
		cmd = newCommand("acct_1")
		cmd.Type = "charge.explode"
		require.ErrorIs(t, b.conn.PublishCommand(b.ctx, cmd), ErrInvalid)
	})

	t.Run("ServerDown", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		b.server.Shutdown()
		b.server.WaitForShutdown()
		require.Eventually(t, func() bool { return !b.conn.Ready() }, 10*time.Second, 10*time.Millisecond)

		ctx, cancel := context.WithTimeout(b.ctx, 2*time.Second)
		defer cancel()
		err := b.conn.PublishCommand(ctx, newCommand("acct_1"))
		require.ErrorIs(t, err, charge.ErrUnavailable)
		// Nothing is buffered while reconnecting, so nothing was sent.
		require.ErrorIs(t, err, ErrNotAccepted)
		require.False(t, PublishOutcomeUnknown(err))
		var natsErr interface{ APIError() *jetstream.APIError }
		require.False(t, errors.As(err, &natsErr), "no nats.go error type escapes")

		err = b.conn.PublishEvents(ctx, []charge.Event{newEvent(newCommand("acct_1").ChargeID, 1)})
		require.ErrorIs(t, err, charge.ErrUnavailable)
		_, err = b.conn.Idempotency().Create(ctx, "abcd", []byte("x"))
		require.ErrorIs(t, err, charge.ErrUnavailable)
	})

	t.Run("CancelledContext", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		ctx, cancel := context.WithCancel(b.ctx)
		cancel()
		err := b.conn.PublishCommand(ctx, newCommand("acct_1"))
		require.ErrorIs(t, err, charge.ErrUnavailable)
		require.ErrorIs(t, err, ErrNotAccepted)
		require.ErrorIs(t, err, context.Canceled)
	})
}

func TestPublishErrorClassification(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		err     error
		unknown bool
	}{
		{jetstream.ErrNoStreamResponse, false},
		{nats.ErrNoResponders, false},
		{nats.ErrReconnectBufExceeded, false},
		{&jetstream.APIError{Code: 503, ErrorCode: 10077, Description: "maximum messages exceeded"}, false},
		{context.DeadlineExceeded, true},
		{context.Canceled, true},
		{nats.ErrConnectionClosed, true},
		{nats.ErrDisconnected, true},
		{jetstream.ErrInvalidJSAck, true},
		{errors.New("something else"), true},
	} {
		err := publishError("publishing", tc.err)
		require.ErrorIs(t, err, charge.ErrUnavailable, "%v", tc.err)
		require.Equal(t, tc.unknown, PublishOutcomeUnknown(err), "%v", tc.err)
		require.Equal(t, !tc.unknown, errors.Is(err, ErrNotAccepted), "%v", tc.err)
		require.Contains(t, err.Error(), tc.err.Error())
	}
}

// newRefundCommand returns a refund command of chargeID.
func newRefundCommand(merchant, chargeID string, amount int64) charge.Command {
	now := time.Now().UTC().Truncate(time.Millisecond)
	return charge.Command{
		Type:       charge.CommandRefund,
		Merchant:   merchant,
		ChargeID:   chargeID,
		AcceptedAt: now,
		Refund: &charge.Refund{
			ID: charge.NewID(charge.PrefixRefund), Charge: chargeID, Amount: amount, Currency: "usd",
			Status: charge.RefundPending, CreatedAt: now, UpdatedAt: now,
		},
	}
}

// Every command type has its own subject under its charge, and a message id under which a
// republish is dropped: capture and cancel by charge, refunds by refund.
func TestCommandSubjects(t *testing.T) {
	t.Parallel()
	b := setup(t)
	create := newCommand("acct_1")
	id := create.ChargeID
	// A capture and a cancel each on a charge of its own: one operation at a time per
	// charge, and none while its create command is stored (TestOperationLock).
	capture := operation(charge.CommandCapture, charge.NewID(charge.PrefixCharge), 600)
	cancel := operation(charge.CommandCancel, charge.NewID(charge.PrefixCharge), 0)
	refund := newRefundCommand("acct_1", id, 300)
	for _, tc := range []struct {
		cmd            charge.Command
		subject, msgID string
	}{
		{create, "charges." + id + ".create", id + ":create"},
		{capture, "charges." + capture.ChargeID + ".op.capture", capture.ChargeID + ":capture:" + capture.ID},
		{cancel, "charges." + cancel.ChargeID + ".op.cancel", cancel.ChargeID + ":cancel:" + cancel.ID},
		{refund, "charges." + id + ".refund." + refund.Refund.ID, refund.Refund.ID},
	} {
		t.Run(string(tc.cmd.Type), func(t *testing.T) {
			require.NoError(t, b.conn.PublishCommand(b.ctx, tc.cmd))
			require.NoError(t, b.conn.PublishCommand(b.ctx, tc.cmd), "a republish is no error")
			msg, err := b.conn.streams().charges.GetLastMsgForSubject(b.ctx, tc.subject)
			require.NoError(t, err)
			require.Equal(t, tc.subject, msg.Subject)
			require.Equal(t, tc.msgID, msg.Header.Get(jetstream.MsgIDHeader))
		})
	}
	require.Equal(t, uint64(4), streamMsgs(t, b, StreamCharges), "each republish was dropped")

	// A second refund is a command of its own.
	require.NoError(t, b.conn.PublishCommand(b.ctx, newRefundCommand("acct_1", id, 100)))
	require.Equal(t, uint64(5), streamMsgs(t, b, StreamCharges))
}

// operation returns a capture or cancel command of merchant acct_1 with an operation id.
func operation(typ charge.CommandType, chargeID string, amount int64) charge.Command {
	return charge.Command{ID: charge.NewID(charge.PrefixOperation), Type: typ, Merchant: "acct_1", ChargeID: chargeID,
		AcceptedAt: time.Now().UTC().Truncate(time.Millisecond), Amount: amount}
}

// One capture or cancel of a charge is stored at a time: another is refused with
// charge.ErrOperationInProgress until the first is acknowledged, while it waits handed
// back for later too; a republish of the stored one is no error and stores nothing;
// refunds and the create command are not held back.
func TestOperationLock(t *testing.T) {
	t.Parallel()
	b := setup(t)
	cons, err := b.conn.CommandConsumer(b.ctx, ConsumerConfig{})
	require.NoError(t, err)
	id := charge.NewID(charge.PrefixCharge)
	capture := operation(charge.CommandCapture, id, 600)
	require.NoError(t, b.conn.PublishCommand(b.ctx, capture))

	require.ErrorIs(t, b.conn.PublishCommand(b.ctx, operation(charge.CommandCancel, id, 0)), charge.ErrOperationInProgress)
	other := operation(charge.CommandCapture, id, 600)
	err = b.conn.PublishCommand(b.ctx, other)
	require.ErrorIs(t, err, charge.ErrOperationInProgress, "a second capture is another operation, not a republish")
	require.False(t, PublishOutcomeUnknown(err), "certainly not stored: the key is released")
	require.NoError(t, b.conn.PublishCommand(b.ctx, capture), "a republish of the stored one")
	require.NoError(t, b.conn.PublishCommand(b.ctx, newRefundCommand("acct_1", id, 100)), "refunds are not held back")
	require.Equal(t, uint64(2), streamMsgs(t, b, StreamCharges))

	// Handed back for later, the capture still holds the lock; its republish is still
	// itself.
	var held *Msg
	for _, m := range []*Msg{fetchOne(t, b, cons, 5*time.Second), fetchOne(t, b, cons, 5*time.Second)} {
		if m.Subject() == operationSubject(id, "capture") {
			held = m
		} else {
			require.NoError(t, m.Ack(b.ctx))
		}
	}
	require.NotNil(t, held)
	require.NoError(t, held.Later(b.ctx, 500*time.Millisecond, 1))
	require.ErrorIs(t, b.conn.PublishCommand(b.ctx, operation(charge.CommandCancel, id, 0)), charge.ErrOperationInProgress)
	require.NoError(t, b.conn.PublishCommand(b.ctx, capture))

	// Acknowledged once it comes back, it releases the lock.
	back := fetchOne(t, b, cons, 10*time.Second)
	require.Equal(t, held.Subject(), back.Subject())
	require.NoError(t, back.Ack(b.ctx))
	require.Eventually(t, func() bool { return streamMsgs(t, b, StreamCharges) == 0 }, 5*time.Second, 10*time.Millisecond)
	require.NoError(t, b.conn.PublishCommand(b.ctx, operation(charge.CommandCancel, id, 0)))

	// The charge's create command is not in the lock: once the store shows the charge
	// decided, an operation is taken even if the create's acknowledgement is still on its
	// way (the ingest refuses one on a charge it reads pending).
	create := newCommand("acct_1")
	require.NoError(t, b.conn.PublishCommand(b.ctx, create))
	require.NoError(t, b.conn.PublishCommand(b.ctx, operation(charge.CommandCapture, create.ChargeID, 0)))
}

func TestInvalidCommandAddress(t *testing.T) {
	t.Parallel()
	b := setup(t)
	id := charge.NewID(charge.PrefixCharge)
	for name, cmd := range map[string]charge.Command{
		"capture of no charge":     {Type: charge.CommandCapture, Merchant: "acct_1", ChargeID: ""},
		"cancel of a dotted id":    {Type: charge.CommandCancel, Merchant: "acct_1", ChargeID: "ch.1"},
		"refund without refund":    {Type: charge.CommandRefund, Merchant: "acct_1", ChargeID: id},
		"refund with a wildcard":   {Type: charge.CommandRefund, Merchant: "acct_1", ChargeID: id, Refund: &charge.Refund{ID: "re_*", Amount: 1}},
		"refund with a dotted id":  {Type: charge.CommandRefund, Merchant: "acct_1", ChargeID: id, Refund: &charge.Refund{ID: "re_1.x", Amount: 1}},
		"refund with an empty id":  {Type: charge.CommandRefund, Merchant: "acct_1", ChargeID: id, Refund: &charge.Refund{Amount: 1}},
		"refund of a wildcard id":  {Type: charge.CommandRefund, Merchant: "acct_1", ChargeID: ">", Refund: &charge.Refund{ID: "re_1", Amount: 1}},
		"unknown type with refund": {Type: "refund.explode", Merchant: "acct_1", ChargeID: id, Refund: &charge.Refund{ID: "re_1", Amount: 1}},
	} {
		require.ErrorIs(t, b.conn.PublishCommand(b.ctx, cmd), ErrInvalid, name)
	}
	require.Equal(t, uint64(0), streamMsgs(t, b, StreamCharges))
}

func TestLookupRefund(t *testing.T) {
	t.Parallel()

	t.Run("FoundByRefundIDAlone", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		first := newRefundCommand("acct_1", charge.NewID(charge.PrefixCharge), 300)
		second := newRefundCommand("acct_1", first.ChargeID, 200)
		other := newRefundCommand("acct_2", charge.NewID(charge.PrefixCharge), 100)
		for _, cmd := range []charge.Command{first, second, other} {
			require.NoError(t, b.conn.PublishCommand(b.ctx, cmd))
		}
		// The create and capture of the same charge are not refunds.
		create := newCommand("acct_1")
		create.ChargeID = first.ChargeID
		require.NoError(t, b.conn.PublishCommand(b.ctx, create))

		for _, want := range []charge.Command{first, second, other} {
			got, err := b.conn.LookupRefund(b.ctx, want.Refund.ID)
			require.NoError(t, err)
			require.Equal(t, charge.CommandRefund, got.Type)
			require.Equal(t, want.Merchant, got.Merchant)
			require.Equal(t, want.ChargeID, got.ChargeID)
			require.NotNil(t, got.Refund)
			require.Equal(t, want.Refund.ID, got.Refund.ID)
			require.Equal(t, want.Refund.Amount, got.Refund.Amount)
			require.True(t, want.Refund.CreatedAt.Equal(got.Refund.CreatedAt))
		}
	})

	t.Run("RepublishStoredOnce", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		cmd := newRefundCommand("acct_1", charge.NewID(charge.PrefixCharge), 300)
		require.NoError(t, b.conn.PublishCommand(b.ctx, cmd))
		// The same refund again, as a takeover of a stalled idempotency claim does.
		require.NoError(t, b.conn.PublishCommand(b.ctx, cmd))
		require.Equal(t, uint64(1), streamMsgs(t, b, StreamCharges))
		got, err := b.conn.LookupRefund(b.ctx, cmd.Refund.ID)
		require.NoError(t, err)
		require.Equal(t, cmd.Refund.ID, got.Refund.ID)
	})

	t.Run("Missing", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		cmd := newRefundCommand("acct_1", charge.NewID(charge.PrefixCharge), 300)
		require.NoError(t, b.conn.PublishCommand(b.ctx, cmd))
		_, err := b.conn.LookupRefund(b.ctx, charge.NewID(charge.PrefixRefund))
		require.ErrorIs(t, err, charge.ErrNotFound)
		// Neither a charge id nor anything that is not one token finds a refund.
		for _, id := range []string{cmd.ChargeID, "", "*", ">", "re_1.x", "re_*", "re 1", "a\x00b"} {
			_, err := b.conn.LookupRefund(b.ctx, id)
			require.ErrorIs(t, err, charge.ErrNotFound, "id %q", id)
		}
	})

	t.Run("GoneOnceAcked", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		cmd := newRefundCommand("acct_1", charge.NewID(charge.PrefixCharge), 300)
		require.NoError(t, b.conn.PublishCommand(b.ctx, cmd))
		cons, err := b.conn.CommandConsumer(b.ctx, ConsumerConfig{})
		require.NoError(t, err)
		msgs, err := cons.Fetch(b.ctx, 1, time.Second)
		require.NoError(t, err)
		require.Len(t, msgs, 1)
		require.NoError(t, msgs[0].Ack(b.ctx))
		require.Eventually(t, func() bool {
			_, err := b.conn.LookupRefund(b.ctx, cmd.Refund.ID)
			return errors.Is(err, charge.ErrNotFound)
		}, 5*time.Second, 10*time.Millisecond)
	})
}

// With ChargesMaxBytes set, new commands are refused once CHARGES holds that much (not
// accepted: the claim may be released), nothing stored is dropped, and acceptance
// resumes once the stream is drained.
func TestPublishCommandStreamFull(t *testing.T) {
	t.Parallel()
	b := setup(t)
	const limit = 8 << 10
	conn, err := Connect(b.ctx, Config{URL: b.url, Name: t.Name(), ChargesMaxBytes: limit}, nil)
	require.NoError(t, err)
	t.Cleanup(conn.Close)

	stored := 0
	for {
		err := conn.PublishCommand(b.ctx, newCommand("acct_1"))
		if err != nil {
			require.ErrorIs(t, err, ErrFull)
			require.ErrorIs(t, err, ErrNotAccepted)
			require.ErrorIs(t, err, charge.ErrUnavailable)
			require.False(t, PublishOutcomeUnknown(err))
			break
		}
		stored++
		require.Less(t, stored, 1000, "never refused")
	}
	require.Equal(t, uint64(stored), streamMsgs(t, b, StreamCharges), "nothing stored was dropped")
	s, err := b.conn.js.Stream(b.ctx, StreamCharges)
	require.NoError(t, err)
	info, err := s.Info(b.ctx)
	require.NoError(t, err)
	require.GreaterOrEqual(t, info.State.Bytes, uint64(limit), "refused before the stream was full")

	// Drained, it takes commands again once a new reading shows room.
	require.NoError(t, s.Purge(b.ctx))
	require.Eventually(t, func() bool { return conn.PublishCommand(b.ctx, newCommand("acct_1")) == nil },
		5*time.Second, 50*time.Millisecond, "still refused once drained")
}

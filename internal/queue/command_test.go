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

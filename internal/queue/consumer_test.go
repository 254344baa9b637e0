package queue

import (
	"context"
	"encoding/json"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/billing/billing/internal/charge"
)

func TestConsumer(t *testing.T) {
	t.Parallel()

	// consumerSetup returns a bundle with a consumer and n published commands.
	consumerSetup := func(t *testing.T, n int) (*testBundle, *Consumer, []charge.Command) {
		t.Helper()
		b := setup(t)
		cons, err := b.conn.CommandConsumer(b.ctx, ConsumerConfig{})
		require.NoError(t, err)
		cmds := make([]charge.Command, n)
		for i := range cmds {
			cmds[i] = newCommand("acct_1")
			require.NoError(t, b.conn.PublishCommand(b.ctx, cmds[i]))
		}
		return b, cons, cmds
	}

	t.Run("FetchAckRemoves", func(t *testing.T) {
		t.Parallel()
		b, cons, cmds := consumerSetup(t, 3)

		pending, err := cons.Pending(b.ctx)
		require.NoError(t, err)
		require.Equal(t, uint64(3), pending)

		// One Fetch returns what the consumer has taken in so far, which need not be all
		// that was just published (the server counts new messages in asynchronously).
		var msgs []*Msg
		for len(msgs) < 3 {
			got, err := cons.Fetch(b.ctx, 10, time.Second)
			require.NoError(t, err)
			require.NotEmpty(t, got, "all three published were delivered")
			msgs = append(msgs, got...)
		}
		require.Len(t, msgs, 3)
		for i, m := range msgs {
			require.Equal(t, "charges."+cmds[i].ChargeID+".create", m.Subject())
			require.Equal(t, uint64(1), m.NumDelivered())
			var got charge.Command
			require.NoError(t, json.Unmarshal(m.Data(), &got))
			require.Equal(t, cmds[i].ChargeID, got.ChargeID)
			require.NoError(t, m.InProgress())
			require.NoError(t, m.Ack(b.ctx))
		}
		require.Equal(t, uint64(0), streamMsgs(t, b, StreamCharges))
		pending, err = cons.Pending(b.ctx)
		require.NoError(t, err)
		require.Equal(t, uint64(0), pending)

		// Gone from the stream, so no longer found by lookup.
		_, err = b.conn.LookupCommand(b.ctx, cmds[0].ChargeID)
		require.ErrorIs(t, err, charge.ErrNotFound)
	})

	t.Run("FetchEmpty", func(t *testing.T) {
		t.Parallel()
		b, cons, _ := consumerSetup(t, 0)
		start := time.Now()
		msgs, err := cons.Fetch(b.ctx, 10, 200*time.Millisecond)
		require.NoError(t, err)
		require.NotNil(t, msgs)
		require.Empty(t, msgs)
		require.Less(t, time.Since(start), 2*time.Second)
	})

	t.Run("FetchCancelled", func(t *testing.T) {
		t.Parallel()
		b, cons, _ := consumerSetup(t, 0)
		ctx, cancel := context.WithCancel(b.ctx)
		timer := time.AfterFunc(100*time.Millisecond, cancel)
		defer timer.Stop()
		start := time.Now()
		_, err := cons.Fetch(ctx, 10, 10*time.Second)
		require.ErrorIs(t, err, context.Canceled)
		require.Less(t, time.Since(start), 5*time.Second)

		_, err = cons.Fetch(ctx, 10, time.Second)
		require.ErrorIs(t, err, context.Canceled)

		// A deadline shorter than wait ends the fetch a little before it, with no error.
		ctx, cancel = context.WithTimeout(b.ctx, 200*time.Millisecond)
		defer cancel()
		msgs, err := cons.Fetch(ctx, 10, 10*time.Second)
		require.NoError(t, err)
		require.Empty(t, msgs)
	})

	t.Run("AvailableAtOnce", func(t *testing.T) {
		t.Parallel()
		b, cons, _ := consumerSetup(t, 3)
		// Fewer commands than asked for are there: they come at once, not after the wait.
		start := time.Now()
		msgs, err := cons.Fetch(b.ctx, 10, 10*time.Second)
		require.NoError(t, err)
		require.Len(t, msgs, 3)
		require.Less(t, time.Since(start), 2*time.Second)
		for _, m := range msgs {
			require.Equal(t, uint64(1), m.NumDelivered())
			require.NoError(t, m.Ack(b.ctx))
		}
	})

	t.Run("NakWithDelayRedelivers", func(t *testing.T) {
		t.Parallel()
		b, cons, cmds := consumerSetup(t, 1)
		msgs, err := cons.Fetch(b.ctx, 1, time.Second)
		require.NoError(t, err)
		require.Len(t, msgs, 1)
		require.NoError(t, msgs[0].NakWithDelay(100*time.Millisecond))

		msgs, err = cons.Fetch(b.ctx, 1, 5*time.Second)
		require.NoError(t, err)
		require.Len(t, msgs, 1)
		require.Equal(t, "charges."+cmds[0].ChargeID+".create", msgs[0].Subject())
		require.Equal(t, uint64(2), msgs[0].NumDelivered())
		require.NoError(t, msgs[0].Term())

		msgs, err = cons.Fetch(b.ctx, 1, 200*time.Millisecond)
		require.NoError(t, err)
		require.Empty(t, msgs)
	})

	t.Run("SharedDurable", func(t *testing.T) {
		t.Parallel()
		b, consA, cmds := consumerSetup(t, 10)
		other := connect(t, b)
		consB, err := other.CommandConsumer(b.ctx, ConsumerConfig{})
		require.NoError(t, err)

		seen := map[string]int{}
		for _, cons := range []*Consumer{consA, consB} {
			msgs, err := cons.Fetch(b.ctx, 5, time.Second)
			require.NoError(t, err)
			require.Len(t, msgs, 5)
			for _, m := range msgs {
				seen[m.Subject()]++
				require.NoError(t, m.Ack(b.ctx))
			}
		}
		require.Len(t, seen, 10)
		for _, cmd := range cmds {
			require.Equal(t, 1, seen["charges."+cmd.ChargeID+".create"])
		}
	})

	t.Run("InvalidArguments", func(t *testing.T) {
		t.Parallel()
		b, cons, _ := consumerSetup(t, 0)
		_, err := cons.Fetch(b.ctx, 0, time.Second)
		require.ErrorIs(t, err, ErrInvalid)
		_, err = cons.Fetch(b.ctx, 1, 0)
		require.ErrorIs(t, err, ErrInvalid)
		_, err = b.conn.CommandConsumer(b.ctx, ConsumerConfig{Durable: "a.b"})
		require.ErrorIs(t, err, ErrInvalid)
	})
}

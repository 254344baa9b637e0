package queue

import (
	"testing"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/stretchr/testify/require"

	"github.com/billing/billing/internal/charge"
)

// Settled commands leave the work queue: the last sequence minus what is held counts them.
func TestCommandCounts(t *testing.T) {
	t.Parallel()
	b := setup(t)

	last, held, err := b.conn.CommandCounts(b.ctx)
	require.NoError(t, err)
	require.Zero(t, last)
	require.Zero(t, held)

	for range 3 {
		require.NoError(t, b.conn.PublishCommand(b.ctx, newCommand("acct_1")))
	}
	last, held, err = b.conn.CommandCounts(b.ctx)
	require.NoError(t, err)
	require.Equal(t, [2]uint64{3, 3}, [2]uint64{last, held})

	// A worker settles two.
	cons, err := b.conn.js.CreateOrUpdateConsumer(b.ctx, StreamCharges, jetstream.ConsumerConfig{
		Durable: "test", AckPolicy: jetstream.AckExplicitPolicy, FilterSubject: subjectCharges + ".>",
	})
	require.NoError(t, err)
	batch, err := cons.FetchNoWait(2)
	require.NoError(t, err)
	n := 0
	for m := range batch.Messages() {
		require.NoError(t, m.DoubleAck(b.ctx))
		n++
	}
	require.NoError(t, batch.Error())
	require.Equal(t, 2, n)
	last, held, err = b.conn.CommandCounts(b.ctx)
	require.NoError(t, err)
	require.Equal(t, [2]uint64{3, 1}, [2]uint64{last, held}, "2 settled")
}

func TestReports(t *testing.T) {
	t.Parallel()
	b := setup(t)

	_, err := b.conn.Report(b.ctx, ReportReconciliation)
	require.ErrorIs(t, err, charge.ErrNotFound)
	require.NoError(t, b.conn.SaveReport(b.ctx, ReportReconciliation, []byte("first")))
	require.NoError(t, b.conn.SaveReport(b.ctx, ReportReconciliation, []byte("second")))
	got, err := b.conn.Report(b.ctx, ReportReconciliation)
	require.NoError(t, err)
	require.Equal(t, "second", string(got))

	// Another connection (another process) reads it.
	got, err = connect(t, b).Report(b.ctx, ReportReconciliation)
	require.NoError(t, err)
	require.Equal(t, "second", string(got))

	require.ErrorIs(t, b.conn.SaveReport(b.ctx, "a.b", nil), ErrInvalid)
	_, err = b.conn.Report(b.ctx, "a.b")
	require.ErrorIs(t, err, charge.ErrNotFound)
}

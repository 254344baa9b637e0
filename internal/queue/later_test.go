package queue

import (
	"context"
	"encoding/json"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/stretchr/testify/require"

	"github.com/billing/billing/internal/charge"
	"github.com/billing/billing/internal/natstest"
	"github.com/billing/billing/internal/webhook"
)

// ackPending returns how many of the consumer's messages are delivered and not yet
// acknowledged: those that count against its MaxAckPending.
func ackPending(t *testing.T, b *testBundle, k *Consumer) int {
	t.Helper()
	info, err := k.c.Info(b.ctx)
	require.NoError(t, err)
	return info.NumAckPending
}

// fetchOne fetches until one message arrives, failing the test after within.
func fetchOne(t *testing.T, b *testBundle, k *Consumer, within time.Duration) *Msg {
	t.Helper()
	deadline := time.Now().Add(within)
	for time.Now().Before(deadline) {
		msgs, err := k.Fetch(b.ctx, 1, 200*time.Millisecond)
		require.NoError(t, err)
		if len(msgs) == 1 {
			return msgs[0]
		}
	}
	t.Fatalf("no message within %s", within)
	return nil
}

// A command handed back for later holds no place among the consumer's unacknowledged
// messages while it waits, is still found by its refund id, and comes back after the
// delay as a new message on its own subject.
func TestLaterCommand(t *testing.T) {
	t.Parallel()
	b := setup(t)
	cons, err := b.conn.CommandConsumer(b.ctx, ConsumerConfig{})
	require.NoError(t, err)
	cmd := newRefundCommand("acct_1", charge.NewID(charge.PrefixCharge), 100)
	require.NoError(t, b.conn.PublishCommand(b.ctx, cmd))

	// A delayed nak, for comparison.
	m := fetchOne(t, b, cons, 5*time.Second)
	require.NoError(t, m.NakWithDelay(time.Hour))
	require.Equal(t, 1, ackPending(t, b, cons), "a delayed nak holds its place")

	cmd2 := newRefundCommand("acct_1", cmd.ChargeID, 200)
	require.NoError(t, b.conn.PublishCommand(b.ctx, cmd2))
	m2 := fetchOne(t, b, cons, 5*time.Second)
	require.Equal(t, refundSubject(cmd2.ChargeID, cmd2.Refund.ID), m2.Subject())

	handedBack := time.Now()
	require.NoError(t, m2.Later(b.ctx, 1500*time.Millisecond, 3))
	require.Equal(t, 1, ackPending(t, b, cons), "Later holds no place: only the nak'd one does")
	got, err := b.conn.LookupRefund(b.ctx, cmd2.Refund.ID)
	require.NoError(t, err, "a refund waiting for later is still found by its id")
	require.Equal(t, cmd2.Refund.ID, got.Refund.ID)
	pending, err := cons.Pending(b.ctx)
	require.NoError(t, err)
	require.Equal(t, uint64(2), pending, "waiting for later is still work to do")

	back := fetchOne(t, b, cons, 10*time.Second)
	require.GreaterOrEqual(t, time.Since(handedBack), 1400*time.Millisecond, "not before its time")
	require.Equal(t, m2.Subject(), back.Subject())
	require.Equal(t, uint64(2), back.NumDelivered(), "delivered once before it was handed back")
	require.Equal(t, uint64(3), back.Attempt(), "the attempt Later gave")
	require.Equal(t, m2.ID(), back.ID(), "the copy is the same message")
	require.Equal(t, m2.Subject(), back.ID(), "a command is named by its subject")
	require.JSONEq(t, string(m2.Data()), string(back.Data()))
	require.NoError(t, back.Ack(b.ctx))
	_, err = b.conn.LookupRefund(b.ctx, cmd2.Refund.ID)
	require.ErrorIs(t, err, charge.ErrNotFound, "the schedule is gone once it fired")
}

// A create command handed back for a later attempt is still found by its charge id (the
// ingest serves an undecided charge from it), and counts as waiting, not as lag.
func TestLaterCreateIsStillFound(t *testing.T) {
	t.Parallel()
	b := setup(t)
	cons, err := b.conn.CommandConsumer(b.ctx, ConsumerConfig{})
	require.NoError(t, err)
	cmd := newCommand("acct_1")
	require.NoError(t, b.conn.PublishCommand(b.ctx, cmd))
	require.NoError(t, fetchOne(t, b, cons, 5*time.Second).Later(b.ctx, time.Hour, 1))
	got, err := b.conn.LookupCommand(b.ctx, cmd.ChargeID)
	require.NoError(t, err)
	require.Equal(t, cmd.ChargeID, got.ChargeID)
	require.Zero(t, ackPending(t, b, cons))
	lag, err := cons.Lag(b.ctx)
	require.NoError(t, err)
	require.Zero(t, lag, "waiting is not lag")
	waiting, err := cons.Waiting(b.ctx)
	require.NoError(t, err)
	require.Equal(t, uint64(1), waiting)
}

// Tasks of one endpoint share a subject: each handed back for later comes back, none
// replaces another.
func TestLaterTasks(t *testing.T) {
	t.Parallel()
	b := setup(t)
	cons, err := b.conn.TaskConsumer(b.ctx, ConsumerConfig{})
	require.NoError(t, err)
	tasks := []webhook.Task{
		{Endpoint: "we_1", Event: "evt_1", Key: "evt_1:we_1"},
		{Endpoint: "we_1", Event: "evt_2", Key: "evt_2:we_1"},
	}
	require.NoError(t, b.conn.PublishTasks(b.ctx, tasks))
	for range tasks {
		require.NoError(t, fetchOne(t, b, cons, 5*time.Second).Later(b.ctx, time.Second, 1))
	}
	require.Zero(t, ackPending(t, b, cons))
	keys := map[string]bool{}
	for range tasks {
		m := fetchOne(t, b, cons, 10*time.Second)
		keys[string(m.Data())] = true
		require.NoError(t, m.Ack(b.ctx))
	}
	require.Len(t, keys, 2)
	require.Equal(t, uint64(0), streamMsgs(t, b, StreamWebhooks))
}

// The parked tasks of an endpoint are released at once, each once, with their delivery
// count and attempt, and their schedules gone; another endpoint's stay parked.
func TestReleaseTasks(t *testing.T) {
	t.Parallel()
	b := setup(t)
	cons, err := b.conn.TaskConsumer(b.ctx, ConsumerConfig{})
	require.NoError(t, err)
	tasks := []webhook.Task{
		{Endpoint: "we_1", Event: "evt_1", Key: "evt_1:we_1"},
		{Endpoint: "we_1", Event: "evt_2", Key: "evt_2:we_1"},
		{Endpoint: "we_2", Event: "evt_1", Key: "evt_1:we_2"},
	}
	require.NoError(t, b.conn.PublishTasks(b.ctx, tasks))
	ids := map[string]string{}
	for range tasks {
		m := fetchOne(t, b, cons, 5*time.Second)
		ids[string(m.Data())] = m.ID()
		require.NoError(t, m.Later(b.ctx, time.Hour, 4))
	}
	n, err := b.conn.ReleaseTasks(b.ctx, "we_1")
	require.NoError(t, err)
	require.Equal(t, 2, n)
	for range 2 {
		m := fetchOne(t, b, cons, 5*time.Second)
		require.Contains(t, m.Subject(), "we_1")
		require.Equal(t, uint64(2), m.NumDelivered(), "the delivery count goes on")
		require.Equal(t, uint64(4), m.Attempt())
		require.Equal(t, ids[string(m.Data())], m.ID(), "the same task")
		require.NoError(t, m.Ack(b.ctx))
	}
	require.Equal(t, uint64(1), streamMsgs(t, b, StreamWebhooks), "we_2's task stays parked; we_1's schedules are gone")
	n, err = b.conn.ReleaseTasks(b.ctx, "we_1")
	require.NoError(t, err)
	require.Zero(t, n, "nothing left to release")
}

// Streams and consumers created by a version without Later are updated in place: the
// later subjects and schedules added, the consumer narrowed to the commands, what was
// queued before still delivered.
func TestStreamsUpgradeInPlace(t *testing.T) {
	t.Parallel()
	s := natstest.Start(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	nc, err := nats.Connect(s.ClientURL())
	require.NoError(t, err)
	defer nc.Close()
	js, err := jetstream.New(nc)
	require.NoError(t, err)
	_, err = js.CreateStream(ctx, jetstream.StreamConfig{Name: StreamCharges, Subjects: []string{subjectCharges + ".>"}, Retention: jetstream.WorkQueuePolicy})
	require.NoError(t, err)
	_, err = js.CreateConsumer(ctx, StreamCharges, jetstream.ConsumerConfig{Durable: CommandConsumerName, AckPolicy: jetstream.AckExplicitPolicy})
	require.NoError(t, err)
	cmd := newCommand("acct_1")
	data, err := json.Marshal(cmd)
	require.NoError(t, err)
	_, err = js.Publish(ctx, "charges."+cmd.ChargeID+".create", data)
	require.NoError(t, err)

	b := &testBundle{ctx: ctx, server: s, url: s.ClientURL()}
	b.conn = connect(t, b) // EnsureStreams
	cons, err := b.conn.CommandConsumer(ctx, ConsumerConfig{})
	require.NoError(t, err)
	m := fetchOne(t, b, cons, 5*time.Second)
	require.Equal(t, "charges."+cmd.ChargeID+".create", m.Subject())
	require.NoError(t, m.Later(ctx, 100*time.Millisecond, 1))
	require.NoError(t, fetchOne(t, b, cons, 10*time.Second).Ack(ctx))
}

// A server that ignores allow_msg_schedules (older than 2.12) is refused at start rather
// than left to store copies that nothing would ever republish.
func TestSchedulesRequired(t *testing.T) {
	t.Parallel()
	require.ErrorContains(t, schedulesOn(&jetstream.StreamInfo{Config: jetstream.StreamConfig{Name: StreamCharges}}), "2.12")
	require.Error(t, schedulesOn(nil))
	require.NoError(t, schedulesOn(&jetstream.StreamInfo{Config: jetstream.StreamConfig{Name: StreamCharges, AllowMsgSchedules: true}}))
}

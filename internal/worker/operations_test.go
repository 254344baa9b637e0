package worker_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/stretchr/testify/require"

	"github.com/billing/billing/internal/charge"
	"github.com/billing/billing/internal/processor"
	"github.com/billing/billing/internal/queue"
	"github.com/billing/billing/internal/reconcile"
	"github.com/billing/billing/internal/service"
	"github.com/billing/billing/internal/worker"
)

// handle runs cmd through the worker as delivery number n and returns the delivery.
func (b *bundle) handle(t *testing.T, cmd charge.Command, n uint64) *msg {
	t.Helper()
	data, err := json.Marshal(cmd)
	require.NoError(t, err)
	m := &msg{data: data, delivered: n}
	b.worker.Handle(context.Background(), []worker.Message{m})
	return m
}

// settled creates and settles a charge of amount with the given capture flag.
func (b *bundle) settled(t *testing.T, amount int64, capture bool) charge.Charge {
	t.Helper()
	cmd, _ := command(t, "pm_card_visa", capture)
	cmd.Charge.Amount = amount
	require.True(t, b.handle(t, cmd, 1).acked.Load())
	return b.charge(t, cmd.ChargeID)
}

func capture(id string, amount int64) charge.Command {
	return charge.Command{Type: charge.CommandCapture, Merchant: "merchant_w", ChargeID: id, AcceptedAt: time.Now(), Amount: amount}
}

func cancel(id string) charge.Command {
	return charge.Command{Type: charge.CommandCancel, Merchant: "merchant_w", ChargeID: id, AcceptedAt: time.Now()}
}

func refund(c charge.Charge, amount int64) charge.Command {
	at := time.Now().UTC().Truncate(time.Millisecond)
	r := charge.Refund{ID: charge.NewID(charge.PrefixRefund), Merchant: c.Merchant, Charge: c.ID, Amount: amount,
		Currency: c.Currency, Status: charge.RefundPending, CreatedAt: at, UpdatedAt: at}
	return charge.Command{Type: charge.CommandRefund, Merchant: c.Merchant, ChargeID: c.ID, AcceptedAt: at, Refund: &r}
}

// reconciled requires the reconciliation to find nothing, the processor asked again.
func (b *bundle) reconciled(t *testing.T) reconcile.Report {
	t.Helper()
	rep, err := reconcile.Run(context.Background(), b.store, b.proc, 4)
	require.NoError(t, err)
	require.Empty(t, rep.Findings, rep.Summary())
	return rep
}

func (b *bundle) balance(t *testing.T) charge.Balance {
	t.Helper()
	bal, err := b.store.Balance(context.Background(), "merchant_w")
	require.NoError(t, err)
	return bal
}

func eventTypes(es []charge.Event) []string {
	out := make([]string, len(es))
	for i, e := range es {
		out[len(es)-1-i] = fmt.Sprintf("%d:%s", e.Sequence, e.Type) // listed newest first
	}
	return out
}

// Each capture and cancel allowed from requires_capture, and each refused elsewhere: the
// charge, its events, the processor calls and the balance after each, and a redelivery of
// the command changes nothing.
func TestCaptureAndCancel(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name      string
		capture   bool // the charge's own capture flag
		commands  func(id string) []charge.Command
		status    charge.Status
		captured  int64
		events    []string
		available int64
		pending   int64
		calls     map[string]int // processor calls by key suffix
	}{
		{"full capture", false, func(id string) []charge.Command { return []charge.Command{capture(id, 0)} },
			charge.StatusSucceeded, 1000, []string{"1:charge.authorized", "2:charge.captured"}, 1000, 0, map[string]int{":capture": 1}},
		{"partial capture", false, func(id string) []charge.Command { return []charge.Command{capture(id, 400)} },
			charge.StatusSucceeded, 400, []string{"1:charge.authorized", "2:charge.captured"}, 400, 0, map[string]int{":capture": 1}},
		{"cancel", false, func(id string) []charge.Command { return []charge.Command{cancel(id)} },
			charge.StatusCanceled, 0, []string{"1:charge.authorized", "2:charge.canceled"}, 0, 0, map[string]int{":void": 1}},
		{"capture after cancel is refused", false, func(id string) []charge.Command { return []charge.Command{cancel(id), capture(id, 0)} },
			charge.StatusCanceled, 0, []string{"1:charge.authorized", "2:charge.canceled"}, 0, 0, map[string]int{":void": 1, ":capture": 0}},
		{"cancel after capture is refused", false, func(id string) []charge.Command { return []charge.Command{capture(id, 0), cancel(id)} },
			charge.StatusSucceeded, 1000, []string{"1:charge.authorized", "2:charge.captured"}, 1000, 0, map[string]int{":void": 0, ":capture": 1}},
		{"capture of a captured charge is refused", true, func(id string) []charge.Command { return []charge.Command{capture(id, 0)} },
			charge.StatusSucceeded, 1000, []string{"1:charge.succeeded"}, 1000, 0, map[string]int{":capture": 0}},
		{"cancel of a captured charge is refused", true, func(id string) []charge.Command { return []charge.Command{cancel(id)} },
			charge.StatusSucceeded, 1000, []string{"1:charge.succeeded"}, 1000, 0, map[string]int{":void": 0}},
		{"nothing yet: the authorization is pending", false, func(string) []charge.Command { return nil },
			charge.StatusRequiresCapture, 0, []string{"1:charge.authorized"}, 0, 1000, nil},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			b := setup(t)
			c := b.settled(t, 1000, tc.capture)
			for _, cmd := range tc.commands(c.ID) {
				require.True(t, b.handle(t, cmd, 1).acked.Load())
				require.True(t, b.handle(t, cmd, 2).acked.Load(), "a redelivery is acknowledged")
			}
			got := b.charge(t, c.ID)
			require.Equal(t, tc.status, got.Status)
			require.Equal(t, tc.captured, got.AmountCaptured)
			require.Nil(t, got.Operation)
			require.Equal(t, tc.events, eventTypes(b.events(t, c.ID)))
			for suffix, n := range tc.calls {
				require.Equal(t, n, b.proc.count(c.ID+suffix), "processor calls %s", suffix)
			}
			bal := b.balance(t)
			require.Equal(t, []charge.Money{{Amount: tc.available, Currency: "usd"}}, bal.Available)
			require.Equal(t, []charge.Money{{Amount: tc.pending, Currency: "usd"}}, bal.Pending)
			b.reconciled(t)
		})
	}
}

// Several partial refunds up to the captured amount succeed; one above what remains fails
// with amount_too_large and leaves the rest untouched; the events are numbered without gap.
func TestPartialRefunds(t *testing.T) {
	t.Parallel()
	b := setup(t)
	c := b.settled(t, 1000, false)
	require.True(t, b.handle(t, capture(c.ID, 900), 1).acked.Load())

	r1, r2, tooMuch, rest := refund(c, 200), refund(c, 300), refund(c, 401), refund(c, 400)
	for _, cmd := range []charge.Command{r1, r2, tooMuch, rest, r1} {
		require.True(t, b.handle(t, cmd, 1).acked.Load())
	}
	got := b.charge(t, c.ID)
	require.Equal(t, int64(900), got.AmountCaptured)
	require.Equal(t, int64(900), got.AmountRefunded)
	require.Equal(t, charge.StatusSucceeded, got.Status)
	require.Equal(t, []string{"1:charge.authorized", "2:charge.captured", "3:charge.refunded", "4:charge.refunded",
		"5:refund.failed", "6:charge.refunded"}, eventTypes(b.events(t, c.ID)))

	for _, want := range []struct {
		cmd    charge.Command
		status charge.RefundStatus
		code   string
	}{{r1, charge.RefundSucceeded, ""}, {r2, charge.RefundSucceeded, ""}, {tooMuch, charge.RefundFailed, charge.CodeAmountTooLarge}, {rest, charge.RefundSucceeded, ""}} {
		r, err := b.store.GetRefund(context.Background(), "merchant_w", want.cmd.Refund.ID)
		require.NoError(t, err)
		require.Equal(t, want.status, r.Status)
		if want.code != "" {
			require.Equal(t, want.code, *r.FailureCode)
		}
	}
	require.Equal(t, 1, b.proc.count(r1.Refund.ID), "a redelivered refund is not sent again")
	require.Zero(t, b.proc.count(tooMuch.Refund.ID), "a refused refund never reaches the processor")

	refundEvent := b.events(t, c.ID)[0]
	require.Equal(t, charge.EventChargeRefunded, refundEvent.Type)
	require.NotNil(t, refundEvent.Data.Refund)
	require.Equal(t, rest.Refund.ID, refundEvent.Data.Refund.ID)
	require.Equal(t, int64(900), refundEvent.Data.Object.AmountRefunded)

	require.Equal(t, []charge.Money{{Amount: 0, Currency: "usd"}}, b.balance(t).Available)
	b.reconciled(t)
}

// A refund that arrives before its charge is decided, or before it is captured, waits
// (a delayed redelivery that is not an attempt) and then applies.
func TestRefundWaitsForItsCharge(t *testing.T) {
	t.Parallel()
	b := setup(t)
	create, _ := command(t, "pm_card_visa", false)
	pendingCharge := create.PendingCharge()
	early := refund(pendingCharge, 100)

	m := b.handle(t, early, 1)
	require.False(t, m.acked.Load())
	require.Positive(t, m.nakDelay.Load(), "waits for the charge to be decided")

	require.True(t, b.handle(t, create, 1).acked.Load())
	m = b.handle(t, early, 2)
	require.False(t, m.acked.Load(), "waits for the capture")
	require.True(t, b.handle(t, capture(create.ChargeID, 0), 1).acked.Load())
	require.True(t, b.handle(t, early, 20).acked.Load(), "many waits are not attempts")

	got := b.charge(t, create.ChargeID)
	require.Equal(t, int64(100), got.AmountRefunded)
	b.reconciled(t)
}

// A refund that has waited a minute for its charge's capture is handed back for later
// rather than nak'd: a delayed nak would keep it among the consumer's unacknowledged
// messages for the week it may wait, and enough such refunds would stop the consumer
// delivering anything else. Its delay is a quarter of its wait so far, at most 5 minutes;
// once the charge is captured it settles.
func TestLongWaitsAreHandedBackForLater(t *testing.T) {
	t.Parallel()
	b := setup(t)
	c := b.settled(t, 1000, false)
	for _, tc := range []struct {
		waited     time.Duration
		nak, later bool
		delay      time.Duration
	}{
		{waited: 0, nak: true},
		{waited: 50 * time.Second, nak: true},
		{waited: 2 * time.Minute, later: true, delay: 30 * time.Second},
		{waited: 3 * time.Hour, later: true, delay: 5 * time.Minute},
	} {
		r := refund(c, 100)
		r.AcceptedAt = time.Now().Add(-tc.waited)
		m := b.handle(t, r, 1)
		require.False(t, m.acked.Load(), "waited %s: not settled", tc.waited)
		require.Equal(t, tc.nak, m.nakDelay.Load() > 0, "waited %s: nak", tc.waited)
		require.Equal(t, tc.later, m.later.Load() > 0, "waited %s: later", tc.waited)
		if tc.later {
			require.InDelta(t, float64(tc.delay), float64(m.later.Load()), float64(time.Second), "waited %s", tc.waited)
		}
	}
	require.True(t, b.handle(t, capture(c.ID, 0), 1).acked.Load())
	r := refund(c, 100)
	r.AcceptedAt = time.Now().Add(-3 * time.Hour)
	require.True(t, b.handle(t, r, 1).acked.Load(), "the capture came: it settles")
	require.Equal(t, int64(100), b.charge(t, c.ID).AmountRefunded)
	b.reconciled(t)
}

// A refund of a charge that failed or was canceled fails with amount_too_large, and
// writes refund.failed.
func TestRefundOfUncapturedChargeFails(t *testing.T) {
	t.Parallel()
	b := setup(t)
	c := b.settled(t, 1000, false)
	require.True(t, b.handle(t, cancel(c.ID), 1).acked.Load())
	r := refund(c, 10)
	require.True(t, b.handle(t, r, 1).acked.Load())
	got, err := b.store.GetRefund(context.Background(), "merchant_w", r.Refund.ID)
	require.NoError(t, err)
	require.Equal(t, charge.RefundFailed, got.Status)
	require.Equal(t, []string{"1:charge.authorized", "2:charge.canceled", "3:refund.failed"}, eventTypes(b.events(t, c.ID)))
	b.reconciled(t)
}

// A refund whose processor call keeps failing is retried on the schedule counted from its
// reservation, then fails with processing_error and a dead letter, releasing its amount.
func TestRefundGivesUpAfterItsAttempts(t *testing.T) {
	t.Parallel()
	b := setup(t)
	c := b.settled(t, 1000, true)
	r := refund(c, 1000)
	b.proc.mu.Lock()
	b.proc.fail = fmt.Errorf("down: %w", processor.ErrTransient)
	b.proc.mu.Unlock()
	for n := uint64(1); n <= uint64(len(b.schedule)); n++ {
		m := b.handle(t, r, n)
		require.False(t, m.acked.Load())
		require.Equal(t, int64(b.schedule[n-1]), m.later.Load(), "handed back, the attempt counted")
	}
	require.True(t, b.handle(t, r, uint64(len(b.schedule))+1).acked.Load())
	got, err := b.store.GetRefund(context.Background(), "merchant_w", r.Refund.ID)
	require.NoError(t, err)
	require.Equal(t, charge.RefundFailed, got.Status)
	require.Equal(t, charge.FailureProcessingError, *got.FailureCode)
	require.Equal(t, int64(1000), b.charge(t, c.ID).Refundable(), "the reservation is released")
	dead, err := b.store.DeadLetters(context.Background())
	require.NoError(t, err)
	require.Len(t, dead, 1)
	b.proc.mu.Lock()
	b.proc.fail = nil
	b.proc.mu.Unlock()
	b.reconciled(t)
}

// The race: 50 refunds of 1 cent against a 30-cent capture of a 100-cent
// authorization, all on the queue at once, taken by three workers: exactly 30 refunds
// succeed, the others fail with amount_too_large, the ledger balances, and the
// reconciliation finds nothing.
func TestRefundsRaceCapture(t *testing.T) {
	t.Parallel()
	b := setup(t)
	ctx := context.Background()
	c := b.settled(t, 100, false)

	var cmds []charge.Command
	for range 50 {
		cmds = append(cmds, refund(c, 1))
	}
	cmds = append(cmds[:25], append([]charge.Command{capture(c.ID, 30)}, cmds[25:]...)...)
	var wg sync.WaitGroup
	for _, cmd := range cmds {
		wg.Go(func() { require.NoError(t, b.conn.PublishCommand(ctx, cmd)) })
	}
	wg.Wait()

	consumer, err := b.conn.CommandConsumer(ctx, queue.ConsumerConfig{})
	require.NoError(t, err)
	logger := slog.New(slog.NewTextHandler(io.Discard, nil))
	if testing.Verbose() {
		logger = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelInfo}))
	}
	runCtx, stop := context.WithCancel(ctx)
	var running sync.WaitGroup
	for range 3 {
		w := worker.New(worker.Config{RetrySchedule: b.schedule, FetchWait: 50 * time.Millisecond, Batch: 8},
			service.CommandSource(consumer), b.store, b.conn, b.proc, logger, prometheus.NewRegistry(), time.Now)
		running.Go(func() { require.NoError(t, w.Run(runCtx)) })
	}
	require.Eventually(t, func() bool {
		n, err := consumer.Pending(ctx)
		return err == nil && n == 0
	}, 60*time.Second, 50*time.Millisecond, "every command handled and acknowledged")
	stop()
	running.Wait()

	got := b.charge(t, c.ID)
	require.Equal(t, charge.StatusSucceeded, got.Status)
	require.Equal(t, int64(30), got.AmountCaptured)
	require.Equal(t, int64(30), got.AmountRefunded)
	var succeeded, failed int
	for _, cmd := range cmds {
		if cmd.Type != charge.CommandRefund {
			continue
		}
		r, err := b.store.GetRefund(ctx, "merchant_w", cmd.Refund.ID)
		require.NoError(t, err)
		switch r.Status {
		case charge.RefundSucceeded:
			succeeded++
		case charge.RefundFailed:
			failed++
			require.Equal(t, charge.CodeAmountTooLarge, *r.FailureCode)
		}
	}
	require.Equal(t, 30, succeeded)
	require.Equal(t, 20, failed)
	require.Len(t, b.events(t, c.ID), 1+1+50, "authorized, captured, and one event per refund")
	require.Equal(t, []charge.Money{{Amount: 0, Currency: "usd"}}, b.balance(t).Available)
	rep := b.reconciled(t)
	// Two legs for the authorization, three for the capture (the uncaptured 70 goes back),
	// two for each refund that succeeded.
	require.Equal(t, 2+3+30*2, rep.LedgerEntries)
}

// The processor may decline a capture, a void or a refund. A declined capture leaves the
// charge requires_capture with nothing under way, writes no event and moves no money; it
// is not tried again (its key is the charge's: the processor would answer the same), but
// the charge can still be canceled. A declined refund fails with the processor's code,
// releases its reservation and writes refund.failed.
func TestProcessorDeclines(t *testing.T) {
	t.Parallel()
	b := setup(t)
	declining := func(code string) {
		b.proc.mu.Lock()
		b.proc.decline = code
		b.proc.mu.Unlock()
	}
	auth := b.settled(t, 1000, false)
	declining("card_declined")
	first := capture(auth.ID, 0)
	require.True(t, b.handle(t, first, 1).acked.Load())
	require.True(t, b.handle(t, first, 2).acked.Load(), "a redelivery finds the capture ended")
	require.True(t, b.handle(t, capture(auth.ID, 500), 1).acked.Load(), "another capture is refused")
	require.Equal(t, 1, b.proc.count(auth.ID+":capture"))
	got := b.charge(t, auth.ID)
	require.Equal(t, charge.StatusRequiresCapture, got.Status)
	require.Nil(t, got.Operation)
	require.Zero(t, got.AmountCaptured)
	require.NotNil(t, got.CheckCapture(0), "the API refuses a capture now")
	require.Nil(t, got.CheckCancel())
	require.Equal(t, []string{"1:charge.authorized"}, eventTypes(b.events(t, auth.ID)))
	require.Equal(t, []charge.Money{{Amount: 1000, Currency: "usd"}}, b.balance(t).Pending)

	declining("")
	require.True(t, b.handle(t, cancel(auth.ID), 1).acked.Load())
	require.Equal(t, charge.StatusCanceled, b.charge(t, auth.ID).Status)
	require.Equal(t, []string{"1:charge.authorized", "2:charge.canceled"}, eventTypes(b.events(t, auth.ID)))

	paid := b.settled(t, 1000, true)
	declining("insufficient_funds")
	r := refund(paid, 400)
	require.True(t, b.handle(t, r, 1).acked.Load())
	rf, err := b.store.GetRefund(context.Background(), "merchant_w", r.Refund.ID)
	require.NoError(t, err)
	require.Equal(t, charge.RefundFailed, rf.Status)
	require.Equal(t, "insufficient_funds", *rf.FailureCode)
	got = b.charge(t, paid.ID)
	require.Zero(t, got.AmountRefunded)
	require.Equal(t, int64(1000), got.Refundable(), "the reservation is released")
	require.Equal(t, []string{"1:charge.succeeded", "2:refund.failed"}, eventTypes(b.events(t, paid.ID)))
	b.reconciled(t) // the processor double declines again when asked: the log agrees
}

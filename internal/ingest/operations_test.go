package ingest_test

import (
	"context"
	"encoding/json"
	"log/slog"
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/billing/billing/internal/charge"
	"github.com/billing/billing/internal/ingest"
)

// store is a double of our own ChargeStore, RefundStore and OperationLog: what a worker
// has written.
type store struct {
	mu          sync.Mutex
	charges     map[string]charge.Charge
	refunds     map[string]charge.Refund
	transitions map[string][]charge.Transition
}

func (s *store) TransitionsFrom(_ context.Context, from map[string]int) (map[string][]charge.Transition, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := map[string][]charge.Transition{}
	for id, seq := range from {
		for _, t := range s.transitions[id] {
			if t.Sequence >= seq {
				out[id] = append(out[id], t)
			}
		}
	}
	return out, nil
}

func (s *store) putTransition(t charge.Transition) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.transitions[t.ChargeID] = append(s.transitions[t.ChargeID], t)
}

func (s *store) GetCharge(_ context.Context, merchant, id string) (charge.Charge, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	c, ok := s.charges[id]
	if !ok || c.Merchant != merchant {
		return charge.Charge{}, charge.ErrNotFound
	}
	return c, nil
}

func (s *store) ListCharges(context.Context, string, charge.ListParams) ([]charge.Charge, bool, error) {
	return nil, false, nil
}

func (s *store) GetRefund(_ context.Context, merchant, id string) (charge.Refund, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	r, ok := s.refunds[id]
	if !ok || r.Merchant != merchant {
		return charge.Refund{}, charge.ErrNotFound
	}
	return r, nil
}

func (s *store) ListRefunds(context.Context, string, charge.RefundListParams) ([]charge.Refund, bool, error) {
	return nil, false, nil
}

func (s *store) putCharge(c charge.Charge) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.charges[c.ID] = c
}

func (s *store) putRefund(r charge.Refund) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.refunds[r.ID] = r
}

type opsBundle struct {
	ctx     context.Context
	store   *store
	pub     *publisher
	charges *ingest.Charges
	refunds *ingest.Refunds
}

func opsSetup(t *testing.T) *opsBundle {
	t.Helper()
	idem, pub, clk := setup(t)
	st := &store{charges: map[string]charge.Charge{}, refunds: map[string]charge.Refund{}, transitions: map[string][]charge.Transition{}}
	idem.Executor.(ingest.Actions)[ingest.KindOperation] = ingest.OperationAction(pub, st, slog.New(slog.DiscardHandler))
	charges := &ingest.Charges{
		Idempotency: idem, Store: st, Commands: pub.q, Waiter: pub.q, NowFunc: clk.Now,
		EncodeFunc: func(c charge.Charge) ([]byte, error) { return json.Marshal(c) },
	}
	return &opsBundle{
		ctx: context.Background(), store: st, pub: pub, charges: charges,
		refunds: &ingest.Refunds{
			Idempotency: idem, Charges: charges, Store: st, Commands: pub.q, NowFunc: clk.Now,
			EncodeFunc: func(r charge.Refund) ([]byte, error) { return json.Marshal(r) },
		},
	}
}

// stored returns a charge of merchant m as a worker stores it, in status with captured
// and refunded amounts.
func stored(status charge.Status, amount, captured, refunded int64) charge.Charge {
	now := time.Now().UTC().Truncate(time.Millisecond)
	return charge.Charge{
		ID: charge.NewID(charge.PrefixCharge), Merchant: "m", Amount: amount, Currency: "eur",
		PaymentMethod: "pm_card_visa", Status: status, AmountCaptured: captured, AmountRefunded: refunded,
		Metadata: map[string]string{}, CreatedAt: now, UpdatedAt: now, Version: 1,
	}
}

func opRequest(path, body string) ingest.Request {
	return ingest.Request{Merchant: "m", Key: "k_" + charge.NewID("k"), Method: "POST", Path: path, Body: []byte(body)}
}

func ptr[T any](v T) *T { return &v }

func requireInvalid(t *testing.T, err error, code, param string) {
	t.Helper()
	var invalid *charge.InvalidRequestError
	require.ErrorAs(t, err, &invalid)
	require.Equal(t, code, invalid.Code, "%v", invalid)
	require.Equal(t, param, invalid.Param, "%v", invalid)
}

func TestCapture(t *testing.T) {
	t.Parallel()
	b := opsSetup(t)
	authorized := stored(charge.StatusRequiresCapture, 1000, 0, 0)
	b.store.putCharge(authorized)

	resp, err := b.charges.Capture(b.ctx, opRequest("/capture", `{}`), authorized.ID, &charge.CaptureParams{})
	require.NoError(t, err)
	require.Equal(t, http.StatusAccepted, resp.Status)
	var body charge.Charge
	require.NoError(t, json.Unmarshal(resp.Body, &body))
	require.Equal(t, authorized.ID, body.ID)
	require.Equal(t, "charge", body.Object)
	require.Equal(t, charge.StatusRequiresCapture, body.Status, "the charge as read")
	require.Len(t, b.pub.commands, 1)
	cmd := b.pub.commands[0]
	require.Equal(t, charge.CommandCapture, cmd.Type)
	require.Equal(t, "m", cmd.Merchant)
	require.Equal(t, authorized.ID, cmd.ChargeID)
	require.Equal(t, int64(1000), cmd.Amount, "all that was authorized")
	require.False(t, cmd.AcceptedAt.IsZero())
	require.True(t, charge.ValidID(charge.PrefixOperation, cmd.ID), "an operation id of its own: %q", cmd.ID)

	partial := stored(charge.StatusRequiresCapture, 1000, 0, 0)
	b.store.putCharge(partial)
	_, err = b.charges.Capture(b.ctx, opRequest("/capture", `{"amount":400}`), partial.ID, &charge.CaptureParams{Amount: ptr[int64](400)})
	require.NoError(t, err)
	require.Equal(t, int64(400), b.pub.commands[1].Amount)

	_, err = b.charges.Capture(b.ctx, opRequest("/capture", `{"amount":1001}`), partial.ID, &charge.CaptureParams{Amount: ptr[int64](1001)})
	requireInvalid(t, err, charge.CodeAmountTooLarge, "amount")

	for _, status := range []charge.Status{charge.StatusSucceeded, charge.StatusFailed, charge.StatusCanceled} {
		c := stored(status, 1000, 0, 0)
		b.store.putCharge(c)
		_, err = b.charges.Capture(b.ctx, opRequest("/capture", `{}`), c.ID, &charge.CaptureParams{})
		requireInvalid(t, err, charge.CodeChargeNotCapturable, "")
	}
	being := stored(charge.StatusRequiresCapture, 1000, 0, 0)
	being.Operation = &charge.Operation{Kind: charge.KindCancelRequested}
	b.store.putCharge(being)
	_, err = b.charges.Capture(b.ctx, opRequest("/capture", `{}`), being.ID, &charge.CaptureParams{})
	require.ErrorIs(t, err, charge.ErrOperationInProgress, "one operation at a time: 409, not 400")
	_, err = b.charges.Cancel(b.ctx, opRequest("/cancel", ``), being.ID)
	require.ErrorIs(t, err, charge.ErrOperationInProgress)

	for _, id := range []string{charge.NewID(charge.PrefixCharge), "nope", charge.NewID(charge.PrefixRefund)} {
		_, err = b.charges.Capture(b.ctx, opRequest("/capture", `{}`), id, &charge.CaptureParams{})
		require.ErrorIs(t, err, charge.ErrNotFound)
	}
	theirs := stored(charge.StatusRequiresCapture, 1000, 0, 0)
	theirs.Merchant = "other"
	b.store.putCharge(theirs)
	_, err = b.charges.Capture(b.ctx, opRequest("/capture", `{}`), theirs.ID, &charge.CaptureParams{})
	require.ErrorIs(t, err, charge.ErrNotFound)
	require.Len(t, b.pub.commands, 2, "nothing refused was published")
}

// A capture whose charge moved after it was checked and before it was stored (a whole
// cancel settled in between, then released the charge's lock) would come to nothing: it
// is withdrawn from the queue and answered ErrOperationInProgress, its key left free. A
// charge moved by the operation's own intent (a quick worker) keeps its 202.
func TestOperationOvertakenBetweenCheckAndPublish(t *testing.T) {
	t.Parallel()
	b := opsSetup(t)
	c := stored(charge.StatusRequiresCapture, 1000, 0, 0)
	b.store.putCharge(c)
	// What a cancel that settled meanwhile left in the log, the view not read again.
	b.store.putTransition(charge.Transition{ChargeID: c.ID, Sequence: 2, Kind: charge.KindCancelRequested, Operation: charge.NewID(charge.PrefixOperation)})

	req := opRequest("/v1/charges/"+c.ID+"/capture", `{}`)
	_, err := b.charges.Capture(b.ctx, req, c.ID, &charge.CaptureParams{})
	require.ErrorIs(t, err, charge.ErrOperationInProgress)
	require.Len(t, b.pub.withdrawn, 1, "the command is withdrawn")
	seq, err := b.pub.q.PublishOperation(b.ctx, charge.Command{ID: charge.NewID(charge.PrefixOperation),
		Type: charge.CommandCancel, Merchant: "m", ChargeID: c.ID, AcceptedAt: time.Now()})
	require.NoError(t, err, "and no longer holds the charge's lock")
	require.NoError(t, b.pub.q.WithdrawCommand(b.ctx, seq))

	// The retry with the same key is checked anew (the key was left free) against the
	// charge as the cancel left it.
	c.Status, c.Version = charge.StatusCanceled, 3
	b.store.putCharge(c)
	_, err = b.charges.Capture(b.ctx, req, c.ID, &charge.CaptureParams{})
	requireInvalid(t, err, charge.CodeChargeNotCapturable, "")
}

// A charge moved by the operation's own intent before its ingest reads the log keeps
// its 202.
func TestOperationMovedByItsOwnIntent(t *testing.T) {
	t.Parallel()
	b := opsSetup(t)
	c := stored(charge.StatusRequiresCapture, 1000, 0, 0)
	b.store.putCharge(c)
	// A worker double that claims the intent the moment the command is stored.
	b.pub.onPublish = func(cmd charge.Command) {
		b.store.putTransition(charge.Transition{ChargeID: cmd.ChargeID, Sequence: int(cmd.Version) + 1, Kind: charge.KindCaptureRequested, Operation: cmd.ID})
	}
	resp, err := b.charges.Capture(b.ctx, opRequest("/v1/charges/"+c.ID+"/capture", `{}`), c.ID, &charge.CaptureParams{})
	require.NoError(t, err)
	require.Equal(t, http.StatusAccepted, resp.Status)
	require.Empty(t, b.pub.withdrawn)
}

// A capture repeated after the charge was captured replays the first answer.
func TestCaptureReplayedAfterTheChargeMoved(t *testing.T) {
	t.Parallel()
	b := opsSetup(t)
	c := stored(charge.StatusRequiresCapture, 1000, 0, 0)
	b.store.putCharge(c)
	req := opRequest("/v1/charges/"+c.ID+"/capture", `{}`)
	first, err := b.charges.Capture(b.ctx, req, c.ID, &charge.CaptureParams{})
	require.NoError(t, err)

	c.Status, c.AmountCaptured = charge.StatusSucceeded, 1000
	b.store.putCharge(c)
	again, err := b.charges.Capture(b.ctx, req, c.ID, &charge.CaptureParams{})
	require.NoError(t, err)
	require.True(t, again.Replayed)
	require.Equal(t, first.Body, again.Body)
	require.Len(t, b.pub.commands, 1)

	// A new key is checked against the charge as it is now.
	_, err = b.charges.Capture(b.ctx, opRequest("/v1/charges/"+c.ID+"/capture", `{}`), c.ID, &charge.CaptureParams{})
	requireInvalid(t, err, charge.CodeChargeNotCapturable, "")
}

func TestCancel(t *testing.T) {
	t.Parallel()
	b := opsSetup(t)
	c := stored(charge.StatusRequiresCapture, 1000, 0, 0)
	b.store.putCharge(c)
	resp, err := b.charges.Cancel(b.ctx, opRequest("/cancel", `{}`), c.ID)
	require.NoError(t, err)
	require.Equal(t, http.StatusAccepted, resp.Status)
	require.Len(t, b.pub.commands, 1)
	require.Equal(t, charge.CommandCancel, b.pub.commands[0].Type)
	require.Equal(t, c.ID, b.pub.commands[0].ChargeID)

	for _, status := range []charge.Status{charge.StatusSucceeded, charge.StatusFailed, charge.StatusCanceled} {
		c := stored(status, 1000, 0, 0)
		b.store.putCharge(c)
		_, err = b.charges.Cancel(b.ctx, opRequest("/cancel", `{}`), c.ID)
		requireInvalid(t, err, charge.CodeChargeNotCancelable, "")
	}
	// Still pending, read from its create command: not yet cancelable.
	pending := cmd(charge.NewID(charge.PrefixCharge))
	require.NoError(t, b.pub.q.PublishCommand(b.ctx, pending))
	_, err = b.charges.Cancel(b.ctx, opRequest("/cancel", `{}`), pending.ChargeID)
	requireInvalid(t, err, charge.CodeChargeNotCancelable, "")
	require.Len(t, b.pub.commands, 1)
}

func TestCreateRefund(t *testing.T) {
	t.Parallel()
	b := opsSetup(t)
	// Captured 1000, refunded 200, 300 reserved by a pending refund: 500 left.
	partly := stored(charge.StatusSucceeded, 1000, 1000, 200)
	partly.Refunds = []charge.Refund{{ID: charge.NewID(charge.PrefixRefund), Amount: 300, Status: charge.RefundPending}}
	full := stored(charge.StatusSucceeded, 1000, 1000, 1000)
	failed := stored(charge.StatusFailed, 1000, 0, 0)
	canceled := stored(charge.StatusCanceled, 1000, 0, 0)
	authorized := stored(charge.StatusRequiresCapture, 1000, 0, 0)
	for _, c := range []charge.Charge{partly, full, failed, canceled, authorized} {
		b.store.putCharge(c)
	}
	pending := charge.Charge{ID: charge.NewID(charge.PrefixCharge), Amount: 800, Currency: "usd", Status: charge.StatusPending}
	require.NoError(t, b.pub.q.PublishCommand(b.ctx, charge.Command{
		Type: charge.CommandCreate, Merchant: "m", ChargeID: pending.ID, Charge: &pending,
	}))

	refund := func(id string, amount *int64) (ingest.Response, error) {
		return b.refunds.Create(b.ctx, opRequest("/v1/refunds", `{}`), &charge.RefundParams{Charge: &id, Amount: amount, Reason: ptr("duplicate")})
	}

	resp, err := refund(partly.ID, nil)
	require.NoError(t, err)
	require.Equal(t, http.StatusAccepted, resp.Status)
	var r charge.Refund
	require.NoError(t, json.Unmarshal(resp.Body, &r))
	require.True(t, charge.ValidID(charge.PrefixRefund, r.ID), r.ID)
	require.Equal(t, "refund", r.Object)
	require.Equal(t, partly.ID, r.Charge)
	require.Equal(t, int64(500), r.Amount, "the rest of what was captured")
	require.Equal(t, "eur", r.Currency)
	require.Equal(t, charge.RefundPending, r.Status)
	require.Nil(t, r.FailureCode)
	require.Equal(t, "duplicate", *r.Reason)
	require.Equal(t, r.CreatedAt, r.CreatedAt.Truncate(time.Millisecond))
	cmd := b.pub.commands[len(b.pub.commands)-1]
	require.Equal(t, charge.CommandRefund, cmd.Type)
	require.Equal(t, partly.ID, cmd.ChargeID)
	require.Equal(t, "m", cmd.Merchant)
	require.True(t, cmd.Valid())
	require.Equal(t, r.ID, cmd.Refund.ID)
	require.True(t, cmd.AcceptedAt.Equal(r.CreatedAt))

	_, err = refund(partly.ID, ptr[int64](501))
	requireInvalid(t, err, charge.CodeAmountTooLarge, "amount")
	_, err = refund(partly.ID, ptr[int64](500))
	require.NoError(t, err)

	for _, c := range []charge.Charge{full, failed, canceled} {
		_, err = refund(c.ID, nil)
		requireInvalid(t, err, charge.CodeAmountTooLarge, "amount")
		_, err = refund(c.ID, ptr[int64](1))
		requireInvalid(t, err, charge.CodeAmountTooLarge, "amount")
	}

	// Before the capture the rest is unknown: an amount is required, and one that the
	// authorization could cover waits for the capture in the worker.
	for _, id := range []string{authorized.ID, pending.ID} {
		_, err = refund(id, nil)
		requireInvalid(t, err, charge.CodeParameterMissing, "amount")
		_, err = refund(id, ptr[int64](100))
		require.NoError(t, err)
	}
	_, err = refund(authorized.ID, ptr[int64](1001))
	requireInvalid(t, err, charge.CodeAmountTooLarge, "amount")

	theirs := stored(charge.StatusSucceeded, 1000, 1000, 0)
	theirs.Merchant = "other"
	b.store.putCharge(theirs)
	for _, id := range []string{theirs.ID, charge.NewID(charge.PrefixCharge)} {
		_, err = refund(id, nil)
		requireInvalid(t, err, charge.CodeResourceMissing, "charge")
	}
	require.Len(t, b.pub.commands, 4)
}

// A refund is readable from its 202 on: from its command until a worker stores it.
func TestGetRefund(t *testing.T) {
	t.Parallel()
	b := opsSetup(t)
	c := stored(charge.StatusSucceeded, 1000, 1000, 0)
	b.store.putCharge(c)
	resp, err := b.refunds.Create(b.ctx, opRequest("/v1/refunds", `{}`), &charge.RefundParams{Charge: &c.ID})
	require.NoError(t, err)
	var accepted charge.Refund
	require.NoError(t, json.Unmarshal(resp.Body, &accepted))

	got, err := b.refunds.Get(b.ctx, "m", accepted.ID)
	require.NoError(t, err)
	require.Equal(t, accepted.ID, got.ID)
	require.Equal(t, "m", got.Merchant)
	require.Equal(t, c.ID, got.Charge)
	require.Equal(t, charge.RefundPending, got.Status)
	require.Equal(t, int64(1000), got.Amount)
	require.True(t, accepted.CreatedAt.Equal(got.CreatedAt))

	_, err = b.refunds.Get(b.ctx, "other", accepted.ID)
	require.ErrorIs(t, err, charge.ErrNotFound, "another merchant's refund")
	for _, id := range []string{charge.NewID(charge.PrefixRefund), c.ID, "re_*", ""} {
		_, err = b.refunds.Get(b.ctx, "m", id)
		require.ErrorIs(t, err, charge.ErrNotFound, "id %q", id)
	}

	// Once stored, the store's view wins.
	code := charge.FailureProcessingError
	settled := got
	settled.Status, settled.FailureCode = charge.RefundFailed, &code
	b.store.putRefund(settled)
	got, err = b.refunds.Get(b.ctx, "m", accepted.ID)
	require.NoError(t, err)
	require.Equal(t, charge.RefundFailed, got.Status)
}

// The refunds of one charge are listed from the charge, pending ones included (a worker
// has reserved them, the processor has not answered yet), newest first and by page; a
// charge of another merchant, or none, has no refunds.
func TestListRefundsOfACharge(t *testing.T) {
	t.Parallel()
	b := opsSetup(t)
	c := stored(charge.StatusSucceeded, 1000, 1000, 300)
	at := time.Now().UTC().Truncate(time.Millisecond)
	var ids []string
	for i, status := range []charge.RefundStatus{charge.RefundSucceeded, charge.RefundFailed, charge.RefundPending} {
		r := charge.Refund{ID: charge.NewID(charge.PrefixRefund), Merchant: "m", Charge: c.ID, Amount: int64(100 * (i + 1)),
			Currency: "eur", Status: status, CreatedAt: at, UpdatedAt: at}
		c.Refunds = append(c.Refunds, r)
		ids = append(ids, r.ID)
	}
	b.store.putCharge(c)

	page, more, err := b.refunds.List(b.ctx, "m", charge.RefundListParams{Charge: c.ID, Limit: 2})
	require.NoError(t, err)
	require.True(t, more)
	require.Len(t, page, 2)
	require.Equal(t, ids[2], page[0].ID, "newest first")
	require.Equal(t, charge.RefundPending, page[0].Status, "a pending refund is listed")
	require.Equal(t, ids[1], page[1].ID)
	page, more, err = b.refunds.List(b.ctx, "m", charge.RefundListParams{Charge: c.ID, Limit: 2, StartingAfter: ids[1]})
	require.NoError(t, err)
	require.False(t, more)
	require.Len(t, page, 1)
	require.Equal(t, ids[0], page[0].ID)

	for _, tc := range []struct{ merchant, charge string }{{"other", c.ID}, {"m", charge.NewID(charge.PrefixCharge)}} {
		page, more, err = b.refunds.List(b.ctx, tc.merchant, charge.RefundListParams{Charge: tc.charge, Limit: 10})
		require.NoError(t, err)
		require.NotNil(t, page)
		require.Empty(t, page)
		require.False(t, more)
	}
}

// An operation overtaken by another that has since settled the charge is answered as a
// request sent after it would be, with the charge's refusal (400), not 409.
func TestOperationOvertakenBySettledOne(t *testing.T) {
	t.Parallel()
	b := opsSetup(t)
	c := stored(charge.StatusRequiresCapture, 1000, 0, 0)
	b.store.putCharge(c)
	b.store.putTransition(charge.Transition{ChargeID: c.ID, Sequence: 2, Kind: charge.KindCancelRequested, Operation: charge.NewID(charge.PrefixOperation)})
	// The cancel settles while the capture is being published.
	b.pub.onPublish = func(charge.Command) {
		canceled := c
		canceled.Status, canceled.Version = charge.StatusCanceled, 3
		b.store.putCharge(canceled)
	}
	_, err := b.charges.Capture(b.ctx, opRequest("/v1/charges/"+c.ID+"/capture", `{}`), c.ID, &charge.CaptureParams{})
	requireInvalid(t, err, charge.CodeChargeNotCapturable, "")
	require.Len(t, b.pub.withdrawn, 1, "the command is withdrawn")
}

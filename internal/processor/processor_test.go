package processor_test

import (
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/billing/billing/internal/charge"
	"github.com/billing/billing/internal/processor"
)

// calls is the whole boundary of docs/api.md; both processors offer it.
type calls interface {
	Authorize(context.Context, processor.AuthorizeRequest) (processor.Result, error)
	Capture(context.Context, processor.CaptureRequest) (processor.Result, error)
	Void(context.Context, processor.VoidRequest) (processor.Result, error)
	Refund(context.Context, processor.RefundRequest) (processor.Result, error)
}

var (
	_ calls = (*processor.HTTP)(nil)
	_ calls = processor.Simulated{}
)

func TestSimulatedOutcomes(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	cases := map[string]string{
		"pm_card_visa": "", "pm_card_mastercard": "", "pm_whatever": "",
		"pm_card_chargeDeclined":    charge.FailureCardDeclined,
		"pm_card_insufficientFunds": charge.FailureInsufficientFunds,
		"pm_card_expired":           charge.FailureExpiredCard,
	}
	for pm, decline := range cases {
		res, err := processor.Simulated{}.Authorize(ctx, processor.AuthorizeRequest{ChargeID: "ch_1", PaymentMethod: pm})
		require.NoError(t, err, pm)
		require.Equal(t, decline == "", res.Approved, pm)
		require.Equal(t, decline, res.DeclineCode, pm)
	}
	for range 3 { // on every attempt
		_, err := processor.Simulated{}.Authorize(ctx, processor.AuthorizeRequest{ChargeID: "ch_1", PaymentMethod: processor.MethodProcessingError})
		require.ErrorIs(t, err, processor.ErrTransient)
	}
}

func TestSimulatedCaptureVoidRefund(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	sim := processor.Simulated{}
	for range 2 { // deterministic: the same answer every time
		res, err := sim.Capture(ctx, processor.CaptureRequest{ChargeID: "ch_1", AuthorizationID: "sim_auth_ch_1", Amount: 1999})
		require.NoError(t, err)
		require.Equal(t, processor.Result{Reference: "sim_cap_ch_1", Approved: true}, res)

		res, err = sim.Void(ctx, processor.VoidRequest{ChargeID: "ch_1", AuthorizationID: "sim_auth_ch_1"})
		require.NoError(t, err)
		require.Equal(t, processor.Result{Reference: "sim_void_ch_1", Approved: true}, res)

		res, err = sim.Refund(ctx, processor.RefundRequest{ChargeID: "ch_1", AuthorizationID: "sim_auth_ch_1", RefundID: "re_7", Amount: 500})
		require.NoError(t, err)
		require.Equal(t, processor.Result{Reference: "sim_re_re_7", Approved: true}, res)
	}

	for _, amount := range []int64{0, -1} {
		_, err := sim.Capture(ctx, processor.CaptureRequest{ChargeID: "ch_1", AuthorizationID: "sim_auth_ch_1", Amount: amount})
		require.ErrorIs(t, err, processor.ErrPermanent, "amount %d", amount)
	}

	canceled, cancel := context.WithCancel(ctx)
	cancel()
	_, err := sim.Authorize(canceled, processor.AuthorizeRequest{ChargeID: "ch_1", PaymentMethod: "pm_card_visa"})
	require.ErrorIs(t, err, processor.ErrTransient)
	_, err = sim.Capture(canceled, processor.CaptureRequest{ChargeID: "ch_1", Amount: 1999})
	require.ErrorIs(t, err, processor.ErrTransient)
	_, err = sim.Void(canceled, processor.VoidRequest{ChargeID: "ch_1"})
	require.ErrorIs(t, err, processor.ErrTransient)
	_, err = sim.Refund(canceled, processor.RefundRequest{ChargeID: "ch_1", RefundID: "re_7", Amount: 500})
	require.ErrorIs(t, err, processor.ErrTransient)
}

// seenCall is what the fake processor received.
type seenCall struct {
	path, key, contentType, body string
}

// fakeProcessor answers every call with its current status and answer; hang makes it answer
// only when the caller gives up.
type fakeProcessor struct {
	*httptest.Server
	calls chan seenCall

	mu     sync.Mutex
	status int
	answer string
	hang   bool
}

func newFakeProcessor(t *testing.T) *fakeProcessor {
	f := &fakeProcessor{calls: make(chan seenCall, 10), status: http.StatusOK}
	f.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		f.calls <- seenCall{r.URL.Path, r.Header.Get("Idempotency-Key"), r.Header.Get("Content-Type"), string(body)}
		f.mu.Lock()
		status, answer, hang := f.status, f.answer, f.hang
		f.mu.Unlock()
		if hang {
			<-r.Context().Done()
			return
		}
		w.WriteHeader(status)
		_, _ = w.Write([]byte(answer))
	}))
	t.Cleanup(f.Close)
	return f
}

func (f *fakeProcessor) set(status int, answer string, hang bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.status, f.answer, f.hang = status, answer, hang
}

func TestHTTPProcessor(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name, path, key, body string
		do                    func(context.Context, *processor.HTTP) (processor.Result, error)
	}{
		{
			name: "authorize", path: "/authorizations", key: "ch_42",
			body: `{"charge_id": "ch_42", "amount": 1999, "currency": "usd", "payment_method": "pm_card_visa", "capture": true}`,
			do: func(ctx context.Context, p *processor.HTTP) (processor.Result, error) {
				return p.Authorize(ctx, processor.AuthorizeRequest{ChargeID: "ch_42", Amount: 1999, Currency: "usd", PaymentMethod: "pm_card_visa", Capture: true})
			},
		},
		{
			name: "capture", path: "/captures", key: "ch_42:capture",
			body: `{"charge_id": "ch_42", "authorization_id": "auth_9", "amount": 1500}`,
			do: func(ctx context.Context, p *processor.HTTP) (processor.Result, error) {
				return p.Capture(ctx, processor.CaptureRequest{ChargeID: "ch_42", AuthorizationID: "auth_9", Amount: 1500})
			},
		},
		{
			name: "void", path: "/voids", key: "ch_42:void",
			body: `{"charge_id": "ch_42", "authorization_id": "auth_9"}`,
			do: func(ctx context.Context, p *processor.HTTP) (processor.Result, error) {
				return p.Void(ctx, processor.VoidRequest{ChargeID: "ch_42", AuthorizationID: "auth_9"})
			},
		},
		{
			name: "refund", path: "/refunds", key: "re_7",
			body: `{"charge_id": "ch_42", "authorization_id": "auth_9", "refund_id": "re_7", "amount": 500}`,
			do: func(ctx context.Context, p *processor.HTTP) (processor.Result, error) {
				return p.Refund(ctx, processor.RefundRequest{ChargeID: "ch_42", AuthorizationID: "auth_9", RefundID: "re_7", Amount: 500})
			},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			ctx := context.Background()
			f := newFakeProcessor(t)
			p := &processor.HTTP{BaseURL: f.URL + "/", Client: &http.Client{Timeout: time.Second}}

			f.set(http.StatusOK, `{"id": "ref_9", "status": "approved"}`, false)
			res, err := tc.do(ctx, p)
			require.NoError(t, err)
			require.Equal(t, processor.Result{Reference: "ref_9", Approved: true}, res)
			c := <-f.calls
			require.Equal(t, tc.path, c.path)
			require.Equal(t, tc.key, c.key, "the idempotency key of docs/api.md")
			require.Equal(t, "application/json", c.contentType)
			require.JSONEq(t, tc.body, c.body)

			f.set(http.StatusOK, `{"id": "ref_10", "status": "declined", "decline_code": "insufficient_funds"}`, false)
			res, err = tc.do(ctx, p)
			require.NoError(t, err)
			require.Equal(t, processor.Result{Reference: "ref_10", DeclineCode: charge.FailureInsufficientFunds}, res)
			require.Equal(t, tc.key, (<-f.calls).key, "a repeated call carries the same key")

			for code, want := range map[int]error{
				500: processor.ErrTransient, 503: processor.ErrTransient, 429: processor.ErrTransient,
				400: processor.ErrPermanent, 402: processor.ErrPermanent, 404: processor.ErrPermanent,
				302: processor.ErrPermanent,
			} {
				f.set(code, "", false)
				_, err = tc.do(ctx, p)
				require.True(t, errors.Is(err, want), "status %d: %v", code, err)
				require.Equal(t, tc.key, (<-f.calls).key)
			}

			f.set(http.StatusOK, `not json`, false)
			_, err = tc.do(ctx, p)
			require.ErrorIs(t, err, processor.ErrTransient, "an unreadable 200 is asked again")
			<-f.calls

			f.set(http.StatusOK, "", true)
			quick := &processor.HTTP{BaseURL: f.URL, Client: &http.Client{Timeout: 50 * time.Millisecond}}
			_, err = tc.do(ctx, quick)
			require.ErrorIs(t, err, processor.ErrTransient, "a timeout is transient")
			<-f.calls

			f.Close()
			_, err = tc.do(ctx, p)
			require.ErrorIs(t, err, processor.ErrTransient, "a broken connection is transient")
		})
	}
}

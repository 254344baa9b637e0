package processor_test

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/billing/billing/internal/charge"
	"github.com/billing/billing/internal/processor"
)

func TestSimulatedOutcomes(t *testing.T) {
	t.Parallel()
	cases := map[string]string{
		"pm_card_visa": "", "pm_card_mastercard": "", "pm_whatever": "",
		"pm_card_chargeDeclined":    charge.FailureCardDeclined,
		"pm_card_insufficientFunds": charge.FailureInsufficientFunds,
		"pm_card_expired":           charge.FailureExpiredCard,
	}
	for pm, decline := range cases {
		res, err := processor.Simulated{}.Authorize(context.Background(), processor.AuthorizeRequest{ChargeID: "ch_1", PaymentMethod: pm})
		require.NoError(t, err, pm)
		require.Equal(t, decline == "", res.Approved, pm)
		require.Equal(t, decline, res.DeclineCode, pm)
	}
	for range 3 { // on every attempt
		_, err := processor.Simulated{}.Authorize(context.Background(), processor.AuthorizeRequest{ChargeID: "ch_1", PaymentMethod: processor.MethodProcessingError})
		require.ErrorIs(t, err, processor.ErrTransient)
	}
}

func TestHTTPProcessor(t *testing.T) {
	t.Parallel()
	type seen struct {
		key  string
		body processor.AuthorizeRequest
	}
	calls := make(chan seen, 10)
	status, answer := http.StatusOK, `{"id": "auth_9", "status": "approved"}`
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var body processor.AuthorizeRequest
		_ = json.NewDecoder(r.Body).Decode(&body)
		require.Equal(t, "/authorizations", r.URL.Path)
		require.Equal(t, "application/json", r.Header.Get("Content-Type"))
		calls <- seen{r.Header.Get("Idempotency-Key"), body}
		w.WriteHeader(status)
		_, _ = w.Write([]byte(answer))
	}))
	defer srv.Close()
	p := &processor.HTTP{BaseURL: srv.URL + "/", Client: &http.Client{Timeout: time.Second}}
	req := processor.AuthorizeRequest{ChargeID: "ch_42", Amount: 1999, Currency: "usd", PaymentMethod: "pm_card_visa", Capture: true}

	res, err := p.Authorize(context.Background(), req)
	require.NoError(t, err)
	require.Equal(t, processor.Result{Reference: "auth_9", Approved: true}, res)
	c := <-calls
	require.Equal(t, "ch_42", c.key, "the charge id is the idempotency key")
	require.Equal(t, req, c.body)

	answer = `{"id": "auth_10", "status": "declined", "decline_code": "insufficient_funds"}`
	res, err = p.Authorize(context.Background(), req)
	require.NoError(t, err)
	require.Equal(t, charge.FailureInsufficientFunds, res.DeclineCode)
	<-calls

	for code, want := range map[int]error{
		500: processor.ErrTransient, 503: processor.ErrTransient, 429: processor.ErrTransient,
		400: processor.ErrPermanent, 402: processor.ErrPermanent, 404: processor.ErrPermanent,
		302: processor.ErrPermanent,
	} {
		status = code
		_, err = p.Authorize(context.Background(), req)
		require.True(t, errors.Is(err, want), "status %d: %v", code, err)
		<-calls
	}

	srv.Close()
	_, err = p.Authorize(context.Background(), req)
	require.ErrorIs(t, err, processor.ErrTransient, "a broken connection is transient")
}

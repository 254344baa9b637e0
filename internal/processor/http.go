package processor

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"strings"

	"go.opentelemetry.io/otel/propagation"

	"github.com/billing/billing/internal/charge"
	"github.com/billing/billing/internal/telemetry"
)

// HTTP calls an external processor at BaseURL (docs/api.md, "Payment processor boundary").
type HTTP struct {
	BaseURL string
	// Client defaults to http.DefaultClient; give it a timeout.
	Client *http.Client
}

// answer is the body of a 200 answer.
type answer struct {
	ID          string `json:"id"`
	Status      string `json:"status"`
	DeclineCode string `json:"decline_code"`
}

// Authorize posts to {base}/authorizations.
func (h *HTTP) Authorize(ctx context.Context, req AuthorizeRequest) (Result, error) {
	return h.call(ctx, "/authorizations", authorizeKey(req), req)
}

// Capture posts to {base}/captures.
func (h *HTTP) Capture(ctx context.Context, req CaptureRequest) (Result, error) {
	return h.call(ctx, "/captures", captureKey(req), req)
}

// Void posts to {base}/voids.
func (h *HTTP) Void(ctx context.Context, req VoidRequest) (Result, error) {
	return h.call(ctx, "/voids", voidKey(req), req)
}

// Refund posts to {base}/refunds.
func (h *HTTP) Refund(ctx context.Context, req RefundRequest) (Result, error) {
	return h.call(ctx, "/refunds", refundKey(req), req)
}

// The idempotency keys of docs/api.md, one per call: a repeated call must compute the same key.

func authorizeKey(req AuthorizeRequest) string { return req.ChargeID }

func captureKey(req CaptureRequest) string { return req.ChargeID + ":capture" }

func voidKey(req VoidRequest) string { return req.ChargeID + ":void" }

func refundKey(req RefundRequest) string { return req.RefundID }

// call posts body as JSON to path with the idempotency key and reads the answer: the one
// code path of every call.

func (h *HTTP) call(ctx context.Context, path, key string, body any) (Result, error) {
	raw, err := json.Marshal(body)
	if err != nil {
		return Result{}, permanent("encoding request: %v", err)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, strings.TrimSuffix(h.BaseURL, "/")+path, bytes.NewReader(raw))
	if err != nil {
		return Result{}, permanent("building request: %v", err)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Idempotency-Key", key)
	// The trace of the command, when it is traced, goes on at the processor.
	telemetry.Inject(ctx, "", propagation.HeaderCarrier(req.Header))
	client := h.Client
	if client == nil {
		client = http.DefaultClient
	}
	resp, err := client.Do(req)
	if err != nil {
		return Result{}, transient("POST %s: %v", path, err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return Result{}, transient("reading answer of POST %s: %v", path, err)
	}
	switch {
	case resp.StatusCode == http.StatusTooManyRequests || resp.StatusCode >= 500:
		return Result{}, transient("POST %s: status %d", path, resp.StatusCode)
	case resp.StatusCode < 200 || resp.StatusCode > 299:
		return Result{}, permanent("POST %s: status %d", path, resp.StatusCode)
	}
	var a answer
	if err := json.Unmarshal(data, &a); err != nil {
		// A 2xx we cannot read may still mean the processor acted: ask again, same key.
		return Result{}, transient("decoding answer of POST %s: %v", path, err)
	}
	switch a.Status {
	case "approved":
		return Result{Reference: a.ID, Approved: true}, nil
	case "declined":
		code := a.DeclineCode
		switch code {
		case charge.FailureCardDeclined, charge.FailureInsufficientFunds, charge.FailureExpiredCard:
		default:
			code = charge.FailureCardDeclined
		}
		return Result{Reference: a.ID, DeclineCode: code}, nil
	}
	return Result{}, transient("POST %s: unknown status %q", path, a.Status)
}

package processor

import (
	"context"

	"github.com/billing/billing/internal/charge"
)

// Simulated decides by payment method, deterministically, like a payment provider's test
// cards (docs/api.md, "Payment processor boundary").
type Simulated struct{}

// The payment methods with a simulated outcome other than approval.
const (
	MethodDeclined          = "pm_card_chargeDeclined"
	MethodInsufficientFunds = "pm_card_insufficientFunds"
	MethodExpired           = "pm_card_expired"
	MethodProcessingError   = "pm_card_processingError"
)

// Authorize approves every payment method except the test ones that decline or fail.
func (Simulated) Authorize(ctx context.Context, req AuthorizeRequest) (Result, error) {
	if err := ctx.Err(); err != nil {
		return Result{}, transient("%v", err)
	}
	switch req.PaymentMethod {
	case MethodDeclined:
		return Result{DeclineCode: charge.FailureCardDeclined}, nil
	case MethodInsufficientFunds:
		return Result{DeclineCode: charge.FailureInsufficientFunds}, nil
	case MethodExpired:
		return Result{DeclineCode: charge.FailureExpiredCard}, nil
	case MethodProcessingError:
		return Result{}, transient("simulated processing error for %s", req.ChargeID)
	}
	return Result{Reference: "sim_auth_" + req.ChargeID, Approved: true}, nil
}

// Capture approves every capture of a positive amount; any other amount is refused.
func (Simulated) Capture(ctx context.Context, req CaptureRequest) (Result, error) {
	if err := ctx.Err(); err != nil {
		return Result{}, transient("%v", err)
	}
	if req.Amount <= 0 {
		return Result{}, permanent("capture of %s: amount %d is not positive", req.ChargeID, req.Amount)
	}
	return Result{Reference: "sim_cap_" + req.ChargeID, Approved: true}, nil
}

// Void approves every void.
func (Simulated) Void(ctx context.Context, req VoidRequest) (Result, error) {
	if err := ctx.Err(); err != nil {
		return Result{}, transient("%v", err)
	}
	return Result{Reference: "sim_void_" + req.ChargeID, Approved: true}, nil
}

// Refund approves every refund.
func (Simulated) Refund(ctx context.Context, req RefundRequest) (Result, error) {
	if err := ctx.Err(); err != nil {
		return Result{}, transient("%v", err)
	}
	return Result{Reference: "sim_re_" + req.RefundID, Approved: true}, nil
}

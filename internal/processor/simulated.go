package processor

import (
	"context"

	"github.com/billing/billing/internal/charge"
)

// Simulated decides by payment method, deterministically, like a payment provider's test
// cards (API.md, "Payment processor boundary").
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

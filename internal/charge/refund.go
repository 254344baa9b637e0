package charge

import (
	"slices"
	"strings"
	"time"
)

// RefundStatus is where a refund is: pending until the processor answers.
type RefundStatus string

// The statuses of a refund (docs/api.md, "Refunds").
const (
	RefundPending   RefundStatus = "pending"
	RefundSucceeded RefundStatus = "succeeded"
	RefundFailed    RefundStatus = "failed"
)

// The refund reasons a merchant may give, as Stripe's.
var refundReasons = map[string]bool{"duplicate": true, "fraudulent": true, "requested_by_customer": true}

// ObjectRefund is the object name of a refund.
const ObjectRefund = "refund"

// Refund is the refund object of docs/api.md. A refund lives in the history of its charge
// (the transitions that reserve and settle it) and is stored folded, both inside the
// charge and as a document of its own for reads by id.
type Refund struct {
	ID          string       `json:"id"`
	Object      string       `json:"object"`
	Merchant    string       `json:"-"`
	Charge      string       `json:"charge"`
	Amount      int64        `json:"amount"`
	Currency    string       `json:"currency"`
	Status      RefundStatus `json:"status"`
	FailureCode *string      `json:"failure_code"`
	Reason      *string      `json:"reason"`
	CreatedAt   time.Time    `json:"created_at"`
	UpdatedAt   time.Time    `json:"-"`
	// Reference is the processor's reference for the refund.
	Reference string `json:"-"`
	// Delivery is the attempt number of the command that reserved the refund (its waits
	// uncounted): attempts at the processor are counted from it.
	Delivery uint64 `json:"-"`
	// Version is the version of the charge this view of the refund was folded from:
	// writes of the refund document are conditional on it, like the charge's.
	Version int64 `json:"-"`
}

// Public returns r ready to be shown to its merchant.
func (r Refund) Public() Refund {
	r.Object = ObjectRefund
	r.CreatedAt = r.CreatedAt.UTC()
	return r
}

// settled returns r in status after transition t.
func (r Refund) settled(status RefundStatus, t Transition, code string) Refund {
	r.Status = status
	r.UpdatedAt = t.At
	r.Version = int64(t.Sequence)
	if t.Reference != "" {
		r.Reference = t.Reference
	}
	r.FailureCode = nil
	if code != "" {
		r.FailureCode = &code
	}
	return r
}

// RefundParams is the body of POST /v1/refunds.
type RefundParams struct {
	Charge *string `json:"charge"`
	Amount *int64  `json:"amount"`
	Reason *string `json:"reason"`
}

// Validate checks p's fields on their own; what the charge allows is CheckRefund's.
func (p *RefundParams) Validate() *InvalidRequestError {
	switch {
	case p.Charge == nil:
		return Invalid(CodeParameterMissing, "charge", "charge is required")
	case !ValidID(PrefixCharge, *p.Charge):
		return Invalid(CodeParameterInvalid, "charge", "charge must be a charge id (ch_…)")
	case p.Amount != nil && (*p.Amount < MinAmount || *p.Amount > MaxAmount):
		return Invalid(CodeParameterInvalid, "amount", "amount must be a positive integer of at most %d", MaxAmount)
	case p.Reason != nil && !refundReasons[*p.Reason]:
		return Invalid(CodeParameterInvalid, "reason", "reason must be one of duplicate, fraudulent, requested_by_customer")
	}
	return nil
}

// CaptureParams is the body of POST /v1/charges/{id}/capture.
type CaptureParams struct {
	Amount *int64 `json:"amount"`
}

// Validate checks p's fields on their own; what the charge allows is CheckCapture's.
func (p *CaptureParams) Validate() *InvalidRequestError {
	if p.Amount != nil && (*p.Amount < MinAmount || *p.Amount > MaxAmount) {
		return Invalid(CodeParameterInvalid, "amount", "amount must be a positive integer of at most %d", MaxAmount)
	}
	return nil
}

// CancelParams is the body of POST /v1/charges/{id}/cancel: nothing, or an empty object.
type CancelParams struct{}

// Operation is a capture or cancel of a charge that a worker has claimed and not yet
// settled.
type Operation struct {
	Kind     TransitionKind
	Amount   int64
	Delivery uint64
}

// RefundByID returns c's refund id, if c's history holds it.
func (c Charge) RefundByID(id string) (Refund, bool) {
	for _, r := range c.Refunds {
		if r.ID == id {
			return r, true
		}
	}
	return Refund{}, false
}

// Refundable is what remains to refund of c: captured, less refunded, less what pending
// refunds reserve.
func (c Charge) Refundable() int64 {
	left := c.AmountCaptured - c.AmountRefunded
	for _, r := range c.Refunds {
		if r.Status == RefundPending {
			left -= r.Amount
		}
	}
	return left
}

// Tried reports whether c's history holds the end of an operation of kind (an intent
// kind), approved or declined.
func (c Charge) Tried(kind TransitionKind) bool { return slices.Contains(c.Ended, kind) }

// CheckCapture tells whether amount (0: all of it) of c can be captured now.
func (c Charge) CheckCapture(amount int64) *InvalidRequestError {
	switch {
	case c.Status != StatusRequiresCapture || c.Operation != nil || c.Tried(KindCaptureRequested):
		return Invalid(CodeChargeNotCapturable, "", "charge %s is %s and cannot be captured", c.ID, c.describe())
	case amount > c.Amount:
		return Invalid(CodeAmountTooLarge, "amount", "amount %d is more than the %d authorized", amount, c.Amount)
	}
	return nil
}

// CheckCancel tells whether c can be canceled now.
func (c Charge) CheckCancel() *InvalidRequestError {
	if c.Status != StatusRequiresCapture || c.Operation != nil || c.Tried(KindCancelRequested) {
		return Invalid(CodeChargeNotCancelable, "", "charge %s is %s and cannot be canceled", c.ID, c.describe())
	}
	return nil
}

// describe is c's status for an error message, with an operation under way.
func (c Charge) describe() string {
	switch {
	case c.Operation != nil && c.Operation.Kind == KindCaptureRequested:
		return "being captured"
	case c.Operation != nil:
		return "being canceled"
	case c.Status == StatusRequiresCapture && c.Tried(KindCaptureRequested):
		return "requires_capture, its capture declined by the processor,"
	case c.Status == StatusRequiresCapture && c.Tried(KindCancelRequested):
		return "requires_capture, its cancel declined by the processor,"
	}
	return string(c.Status)
}

// RefundDecision is what a refund of a charge can do now.
type RefundDecision int

// The refund decisions.
const (
	// RefundWait: the charge may still be captured (pending or requires_capture); try
	// again once it has moved.
	RefundWait RefundDecision = iota
	// RefundReserve: the amount remains to refund; reserve it.
	RefundReserve
	// RefundRefuse: the amount will never be there.
	RefundRefuse
)

// CheckRefund tells what a refund of amount of c can do now, with why when it is refused.
func (c Charge) CheckRefund(amount int64) (RefundDecision, *InvalidRequestError) {
	switch {
	case c.Status == StatusPending || c.Status == StatusRequiresCapture:
		if c.Status == StatusRequiresCapture && c.Operation != nil && c.Operation.Kind == KindCancelRequested {
			return RefundWait, nil
		}
		if limit := c.Amount - c.AmountRefunded; amount > limit {
			return RefundRefuse, tooLarge(amount, limit, c)
		}
		return RefundWait, nil
	case amount > c.Refundable():
		return RefundRefuse, tooLarge(amount, c.Refundable(), c)
	}
	return RefundReserve, nil
}

func tooLarge(amount, left int64, c Charge) *InvalidRequestError {
	if left <= 0 {
		return Invalid(CodeAmountTooLarge, "amount", "charge %s (%s) has nothing left to refund", c.ID, c.Status)
	}
	return Invalid(CodeAmountTooLarge, "amount", "amount %d is more than the %d left to refund", amount, left)
}

// RefundListParams selects a page of a merchant's refunds: newest first, strictly older
// than StartingAfter when it is set, only those of Charge when it is set.
type RefundListParams struct {
	Limit         int
	StartingAfter string
	Charge        string
}

// Page returns the page of rs that p selects, and whether older refunds matching remain:
// rs's refunds of p.Charge (all of them when it is empty), newest first (ids sort by
// creation), strictly older than p.StartingAfter when it is set, at most p.Limit (10 when
// it is not positive).
func (p RefundListParams) Page(rs []Refund) (page []Refund, more bool) {
	limit := p.Limit
	if limit <= 0 {
		limit = 10
	}
	page = []Refund{}
	newest := slices.SortedFunc(slices.Values(rs), func(a, b Refund) int { return strings.Compare(b.ID, a.ID) })
	for _, r := range newest {
		if (p.Charge != "" && r.Charge != p.Charge) || (p.StartingAfter != "" && r.ID >= p.StartingAfter) {
			continue
		}
		if len(page) == limit {
			return page, true
		}
		page = append(page, r)
	}
	return page, false
}

package charge

import (
	"strings"
	"time"
	"unicode"
	"unicode/utf8"
)

// Limits of docs/api.md, "Charges".
const (
	MinAmount           = 1
	MaxAmount           = 99_999_999
	MaxDescriptionLen   = 1000
	MaxCustomerLen      = 255
	MaxMetadataKeys     = 50
	MaxMetadataKeyLen   = 40
	MaxMetadataValueLen = 500
	maxPaymentMethodLen = 255
)

// CreateParams is the body of POST /v1/charges. Pointers tell a missing field from a zero.
type CreateParams struct {
	Amount        *int64            `json:"amount"`
	Currency      *string           `json:"currency"`
	PaymentMethod *string           `json:"payment_method"`
	Capture       *bool             `json:"capture"`
	Description   *string           `json:"description"`
	Customer      *string           `json:"customer"`
	Metadata      map[string]string `json:"metadata"`
}

// Validate checks p against the limits of docs/api.md and returns the first problem found, in
// field order, or nil. Control characters are allowed in the description and metadata
// values only (currency and payment_method cannot hold them by their formats).
func (p *CreateParams) Validate() *InvalidRequestError {
	switch {
	case p.Amount == nil:
		return Invalid(CodeParameterMissing, "amount", "amount is required")
	case *p.Amount < MinAmount || *p.Amount > MaxAmount:
		return Invalid(CodeParameterInvalid, "amount", "amount must be a positive integer from %d to %d", MinAmount, MaxAmount)
	case p.Currency == nil:
		return Invalid(CodeParameterMissing, "currency", "currency is required")
	case !validCurrency(*p.Currency):
		return Invalid(CodeParameterInvalid, "currency", "currency must be an active ISO 4217 code")
	case p.PaymentMethod == nil:
		return Invalid(CodeParameterMissing, "payment_method", "payment_method is required")
	case !ValidPaymentMethod(*p.PaymentMethod):
		return Invalid(CodeParameterInvalid, "payment_method", "payment_method must be a payment method token (pm_...)")
	case p.Description != nil && utf8.RuneCountInString(*p.Description) > MaxDescriptionLen:
		return Invalid(CodeParameterInvalid, "description", "description must be at most %d characters", MaxDescriptionLen)
	case p.Customer != nil && utf8.RuneCountInString(*p.Customer) > MaxCustomerLen:
		return Invalid(CodeParameterInvalid, "customer", "customer must be at most %d characters", MaxCustomerLen)
	case p.Customer != nil && ContainsControl(*p.Customer):
		return Invalid(CodeParameterInvalid, "customer", "customer must not hold control characters")
	}
	return ValidateMetadata(p.Metadata)
}

// ValidateMetadata checks the metadata limits of docs/api.md. Keys are any printable text;
// values may hold anything, control characters included.
func ValidateMetadata(m map[string]string) *InvalidRequestError {
	if len(m) > MaxMetadataKeys {
		return Invalid(CodeParameterInvalid, "metadata", "metadata may have at most %d keys", MaxMetadataKeys)
	}
	for k, v := range m {
		if k == "" || utf8.RuneCountInString(k) > MaxMetadataKeyLen {
			return Invalid(CodeParameterInvalid, "metadata", "metadata keys must be 1 to %d characters", MaxMetadataKeyLen)
		}
		if ContainsControl(k) {
			return Invalid(CodeParameterInvalid, "metadata", "metadata keys must not hold control characters")
		}
		if utf8.RuneCountInString(v) > MaxMetadataValueLen {
			return Invalid(CodeParameterInvalid, "metadata", "metadata values must be at most %d characters", MaxMetadataValueLen)
		}
	}
	return nil
}

// Charge returns the pending charge p describes. Call Validate first.
func (p *CreateParams) Charge(id, merchant string, now TimeNow) Charge {
	// Milliseconds: what the store keeps, so the 202 body and later reads agree.
	t := now().UTC().Truncate(time.Millisecond)
	c := Charge{
		ID:            id,
		Object:        ObjectCharge,
		Merchant:      merchant,
		Amount:        *p.Amount,
		Currency:      strings.ToLower(*p.Currency),
		PaymentMethod: *p.PaymentMethod,
		Capture:       p.Capture == nil || *p.Capture,
		Status:        StatusPending,
		Description:   p.Description,
		Customer:      p.Customer,
		Metadata:      p.Metadata,
		CreatedAt:     t,
		UpdatedAt:     t,
	}
	if c.Metadata == nil {
		c.Metadata = map[string]string{}
	}
	return c
}

// ContainsControl reports whether s holds a control character (Unicode Cc: U+0000-001F,
// U+007F-009F), which docs/api.md allows only in descriptions and metadata values.
func ContainsControl(s string) bool { return strings.ContainsFunc(s, unicode.IsControl) }

// ValidPaymentMethod reports whether s is a payment method token: "pm_" and then letters,
// digits and underscores.
func ValidPaymentMethod(s string) bool {
	if len(s) <= len("pm_") || len(s) > maxPaymentMethodLen || !strings.HasPrefix(s, "pm_") {
		return false
	}
	for _, r := range s[len("pm_"):] {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '_') {
			return false
		}
	}
	return true
}

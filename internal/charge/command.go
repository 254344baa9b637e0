package charge

import "time"

// CommandType names what a queued command asks a worker to do.
type CommandType string

// The command types. Every command concerns one charge and is applied to it in the
// order its worker claims the charge's next transition.
const (
	CommandCreate  CommandType = "charge.create"
	CommandCapture CommandType = "charge.capture"
	CommandCancel  CommandType = "charge.cancel"
	CommandRefund  CommandType = "refund.create"
)

// Command is what the ingest API puts on the queue for a worker: the durable record of an
// accepted request. ChargeID keys every step that handles it.
type Command struct {
	// ID names one accepted capture or cancel (PrefixOperation), so that its own
	// message tells itself apart from another operation's on the same charge.
	ID         string      `json:"id,omitempty"`
	Type       CommandType `json:"type"`
	Merchant   string      `json:"merchant"`
	ChargeID   string      `json:"charge_id"`
	AcceptedAt time.Time   `json:"accepted_at"`
	// Charge is the charge as accepted (status pending), for CommandCreate.
	Charge *Charge `json:"charge,omitempty"`
	// Amount is the amount to capture, for CommandCapture (0: all that was authorized).
	Amount int64 `json:"amount,omitempty"`
	// Version is the version of the charge a capture or cancel was checked against when
	// it was accepted.
	Version int64 `json:"version,omitempty"`
	// Refund is the refund as accepted (status pending), for CommandRefund.
	Refund *Refund `json:"refund,omitempty"`
}

// PendingCharge returns the charge a create command describes, owned by its merchant.
func (c Command) PendingCharge() Charge {
	ch := *c.Charge
	ch.Merchant = c.Merchant
	ch.ID = c.ChargeID
	return ch
}

// PendingRefund returns the refund a refund command describes, owned by its merchant.
func (c Command) PendingRefund() Refund {
	r := *c.Refund
	r.Merchant = c.Merchant
	r.Charge = c.ChargeID
	return r
}

// Valid reports whether c has what its type needs.
func (c Command) Valid() bool {
	if c.ChargeID == "" || c.Merchant == "" {
		return false
	}
	switch c.Type {
	case CommandCreate:
		return c.Charge != nil
	case CommandCapture:
		return c.Amount >= 0
	case CommandCancel:
		return true
	case CommandRefund:
		return c.Refund != nil && c.Refund.ID != "" && c.Refund.Amount > 0
	}
	return false
}

package charge

import "time"

// CommandType names what a queued command asks a worker to do.
type CommandType string

// The command types.
const (
	CommandCreate CommandType = "charge.create"
)

// Command is what the ingest API puts on the queue for a worker: the durable record of an
// accepted request. ChargeID keys every step that handles it.
type Command struct {
	Type       CommandType `json:"type"`
	Merchant   string      `json:"merchant"`
	ChargeID   string      `json:"charge_id"`
	AcceptedAt time.Time   `json:"accepted_at"`
	// Charge is the charge as accepted (status pending), for CommandCreate.
	Charge *Charge `json:"charge,omitempty"`
}

// PendingCharge returns the charge a create command describes, owned by its merchant.
func (c Command) PendingCharge() Charge {
	ch := *c.Charge
	ch.Merchant = c.Merchant
	ch.ID = c.ChargeID
	return ch
}

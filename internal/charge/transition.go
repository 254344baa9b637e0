package charge

import "time"

// Transition is one conditional move of a charge from one status to another, applied only
// if the charge is still in From (DESIGN.md, rule 2). It records its event in the same
// write, so the move and the event id it owes are durable together.
type Transition struct {
	ChargeID        string
	From            Status
	To              Status
	At              time.Time
	AmountCaptured  int64
	AuthorizationID string
	FailureCode     string // empty unless To is StatusFailed
	Event           EventRef
}

// NewTransition builds the transition of c to status to, with the event it writes: the
// next sequence number, a fresh event id, the time of the move and the amounts and failure
// the charge will have. amountCaptured and failureCode are the new values (zero and empty
// where they do not apply); authorizationID is the processor's reference, if any.
func NewTransition(c Charge, to Status, at time.Time, amountCaptured int64, failureCode, authorizationID string) Transition {
	at = at.UTC().Truncate(time.Millisecond)
	return Transition{
		ChargeID:        c.ID,
		From:            c.Status,
		To:              to,
		At:              at,
		AmountCaptured:  amountCaptured,
		AuthorizationID: authorizationID,
		FailureCode:     failureCode,
		Event: EventRef{
			ID:             NewID(PrefixEvent),
			Type:           EventTypeFor(c.Status, to),
			Sequence:       len(c.Events) + 1,
			CreatedAt:      at,
			Status:         to,
			AmountCaptured: amountCaptured,
			AmountRefunded: c.AmountRefunded,
			FailureCode:    failureCode,
		},
	}
}

// ListParams selects a page of a merchant's charges: newest first, strictly older than
// StartingAfter when it is set, only Status when it is set.
type ListParams struct {
	Limit         int
	StartingAfter string
	Status        Status
}

// DeadLetter records a command that was given up on after its last attempt, so that an
// operator can see what happened and nothing disappears silently.
type DeadLetter struct {
	ID       string    `bson:"_id"` // the charge id and command type
	Subject  string    `bson:"subject"`
	Data     []byte    `bson:"data"`
	Reason   string    `bson:"reason"`
	Attempts uint64    `bson:"attempts"`
	At       time.Time `bson:"at"`
}

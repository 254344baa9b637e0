package charge

import (
	"strconv"
	"time"
)

// Transition is one move of a charge from one status to another, the unit of the
// charge's history. Transitions are stored in a log of their own, each under an id made
// of the charge id and its sequence number, so that of two workers deciding the same step
// of the same charge exactly one wins: the insert of a given id succeeds once, on MongoDB
// and on FerretDB alike. The charge document is a view folded from its transitions (Fold);
// a writer that finds the view behind the log writes the fold again, which is idempotent.
type Transition struct {
	ID              string    `bson:"_id"`
	ChargeID        string    `bson:"charge_id"`
	Sequence        int       `bson:"sequence"`
	From            Status    `bson:"from"`
	To              Status    `bson:"to"`
	At              time.Time `bson:"at"`
	AmountCaptured  int64     `bson:"amount_captured"`
	AuthorizationID string    `bson:"authorization_id,omitempty"`
	FailureCode     string    `bson:"failure_code,omitempty"`
	Event           EventRef  `bson:"event"`
}

// TransitionID is the id of the sequence-th transition of a charge.
func TransitionID(chargeID string, sequence int) string {
	return chargeID + "/" + strconv.Itoa(sequence)
}

// NewTransition builds the next transition of c, to status to, with the event it writes:
// the next sequence number, a fresh event id, the time of the move and the amounts and
// failure the charge will have. amountCaptured and failureCode are the new values (zero
// and empty where they do not apply); authorizationID is the processor's reference, if any.
func NewTransition(c Charge, to Status, at time.Time, amountCaptured int64, failureCode, authorizationID string) Transition {
	at = at.UTC().Truncate(time.Millisecond)
	seq := int(c.Version) + 1
	return Transition{
		ID:              TransitionID(c.ID, seq),
		ChargeID:        c.ID,
		Sequence:        seq,
		From:            c.Status,
		To:              to,
		At:              at,
		AmountCaptured:  amountCaptured,
		AuthorizationID: authorizationID,
		FailureCode:     failureCode,
		Event: EventRef{
			ID:             NewID(PrefixEvent),
			Type:           EventTypeFor(c.Status, to),
			Sequence:       seq,
			CreatedAt:      at,
			Status:         to,
			AmountCaptured: amountCaptured,
			AmountRefunded: c.AmountRefunded,
			FailureCode:    failureCode,
		},
	}
}

// Apply returns c after t. t must be c's next transition.
func (c Charge) Apply(t Transition) Charge {
	c.Status = t.To
	c.UpdatedAt = t.At
	c.AmountCaptured = t.AmountCaptured
	if t.AuthorizationID != "" {
		c.AuthorizationID = t.AuthorizationID
	}
	if t.FailureCode != "" {
		code, msg := t.FailureCode, FailureMessage(t.FailureCode)
		c.FailureCode, c.FailureMessage = &code, &msg
	}
	c.Events = append(c.Events, t.Event)
	c.Version = int64(t.Sequence)
	return c
}

// Fold returns the charge that ts, the transitions of c in sequence order, make of c as
// it was accepted. It stops at the first gap in the sequence.
func Fold(c Charge, ts []Transition) Charge {
	c.Status = StatusPending
	c.UpdatedAt = c.CreatedAt
	c.AmountCaptured, c.AmountRefunded = 0, 0
	c.FailureCode, c.FailureMessage = nil, nil
	c.AuthorizationID = ""
	c.Events = nil
	c.Version = 0
	for _, t := range ts {
		if t.ChargeID != c.ID || t.Sequence != int(c.Version)+1 {
			break
		}
		c = c.Apply(t)
	}
	return c
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
	ID       string    `bson:"_id"` // the subject of the command
	Subject  string    `bson:"subject"`
	Data     []byte    `bson:"data"`
	Reason   string    `bson:"reason"`
	Attempts uint64    `bson:"attempts"`
	At       time.Time `bson:"at"`
}

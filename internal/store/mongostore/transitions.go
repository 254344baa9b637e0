package mongostore

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"go.mongodb.org/mongo-driver/v2/mongo"

	"github.com/billing/billing/internal/charge"
)

// transitionDoc is a transition as the transitions collection (the log) stores it.
type transitionDoc struct {
	ID              string                `bson:"_id"`
	ChargeID        string                `bson:"charge_id"`
	Sequence        int                   `bson:"sequence"`
	Kind            charge.TransitionKind `bson:"kind"`
	From            charge.Status         `bson:"from"`
	To              charge.Status         `bson:"to"`
	At              time.Time             `bson:"at"`
	AmountCaptured  int64                 `bson:"amount_captured"`
	Amount          int64                 `bson:"amount,omitempty"`
	AuthorizationID string                `bson:"authorization_id,omitempty"`
	Reference       string                `bson:"reference,omitempty"`
	FailureCode     string                `bson:"failure_code,omitempty"`
	Refund          *refundDoc            `bson:"refund,omitempty"`
	RefundID        string                `bson:"refund_id,omitempty"`
	Delivery        uint64                `bson:"delivery,omitempty"`
	Operation       string                `bson:"operation,omitempty"`
	Event           eventRefDoc           `bson:"event"`
}

func newTransitionDoc(t charge.Transition) transitionDoc {
	return transitionDoc{
		ID:              t.ID,
		ChargeID:        t.ChargeID,
		Sequence:        t.Sequence,
		Kind:            t.Kind,
		From:            t.From,
		To:              t.To,
		At:              t.At,
		AmountCaptured:  t.AmountCaptured,
		Amount:          t.Amount,
		AuthorizationID: t.AuthorizationID,
		Reference:       t.Reference,
		FailureCode:     t.FailureCode,
		Refund:          mapPtr(t.Refund, newRefundDoc),
		RefundID:        t.RefundID,
		Delivery:        t.Delivery,
		Operation:       t.Operation,
		Event:           newEventRefDoc(t.Event),
	}
}

func (d transitionDoc) toTransition() charge.Transition {
	return charge.Transition{
		ID:              d.ID,
		ChargeID:        d.ChargeID,
		Sequence:        d.Sequence,
		Kind:            d.Kind,
		From:            d.From,
		To:              d.To,
		At:              d.At,
		AmountCaptured:  d.AmountCaptured,
		Amount:          d.Amount,
		AuthorizationID: d.AuthorizationID,
		Reference:       d.Reference,
		FailureCode:     d.FailureCode,
		Refund:          mapPtr(d.Refund, refundDoc.toRefund),
		RefundID:        d.RefundID,
		Delivery:        d.Delivery,
		Operation:       d.Operation,
		Event:           d.Event.toEventRef(),
	}
}

// ClaimTransitions records transitions in the log, in one unordered insert, and returns
// the ids of the charges whose claim lost. Each transition's id names its charge and
// sequence number, so of two workers that decide the same step of a charge exactly one
// insert succeeds: the log, not the charge document, arbitrates. Callers read the winners
// of lost claims with TransitionsFrom.
func (s *Store) ClaimTransitions(ctx context.Context, ts []charge.Transition) ([]string, error) {
	taken, err := insertNew(ctx, s.transitions, mapSlice(ts, newTransitionDoc))
	if err != nil {
		return nil, fmt.Errorf("claiming %d transitions: %w", len(ts), err)
	}
	lost := make([]string, len(taken))
	for i, idx := range taken {
		lost[i] = ts[idx].ChargeID
	}
	return lost, nil
}

// TransitionsFrom returns, for each charge id, its logged transitions from sequence
// number from[id] on, in order. It reads them by id (charge id and sequence), so a charge
// costs one read more than it has transitions to return.
func (s *Store) TransitionsFrom(ctx context.Context, from map[string]int) (map[string][]charge.Transition, error) {
	var mu sync.Mutex
	out := make(map[string][]charge.Transition, len(from))
	err := s.eachID(ctx, keys(from), func(ctx context.Context, id string) error {
		var ts []charge.Transition
		for seq := max(from[id], 1); ; seq++ {
			var d transitionDoc
			err := s.transitions.FindOne(ctx, byID(charge.TransitionID(id, seq))).Decode(&d)
			if errors.Is(err, mongo.ErrNoDocuments) {
				break
			}
			if err != nil {
				return translate(err)
			}
			ts = append(ts, d.toTransition())
		}
		mu.Lock()
		out[id] = ts
		mu.Unlock()
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("reading transitions of %d charges: %w", len(from), err)
	}
	return out, nil
}

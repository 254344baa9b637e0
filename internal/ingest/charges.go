// Package ingest accepts merchants' requests: it runs them once per idempotency key, puts
// the accepted commands on the queue, and reads charges back, from the store or, before a
// worker has written them, from the queue itself. It declares the small interfaces it
// needs; the queue and store adapters implement them.
package ingest

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"sync"
	"time"

	"github.com/billing/billing/internal/charge"
)

// KindCommand is the action that puts a command on the queue.
const KindCommand = "command"

// Publisher puts an accepted command on the queue and returns once it is durably stored:
// data, cmd's JSON encoding, is the message. An error that wraps ErrOutcomeUnknown means
// the command may have been stored.
type Publisher interface {
	PublishCommand(ctx context.Context, cmd charge.Command, data []byte) error
}

// PublishAction is the executor of KindCommand: the action's payload, the command
// encoded once when the request was accepted, is the message.
func PublishAction(p Publisher) func(ctx context.Context, a Action) error {
	return func(ctx context.Context, a Action) error {
		var cmd charge.Command
		if err := a.Decode(&cmd); err != nil {
			return fmt.Errorf("decoding command: %w", err)
		}
		return p.PublishCommand(ctx, cmd, a.Payload)
	}
}

// CommandWitness is the Witness of KindCommand: a charge's create command has taken effect
// once the charge is readable, from its command on the queue or from the store (Get), and
// a refund's once the refund is (Refunds.Get).
func CommandWitness(charges *Charges, refunds *Refunds) Witness {
	return func(ctx context.Context, payload json.RawMessage) (bool, error) {
		var cmd charge.Command
		if err := json.Unmarshal(payload, &cmd); err != nil {
			return false, fmt.Errorf("decoding command: %w", err)
		}
		var err error
		switch {
		case cmd.Type == charge.CommandCreate:
			_, err = charges.Get(ctx, cmd.Merchant, cmd.ChargeID)
		case cmd.Type == charge.CommandRefund && cmd.Refund != nil:
			_, err = refunds.Get(ctx, cmd.Merchant, cmd.Refund.ID)
		default:
			return false, fmt.Errorf("no witness of %s commands", cmd.Type)
		}
		if errors.Is(err, charge.ErrNotFound) {
			return false, nil
		}
		return err == nil, err
	}
}

// ChargeStore reads charges a worker has written.
type ChargeStore interface {
	GetCharge(ctx context.Context, merchant, id string) (charge.Charge, error)
	ListCharges(ctx context.Context, merchant string, p charge.ListParams) ([]charge.Charge, bool, error)
}

// CommandLookup finds an accepted command that a worker may not have handled yet.
type CommandLookup interface {
	LookupCommand(ctx context.Context, chargeID string) (charge.Command, error)
}

// Waiter signals when an event of a charge is published. The returned func stops it.
type Waiter interface {
	WaitForCharge(ctx context.Context, chargeID string) (<-chan struct{}, func(), error)
}

// Charges is the ingest side of charges: create, get, wait, list.
type Charges struct {
	Idempotency *Idempotency
	Store       ChargeStore
	Commands    CommandLookup
	Waiter      Waiter
	NowFunc     charge.TimeNow
	// EncodeFunc renders a charge as the API's response body.
	EncodeFunc func(charge.Charge) ([]byte, error)
	// Draining, once closed, ends every Wait: the server is shutting down. Nil: never.
	Draining <-chan struct{}
	// MaxWaits is how many Waits one merchant may hold at once in this process; beyond
	// it a Wait answers at once, so that no merchant can hold goroutines and
	// subscriptions without bound. Defaults to DefaultMaxWaits.
	MaxWaits int

	waitsMu sync.Mutex
	waits   map[string]int // held Waits by merchant
}

// DefaultMaxWaits is the number of held Waits per merchant of docs/api.md.
const DefaultMaxWaits = 20

// Create accepts a charge: a new id, the pending charge as 202 body, a create command on
// the queue, all under req's idempotency key. p must be valid.
func (s *Charges) Create(ctx context.Context, req Request, p *charge.CreateParams) (Response, error) {
	id := charge.NewID(charge.PrefixCharge)
	c := p.Charge(id, req.Merchant, s.NowFunc)
	body, err := s.EncodeFunc(c.Public())
	if err != nil {
		return Response{}, fmt.Errorf("encoding charge: %w", err)
	}
	cmd := charge.Command{
		Type:       charge.CommandCreate,
		Merchant:   req.Merchant,
		ChargeID:   id,
		AcceptedAt: c.CreatedAt,
		Charge:     &c,
	}
	return s.Idempotency.Submit(ctx, req, Response{Status: http.StatusAccepted, Body: body}, NewAction(KindCommand, cmd))
}

// Get returns a merchant's charge. A charge is readable from the moment its 202 was sent:
// before a worker has stored it, it is read from its accepted command. The store is asked
// again after a miss on the queue, because a worker stores a charge before it acknowledges
// (and so removes) its command: whichever moment the worker passes in between, one of the
// three reads sees the charge.
func (s *Charges) Get(ctx context.Context, merchant, id string) (charge.Charge, error) {
	if !charge.ValidID(charge.PrefixCharge, id) {
		return charge.Charge{}, charge.ErrNotFound
	}
	c, err := s.Store.GetCharge(ctx, merchant, id)
	if !errors.Is(err, charge.ErrNotFound) {
		return c, err
	}
	cmd, err := s.Commands.LookupCommand(ctx, id)
	switch {
	case err == nil && cmd.Merchant == merchant && cmd.Type == charge.CommandCreate && cmd.Charge != nil:
		return cmd.PendingCharge(), nil
	case err == nil, errors.Is(err, charge.ErrNotFound):
		return s.Store.GetCharge(ctx, merchant, id)
	default:
		return charge.Charge{}, err
	}
}

// Wait returns the charge once it is no longer pending, when wait has passed, or when
// Draining is closed: a poll in flight when the server stops is answered with the charge
// as it is (the client polls again, elsewhere), not cut off.
func (s *Charges) Wait(ctx context.Context, merchant, id string, wait time.Duration) (charge.Charge, error) {
	if !charge.ValidID(charge.PrefixCharge, id) {
		return charge.Charge{}, charge.ErrNotFound
	}
	if !s.holdWait(merchant) {
		return s.Get(ctx, merchant, id)
	}
	defer s.releaseWait(merchant)
	changed, stop, err := s.Waiter.WaitForCharge(ctx, id)
	if err != nil {
		return charge.Charge{}, err
	}
	defer stop()
	c, err := s.Get(ctx, merchant, id)
	if err != nil || c.Status != charge.StatusPending {
		return c, err
	}
	timer := time.NewTimer(wait)
	defer timer.Stop()
	select {
	case <-changed:
	case <-timer.C:
	case <-s.Draining:
	case <-ctx.Done():
		return charge.Charge{}, ctx.Err()
	}
	return s.Get(ctx, merchant, id)
}

// holdWait takes one of merchant's places for a held Wait, if one is free.
func (s *Charges) holdWait(merchant string) bool {
	s.waitsMu.Lock()
	defer s.waitsMu.Unlock()
	if s.waits[merchant] >= cmp.Or(s.MaxWaits, DefaultMaxWaits) {
		return false
	}
	if s.waits == nil {
		s.waits = map[string]int{}
	}
	s.waits[merchant]++
	return true
}

func (s *Charges) releaseWait(merchant string) {
	s.waitsMu.Lock()
	defer s.waitsMu.Unlock()
	if s.waits[merchant]--; s.waits[merchant] <= 0 {
		delete(s.waits, merchant)
	}
}

// List returns a page of a merchant's charges, newest first.
func (s *Charges) List(ctx context.Context, merchant string, p charge.ListParams) ([]charge.Charge, bool, error) {
	return s.Store.ListCharges(ctx, merchant, p)
}

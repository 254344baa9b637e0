package sqlitestore

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"

	"github.com/billing/billing/internal/charge"
)

// A charge's row has columns for what lists filter on (merchant, status) and what
// SaveCharges compares (version), and two JSON documents: accepted, what the charge was
// accepted with, written once; and state, what its history made of it, which SaveCharges
// rewrites. So a view is written forward without touching what never changes.

// chargeAccepted is what a charge was accepted with.
type chargeAccepted struct {
	Amount        int64             `json:"amount"`
	Currency      string            `json:"currency"`
	PaymentMethod string            `json:"payment_method"`
	Capture       bool              `json:"capture"`
	Description   *string           `json:"description"`
	Customer      *string           `json:"customer"`
	Metadata      map[string]string `json:"metadata"`
	CreatedAt     int64             `json:"created_at"`
}

// chargeState is what a charge's history made of it, apart from its status and version.
// Lists that are empty are left out and read back nil, as the mongodb engine does.
type chargeState struct {
	AmountCaptured  int64         `json:"amount_captured"`
	AmountRefunded  int64         `json:"amount_refunded"`
	FailureCode     *string       `json:"failure_code"`
	FailureMessage  *string       `json:"failure_message"`
	AuthorizationID string        `json:"authorization_id,omitempty"`
	UpdatedAt       int64         `json:"updated_at"`
	Events          []eventRefRow `json:"events,omitempty"`
	Operation       *operationRow `json:"operation,omitempty"`
	Ended           []string      `json:"ended,omitempty"`
	Refunds         []refundRow   `json:"refunds,omitempty"`
}

// chargeRow is a whole charge in one document, as an event's data holds it.
type chargeRow struct {
	ID       string `json:"id"`
	Merchant string `json:"merchant"`
	Status   string `json:"status"`
	Version  int64  `json:"version"`
	chargeAccepted
	chargeState
}

// eventRefRow is a charge.EventRef.
type eventRefRow struct {
	ID             string `json:"id"`
	Type           string `json:"type"`
	Sequence       int    `json:"sequence"`
	CreatedAt      int64  `json:"created_at"`
	Status         string `json:"status"`
	AmountCaptured int64  `json:"amount_captured"`
	AmountRefunded int64  `json:"amount_refunded"`
	FailureCode    string `json:"failure_code,omitempty"`
	RefundID       string `json:"refund_id,omitempty"`
}

// operationRow is a charge.Operation.
type operationRow struct {
	Kind     string `json:"kind"`
	Amount   int64  `json:"amount,omitempty"`
	Delivery uint64 `json:"delivery,omitempty"`
}

func toChargeRow(c charge.Charge) chargeRow {
	return chargeRow{
		ID:       c.ID,
		Merchant: c.Merchant,
		Status:   string(c.Status),
		Version:  c.Version,
		chargeAccepted: chargeAccepted{
			Amount:        c.Amount,
			Currency:      c.Currency,
			PaymentMethod: c.PaymentMethod,
			Capture:       c.Capture,
			Description:   c.Description,
			Customer:      c.Customer,
			Metadata:      c.Metadata,
			CreatedAt:     millis(c.CreatedAt),
		},
		chargeState: chargeState{
			AmountCaptured:  c.AmountCaptured,
			AmountRefunded:  c.AmountRefunded,
			FailureCode:     c.FailureCode,
			FailureMessage:  c.FailureMessage,
			AuthorizationID: c.AuthorizationID,
			UpdatedAt:       millis(c.UpdatedAt),
			Events:          mapSlice(c.Events, toEventRefRow),
			Operation:       toOperationRow(c.Operation),
			Ended:           mapSlice(c.Ended, func(k charge.TransitionKind) string { return string(k) }),
			Refunds:         mapSlice(c.Refunds, toRefundRow),
		},
	}
}

func (r chargeRow) charge() charge.Charge {
	return charge.Charge{
		ID:              r.ID,
		Merchant:        r.Merchant,
		Amount:          r.Amount,
		Currency:        r.Currency,
		PaymentMethod:   r.PaymentMethod,
		Capture:         r.Capture,
		Status:          charge.Status(r.Status),
		AmountCaptured:  r.AmountCaptured,
		AmountRefunded:  r.AmountRefunded,
		FailureCode:     r.FailureCode,
		FailureMessage:  r.FailureMessage,
		Description:     r.Description,
		Customer:        r.Customer,
		Metadata:        r.Metadata,
		CreatedAt:       fromMillis(r.chargeAccepted.CreatedAt),
		UpdatedAt:       fromMillis(r.UpdatedAt),
		AuthorizationID: r.AuthorizationID,
		Events:          mapSlice(r.Events, eventRefRow.eventRef),
		Version:         r.Version,
		Operation:       r.Operation.operation(),
		Ended:           mapSlice(r.Ended, func(k string) charge.TransitionKind { return charge.TransitionKind(k) }),
		Refunds:         mapSlice(r.Refunds, refundRow.refund),
	}
}

func toEventRefRow(e charge.EventRef) eventRefRow {
	return eventRefRow{
		ID:             e.ID,
		Type:           e.Type,
		Sequence:       e.Sequence,
		CreatedAt:      millis(e.CreatedAt),
		Status:         string(e.Status),
		AmountCaptured: e.AmountCaptured,
		AmountRefunded: e.AmountRefunded,
		FailureCode:    e.FailureCode,
		RefundID:       e.RefundID,
	}
}

func (r eventRefRow) eventRef() charge.EventRef {
	return charge.EventRef{
		ID:             r.ID,
		Type:           r.Type,
		Sequence:       r.Sequence,
		CreatedAt:      fromMillis(r.CreatedAt),
		Status:         charge.Status(r.Status),
		AmountCaptured: r.AmountCaptured,
		AmountRefunded: r.AmountRefunded,
		FailureCode:    r.FailureCode,
		RefundID:       r.RefundID,
	}
}

func toOperationRow(o *charge.Operation) *operationRow {
	if o == nil {
		return nil
	}
	return &operationRow{Kind: string(o.Kind), Amount: o.Amount, Delivery: o.Delivery}
}

func (r *operationRow) operation() *charge.Operation {
	if r == nil {
		return nil
	}
	return &charge.Operation{Kind: charge.TransitionKind(r.Kind), Amount: r.Amount, Delivery: r.Delivery}
}

// chargeColumns are the columns scanCharge reads, in its order.
const chargeColumns = "id, merchant, status, version, accepted, state"

// scanCharge reads a charge from a row of chargeColumns.
func scanCharge(sc scanner) (charge.Charge, error) {
	var r chargeRow
	var accepted, state []byte
	if err := sc.Scan(&r.ID, &r.Merchant, &r.Status, &r.Version, &accepted, &state); err != nil {
		return charge.Charge{}, err
	}
	if err := json.Unmarshal(accepted, &r.chargeAccepted); err != nil {
		return charge.Charge{}, fmt.Errorf("decoding charge %s: %w", r.ID, err)
	}
	if err := json.Unmarshal(state, &r.chargeState); err != nil {
		return charge.Charge{}, fmt.Errorf("decoding charge %s: %w", r.ID, err)
	}
	return r.charge(), nil
}

// encodeState returns the state document of c.
func encodeState(c charge.Charge) (string, error) {
	state, err := json.Marshal(toChargeRow(c).chargeState)
	if err != nil {
		return "", rejected("encoding charge %s: %v", c.ID, err)
	}
	return string(state), nil
}

// GetCharge returns the charge id of merchant as stored (call Public before showing it).
// It returns charge.ErrNotFound if there is no such charge or it belongs to another
// merchant.
func (s *Store) GetCharge(ctx context.Context, merchant, id string) (charge.Charge, error) {
	row := s.queryRow(ctx, "SELECT "+chargeColumns+" FROM charges WHERE id = ? AND merchant = ?", id, merchant)
	c, err := scanCharge(row)
	if err != nil {
		return charge.Charge{}, s.wrap(fmt.Sprintf("getting charge %s", id), err)
	}
	return c, nil
}

// ListCharges returns a page of merchant's charges, newest first: at most p.Limit (10 if
// it is not positive), only those older than p.StartingAfter when it is set, only those in
// p.Status when it is set. hasMore reports whether older charges matching remain.
func (s *Store) ListCharges(ctx context.Context, merchant string, p charge.ListParams) (charges []charge.Charge, hasMore bool, err error) {
	q := page{columns: chargeColumns, table: "charges"}
	q.and("merchant = ?", merchant)
	if p.Status != "" {
		q.and("status = ?", string(p.Status))
	}
	if p.Customer != "" {
		q.and("accepted ->> '$.customer' = ?", p.Customer) // the index of migration 4
	}
	charges, hasMore, err = list(ctx, s, q, p.Limit, p.StartingAfter, scanCharge)
	if err != nil {
		return nil, false, s.wrap("listing charges", err)
	}
	return charges, hasMore, nil
}

// ChargesByID returns the charges with the given ids, whoever their merchant, keyed by
// id. Ids with no charge are absent from the map. Workers use it to read a batch: one
// query, the ids passed as one JSON array.
func (s *Store) ChargesByID(ctx context.Context, ids []string) (map[string]charge.Charge, error) {
	found := make(map[string]charge.Charge, len(ids))
	if len(ids) == 0 {
		return found, nil
	}
	arg, err := json.Marshal(ids)
	if err != nil {
		return nil, fmt.Errorf("reading %d charges: %w", len(ids), err)
	}
	rows, err := s.query(ctx, "SELECT "+chargeColumns+" FROM charges WHERE id IN (SELECT value FROM json_each(?))", string(arg))
	if err != nil {
		return nil, s.wrap(fmt.Sprintf("reading %d charges", len(ids)), err)
	}
	cs, err := scanAll(rows, scanCharge)
	if err != nil {
		return nil, s.wrap(fmt.Sprintf("reading %d charges", len(ids)), err)
	}
	for _, c := range cs {
		found[c.ID] = c
	}
	return found, nil
}

// InsertCharges writes new charges in one transaction and returns the ids of those
// already stored, which are left as they are: a redelivered command never overwrites the
// progress of an earlier delivery. Callers bring those up to date with SaveCharges.
func (s *Store) InsertCharges(ctx context.Context, cs []charge.Charge) ([]string, error) {
	const insert = "INSERT INTO charges (" + chargeColumns + ") VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (id) DO NOTHING"
	taken, err := s.insertBatch(ctx, insert, len(cs), func(i int) ([]any, error) {
		r := toChargeRow(cs[i])
		accepted, err := json.Marshal(r.chargeAccepted)
		if err != nil {
			return nil, rejected("encoding charge %s: %v", r.ID, err)
		}
		state, err := encodeState(cs[i])
		if err != nil {
			return nil, err
		}
		return []any{r.ID, r.Merchant, r.Status, r.Version, string(accepted), state}, nil
	})
	if err != nil {
		return nil, s.wrap(fmt.Sprintf("inserting %d charges", len(cs)), err)
	}
	ids := make([]string, len(taken))
	for i, idx := range taken {
		ids[i] = cs[idx].ID
	}
	return ids, nil
}

// SaveCharges writes the folded state of charges (status, version and state: amounts,
// failure, events, the operation under way and those ended, the refunds), in one
// transaction, each only over an older version: a view only moves forward, so a slower
// writer never puts an older view back. A charge not stored is not an error.
func (s *Store) SaveCharges(ctx context.Context, cs []charge.Charge) error {
	if len(cs) == 0 {
		return nil
	}
	err := s.inTx(ctx, func(tx writeTx) error {
		stmt, err := tx.prepare(ctx, "UPDATE charges SET status = ?, version = ?, state = ? WHERE id = ? AND version < ?")
		if err != nil {
			return err
		}
		defer func() { _ = stmt.Close() }()
		for _, c := range cs {
			state, err := encodeState(c)
			if err != nil {
				return err
			}
			if _, err := stmt.ExecContext(ctx, string(c.Status), c.Version, state, c.ID, c.Version); err != nil {
				return err
			}
		}
		return nil
	})
	return s.wrap(fmt.Sprintf("saving %d charges", len(cs)), err)
}

// Transitions: the log of each charge, keyed by (charge id, sequence). A transition's id
// is made of the two (charge.TransitionID) and is not stored apart.

// transitionRow is a charge.Transition apart from its key.
type transitionRow struct {
	Kind            string      `json:"kind"`
	From            string      `json:"from"`
	To              string      `json:"to"`
	At              int64       `json:"at"`
	AmountCaptured  int64       `json:"amount_captured"`
	Amount          int64       `json:"amount,omitempty"`
	AuthorizationID string      `json:"authorization_id,omitempty"`
	Reference       string      `json:"reference,omitempty"`
	FailureCode     string      `json:"failure_code,omitempty"`
	Refund          *refundRow  `json:"refund,omitempty"`
	RefundID        string      `json:"refund_id,omitempty"`
	Delivery        uint64      `json:"delivery,omitempty"`
	Operation       string      `json:"operation,omitempty"`
	Event           eventRefRow `json:"event"`
}

func toTransitionRow(t charge.Transition) transitionRow {
	r := transitionRow{
		Kind:            string(t.Kind),
		From:            string(t.From),
		To:              string(t.To),
		At:              millis(t.At),
		AmountCaptured:  t.AmountCaptured,
		Amount:          t.Amount,
		AuthorizationID: t.AuthorizationID,
		Reference:       t.Reference,
		FailureCode:     t.FailureCode,
		RefundID:        t.RefundID,
		Delivery:        t.Delivery,
		Operation:       t.Operation,
		Event:           toEventRefRow(t.Event),
	}
	if t.Refund != nil {
		refund := toRefundRow(*t.Refund)
		r.Refund = &refund
	}
	return r
}

func (r transitionRow) transition(chargeID string, sequence int) charge.Transition {
	t := charge.Transition{
		ID:              charge.TransitionID(chargeID, sequence),
		ChargeID:        chargeID,
		Sequence:        sequence,
		Kind:            charge.TransitionKind(r.Kind),
		From:            charge.Status(r.From),
		To:              charge.Status(r.To),
		At:              fromMillis(r.At),
		AmountCaptured:  r.AmountCaptured,
		Amount:          r.Amount,
		AuthorizationID: r.AuthorizationID,
		Reference:       r.Reference,
		FailureCode:     r.FailureCode,
		RefundID:        r.RefundID,
		Delivery:        r.Delivery,
		Operation:       r.Operation,
		Event:           r.Event.eventRef(),
	}
	if r.Refund != nil {
		refund := r.Refund.refund()
		t.Refund = &refund
	}
	return t
}

// transitionColumns are the columns scanTransition reads, in its order.
const transitionColumns = "charge_id, sequence, doc"

func scanTransition(sc scanner) (charge.Transition, error) {
	var chargeID string
	var sequence int
	var doc []byte
	if err := sc.Scan(&chargeID, &sequence, &doc); err != nil {
		return charge.Transition{}, err
	}
	var r transitionRow
	if err := json.Unmarshal(doc, &r); err != nil {
		return charge.Transition{}, fmt.Errorf("decoding transition %s: %w", charge.TransitionID(chargeID, sequence), err)
	}
	return r.transition(chargeID, sequence), nil
}

// ClaimTransitions records transitions in the log, in one transaction, and returns the
// ids of the charges whose claim lost. The key of a transition is its charge and
// sequence number, so of two workers that decide the same step of a charge exactly one
// insert succeeds: the log, not the charge row, arbitrates. Callers read the winners of
// lost claims with TransitionsFrom. A transition whose id is not made of its charge and
// sequence is refused (charge.ErrRejected): its claim would arbitrate nothing.
func (s *Store) ClaimTransitions(ctx context.Context, ts []charge.Transition) ([]string, error) {
	const insert = "INSERT INTO transitions (" + transitionColumns + ") VALUES (?, ?, ?) ON CONFLICT (charge_id, sequence) DO NOTHING"
	taken, err := s.insertBatch(ctx, insert, len(ts), func(i int) ([]any, error) {
		t := ts[i]
		if t.ID != charge.TransitionID(t.ChargeID, t.Sequence) {
			return nil, rejected("transition %s is not %s", t.ID, charge.TransitionID(t.ChargeID, t.Sequence))
		}
		doc, err := json.Marshal(toTransitionRow(t))
		if err != nil {
			return nil, rejected("encoding transition %s: %v", t.ID, err)
		}
		return []any{t.ChargeID, t.Sequence, string(doc)}, nil
	})
	if err != nil {
		return nil, s.wrap(fmt.Sprintf("claiming %d transitions", len(ts)), err)
	}
	lost := make([]string, len(taken))
	for i, idx := range taken {
		lost[i] = ts[idx].ChargeID
	}
	return lost, nil
}

// TransitionsFrom returns, for each charge id, its logged transitions from sequence
// number from[id] on (1 if lower), in order, up to the first gap. It is one query: the
// charge ids and sequence numbers are passed as one JSON object, and each charge's
// transitions are a range of the log's primary key.
func (s *Store) TransitionsFrom(ctx context.Context, from map[string]int) (map[string][]charge.Transition, error) {
	out := make(map[string][]charge.Transition, len(from))
	if len(from) == 0 {
		return out, nil
	}
	arg, err := json.Marshal(from)
	if err != nil {
		return nil, fmt.Errorf("reading transitions of %d charges: %w", len(from), err)
	}
	// CROSS JOIN keeps json_each the outer loop: a lookup in the log per charge.
	rows, err := s.query(ctx, "SELECT t.charge_id, t.sequence, t.doc FROM json_each(?) AS f CROSS JOIN transitions AS t"+
		" WHERE t.charge_id = f.key AND t.sequence >= f.value", string(arg))
	if err != nil {
		return nil, s.wrap(fmt.Sprintf("reading transitions of %d charges", len(from)), err)
	}
	all, err := scanAll(rows, scanTransition)
	if err != nil {
		return nil, s.wrap(fmt.Sprintf("reading transitions of %d charges", len(from)), err)
	}
	byCharge := make(map[string][]charge.Transition, len(from))
	for _, t := range all {
		byCharge[t.ChargeID] = append(byCharge[t.ChargeID], t)
	}
	for id, start := range from {
		ts := byCharge[id]
		slices.SortFunc(ts, func(a, b charge.Transition) int { return a.Sequence - b.Sequence })
		var run []charge.Transition
		for i, t := range ts {
			if t.Sequence != max(start, 1)+i {
				break
			}
			run = append(run, t)
		}
		out[id] = run
	}
	return out, nil
}

// EachCharge calls f with every stored charge, for reconciliation.
func (s *Store) EachCharge(ctx context.Context, f func(charge.Charge) error) error {
	return s.wrap("walking charges", each(ctx, s, "SELECT "+chargeColumns+" FROM charges", scanCharge, f))
}

// EachTransition calls f with every logged transition, for reconciliation.
func (s *Store) EachTransition(ctx context.Context, f func(charge.Transition) error) error {
	return s.wrap("walking transitions", each(ctx, s, "SELECT "+transitionColumns+" FROM transitions", scanTransition, f))
}

package main

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"fmt"
	"iter"
	"os"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/billing/billing/internal/charge"
	"github.com/billing/billing/internal/secret"
	"github.com/billing/billing/internal/store"
	"github.com/billing/billing/internal/webhook"
	"github.com/billing/billing/webhooksig"
)

// The merchants the reads are timed for, and the shape of what is seeded for them.
const (
	// freshMerchant is read on the empty store; largeMerchant and smallMerchant (one of
	// smallMerchants) after growth.
	freshMerchant  = "bench_fresh"
	largeMerchant  = "bench_large"
	smallMerchants = 100
	// smallCharges is the charges of each small merchant.
	smallCharges = 20
	// freshCharges is the fresh merchant's: enough that its every list read, the
	// status=failed filter included (one charge in failEvery), answers a full page of 10
	// and has_more, as the large merchant's does, so that the two compare like for like.
	freshCharges = 11 * failEvery
	// failEvery: one charge in failEvery is declined (pm_card_chargeDeclined: failed,
	// card_declined, no ledger entries); refundEvery: one in refundEvery is refunded in
	// part once (refund_reserved and refunded transitions, charge.refunded event, two
	// more ledger entries, a refund document).
	failEvery   = 20
	refundEvery = 50
	// seedBatch is how many charges' records go to the store's batch methods at once.
	seedBatch = 500
	// largeDeliveries and smallDeliveries are the delivery attempts inserted for the
	// endpoint of each merchant read (one InsertDelivery each, as the deliverer does).
	largeDeliveries = 1000
	smallDeliveries = 20
	// sampleSize bounds the ids kept per merchant for the reads.
	sampleSize = 200
	// declinedMethod is the simulated processor's declined card.
	declinedMethod = "pm_card_chargeDeclined"
	// hookURL is the seeded endpoints' URL: nothing is ever delivered to it (no event of
	// theirs is published), and the name cannot resolve.
	hookURL = "https://bench.invalid/hooks"
)

// smallMerchant is the small merchant whose reads are timed: one from the middle.
var smallMerchant = smallMerchantName(smallMerchants / 2)

func smallMerchantName(i int) string { return fmt.Sprintf("bench_small_%03d", i) }

// benchCustomers is how many customers a seeded merchant's charges are spread over: one
// customer of the large merchant has a thousandth of its charges.
const benchCustomers = 1000

// benchCustomer is the customer of a merchant's charge i.
func benchCustomer(i int) string { return fmt.Sprintf("cus_%04d", i%benchCustomers) }

// merchantSample is what the reads need of a seeded merchant: ids from its history.
type merchantSample struct {
	name    string
	charges int
	// chargeIDs are spread over its history (every charges/sampleSize-th), for reads by
	// id; middle is the one half-way through, the cursor of a page deep in.
	chargeIDs []string
	middle    string
	// refunded are charges that have a refund; events, some of its events.
	refunded []string
	events   []string
	// endpoint is its webhook endpoint, with deliveries attempts.
	endpoint   string
	deliveries int
}

// keep records charge i of the merchant's history if the reads need it.
func (m *merchantSample) keep(i int, r *chargeRecords) {
	if every := max(1, m.charges/sampleSize); i%every == 0 && len(m.chargeIDs) < sampleSize {
		m.chargeIDs = append(m.chargeIDs, r.view.ID)
	}
	if i == m.charges/2 {
		m.middle = r.view.ID
	}
	if len(r.refunds) > 0 && len(m.refunded) < sampleSize {
		m.refunded = append(m.refunded, r.view.ID)
	}
	for _, e := range r.events {
		if len(m.events) < max(largeDeliveries, smallDeliveries) {
			m.events = append(m.events, e.ID)
		}
	}
}

// chargeRecords are the records of one charge's history, as the worker writes them.
type chargeRecords struct {
	view        charge.Charge
	transitions []charge.Transition
	events      []charge.Event
	entries     []charge.LedgerEntry
	refunds     []charge.Refund
}

// history builds charge i of merchant, accepted and settled at now, the way the ingest
// and the worker make it: a charge as CreateParams.Charge accepts it; its authorization
// (charge.NewTransition, as settleCharges gets it from the processor), declined for one in
// failEvery; for one in refundEvery, a refund of half of it reserved and settled; the view
// folded from the log (charge.Fold), each transition's event (charge.NewEvent) and the
// ledger of the whole log (charge.Ledger).
func history(merchant string, i int, now time.Time) chargeRecords {
	amount := int64(100 + (i*7919)%99_900)
	currency, method, description, customer := "usd", "pm_card_visa", "bench seeded charge", benchCustomer(i)
	failed, refunded := i%failEvery == failEvery/2, i%refundEvery == 1
	if failed {
		method = declinedMethod
	}
	p := charge.CreateParams{
		Amount: &amount, Currency: &currency, PaymentMethod: &method, Description: &description, Customer: &customer,
		Metadata: map[string]string{"order_id": strconv.Itoa(i)},
	}
	base := p.Charge(charge.NewID(charge.PrefixCharge), merchant, func() time.Time { return now })
	var ts []charge.Transition
	if failed {
		ts = append(ts, charge.NewTransition(base, charge.StatusFailed, now, 0, charge.FailureCardDeclined, ""))
	} else {
		ts = append(ts, charge.NewTransition(base, charge.StatusSucceeded, now, amount, "", "sim_auth_"+base.ID))
	}
	if refunded {
		c := charge.Fold(base, ts)
		reason := "requested_by_customer"
		r := charge.Refund{
			ID: charge.NewID(charge.PrefixRefund), Merchant: merchant, Charge: base.ID, Amount: max(1, amount/2),
			Currency: currency, Status: charge.RefundPending, Reason: &reason, CreatedAt: base.CreatedAt, UpdatedAt: base.CreatedAt,
		}
		reserve := c.ReserveRefund(now, r, 1)
		c = c.Apply(reserve)
		ts = append(ts, reserve, c.RefundSucceeded(now, r.ID, "sim_re_"+r.ID))
	}
	rec := chargeRecords{view: charge.Fold(base, ts), transitions: ts, entries: charge.Ledger(base, ts)}
	for _, t := range ts {
		if t.Event.ID != "" {
			rec.events = append(rec.events, charge.NewEvent(rec.view, t.Event))
		}
	}
	for _, r := range rec.view.Refunds {
		if r.Status != charge.RefundPending {
			rec.refunds = append(rec.refunds, r)
		}
	}
	return rec
}

// slot is one charge to seed: the i-th of merchant.
type slot struct {
	merchant string
	i        int
}

// growthPlan is the order of the growth phase's charges: the large merchant's grow
// charges, with the small merchants' smallMerchants × smallCharges spread evenly among
// them, round-robin, so that every merchant's history spans the whole store.
func growthPlan(grow int) iter.Seq[slot] {
	smallTotal := smallMerchants * smallCharges
	return func(yield func(slot) bool) {
		small := 0
		emitSmall := func(upTo int) bool {
			for ; small < upTo; small++ {
				if !yield(slot{smallMerchantName(small % smallMerchants), small / smallMerchants}) {
					return false
				}
			}
			return true
		}
		for j := range grow {
			if !yield(slot{largeMerchant, j}) || !emitSmall(int(int64(j+1)*int64(smallTotal)/int64(grow))) {
				return
			}
		}
		emitSmall(smallTotal)
	}
}

// merchantPlan is the charges of one merchant alone.
func merchantPlan(merchant string, n int) iter.Seq[slot] {
	return func(yield func(slot) bool) {
		for i := range n {
			if !yield(slot{merchant, i}) {
				return
			}
		}
	}
}

// seedStats counts what a seeding wrote, and how long it took.
type seedStats struct {
	charges, transitions, events, entries, refunds, endpoints, deliveries int
	elapsed                                                               time.Duration
}

// records is every record written: documents on mongodb, rows on sqlite (besides the
// sqlite engine's own balance rows).
func (s seedStats) records() int {
	return s.charges + s.transitions + s.events + s.entries + s.refunds + s.endpoints + s.deliveries
}

func (s seedStats) String() string {
	return fmt.Sprintf("%s charges, %s transitions, %s events, %s ledger entries, %s refunds, %d endpoints, %s deliveries",
		count(float64(s.charges)), count(float64(s.transitions)), count(float64(s.events)), count(float64(s.entries)),
		count(float64(s.refunds)), s.endpoints, count(float64(s.deliveries)))
}

// seeder writes merchants' histories into the store through its own batch methods, as
// the worker does: transitions claimed, then events, ledger entries and refunds, then the
// charges' views.
type seeder struct {
	st    store.Store
	box   *secret.Box
	stats seedStats
	// samples are the merchants whose reads are timed, by name.
	samples map[string]*merchantSample
	// progress, if set, is told every tenth of the way.
	progress func(format string, args ...any)
}

// newSeeder opens the stack's store for seeding; sample names the merchants the reads
// need ids of, with their number of charges. Close the seeder's store when done.
func newSeeder(ctx context.Context, st *stack, cfg store.Config, sample map[string]int) (*seeder, error) {
	raw, err := os.ReadFile(st.webhookKeyPath())
	if err != nil {
		return nil, fmt.Errorf("reading the webhook secret key: %w", err)
	}
	key, err := secret.ParseKey(strings.TrimSpace(string(raw)))
	if err != nil {
		return nil, err
	}
	box, err := secret.NewBox(key)
	if err != nil {
		return nil, err
	}
	s, err := store.Open(ctx, cfg, nil)
	if err != nil {
		return nil, fmt.Errorf("opening the store: %w", err)
	}
	sd := &seeder{st: s, box: box, samples: map[string]*merchantSample{}}
	for name, n := range sample {
		sd.samples[name] = &merchantSample{name: name, charges: n}
	}
	return sd, nil
}

func (sd *seeder) close(ctx context.Context) error { return sd.st.Close(ctx) }

// seed writes the histories of total charges in plan's order: one goroutine builds the
// records of a batch while the store writes the one before.
func (sd *seeder) seed(ctx context.Context, plan iter.Seq[slot], total int) error {
	start := time.Now()
	defer func() { sd.stats.elapsed += time.Since(start) }()
	g, gctx := errgroup.WithContext(ctx)
	batches := make(chan []chargeRecords, 2)
	g.Go(func() error {
		defer close(batches)
		batch := make([]chargeRecords, 0, seedBatch)
		for sl := range plan {
			rec := history(sl.merchant, sl.i, time.Now())
			if m := sd.samples[sl.merchant]; m != nil {
				m.keep(sl.i, &rec)
			}
			if batch = append(batch, rec); len(batch) == seedBatch {
				select {
				case batches <- batch:
				case <-gctx.Done():
					return gctx.Err()
				}
				batch = make([]chargeRecords, 0, seedBatch)
			}
		}
		if len(batch) > 0 {
			select {
			case batches <- batch:
			case <-gctx.Done():
				return gctx.Err()
			}
		}
		return nil
	})
	g.Go(func() error {
		step := max(total/10, 1)
		for batch := range batches {
			before := sd.stats.charges
			if err := sd.write(gctx, batch); err != nil {
				return err
			}
			if sd.progress != nil && before/step != sd.stats.charges/step {
				sd.progress("  seeded %s of %s charges in %.0f s", count(float64(sd.stats.charges)), count(float64(total)), time.Since(start).Seconds())
			}
		}
		return nil
	})
	return g.Wait()
}

// write stores the records of a batch of charges.
func (sd *seeder) write(ctx context.Context, batch []chargeRecords) error {
	var (
		ts      []charge.Transition
		events  []charge.Event
		entries []charge.LedgerEntry
		refunds []charge.Refund
		views   = make([]charge.Charge, 0, len(batch))
	)
	for _, r := range batch {
		ts = append(ts, r.transitions...)
		events = append(events, r.events...)
		entries = append(entries, r.entries...)
		refunds = append(refunds, r.refunds...)
		views = append(views, r.view)
	}
	lost, err := sd.st.ClaimTransitions(ctx, ts)
	if err != nil {
		return err
	}
	if len(lost) > 0 {
		return fmt.Errorf("seeding: %d transitions already claimed (of charge %s)", len(lost), lost[0])
	}
	if err := sd.st.InsertEvents(ctx, events); err != nil {
		return err
	}
	if err := sd.st.InsertLedgerEntries(ctx, entries); err != nil {
		return err
	}
	if err := sd.st.InsertRefunds(ctx, refunds); err != nil {
		return err
	}
	existing, err := sd.st.InsertCharges(ctx, views)
	if err != nil {
		return err
	}
	if len(existing) > 0 {
		return fmt.Errorf("seeding: %d charges already stored (%s)", len(existing), existing[0])
	}
	sd.stats.charges += len(views)
	sd.stats.transitions += len(ts)
	sd.stats.events += len(events)
	sd.stats.entries += len(entries)
	sd.stats.refunds += len(refunds)
	return nil
}

// endpoint creates merchant m's webhook endpoint, as the API's create stores it (its
// secret sealed under the services' key), and inserts n delivery attempts of m's events to
// it, one InsertDelivery each.
func (sd *seeder) endpoint(ctx context.Context, m *merchantSample, n int) error {
	start := time.Now()
	defer func() { sd.stats.elapsed += time.Since(start) }()
	if len(m.events) == 0 {
		return fmt.Errorf("merchant %s has no events to deliver", m.name)
	}
	raw := make([]byte, 32)
	if _, err := rand.Read(raw); err != nil {
		return err
	}
	sealed, err := sd.box.Seal([]byte(webhooksig.SecretPrefix + base64.StdEncoding.EncodeToString(raw)))
	if err != nil {
		return err
	}
	now := time.Now().UTC().Truncate(time.Millisecond)
	e := webhook.Endpoint{
		ID: charge.NewID(charge.PrefixWebhookEndpoint), Merchant: m.name, URL: hookURL,
		EnabledEvents: []string{webhook.AllEvents}, Status: webhook.StatusEnabled,
		Secrets: []webhook.SealedSecret{{Sealed: sealed, CreatedAt: now}}, CreatedAt: now, UpdatedAt: now, Version: 1,
	}
	if err := sd.st.InsertEndpoint(ctx, e); err != nil {
		return err
	}
	m.endpoint = e.ID
	sd.stats.endpoints++
	for i := range n {
		event := m.events[i%len(m.events)]
		status := 200
		if err := sd.st.InsertDelivery(ctx, webhook.Delivery{
			ID: charge.NewID(charge.PrefixWebhookDelivery), Merchant: m.name, Endpoint: e.ID, Event: event,
			Attempt: 1, ResponseStatus: &status, DurationMS: int64(20 + i%80),
			CreatedAt: time.Now().UTC().Truncate(time.Millisecond), Key: webhook.TaskKey(event, e.ID),
		}); err != nil {
			return err
		}
		m.deliveries++
		sd.stats.deliveries++
	}
	return nil
}

// Package worker handles queued commands: it runs each charge through the payment
// processor, records the result and its event in the store, publishes the event, and only
// then acknowledges the command (docs/design.md, "Rules every step follows"). Every step is
// idempotent and re-runs on redelivery; none is skipped because it looks done.
package worker

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"slices"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.opentelemetry.io/otel/trace"

	"github.com/billing/billing/internal/charge"
	"github.com/billing/billing/internal/consume"
	"github.com/billing/billing/internal/processor"
	"github.com/billing/billing/internal/telemetry"
)

// Message is one delivery of a queued command.
type Message = consume.Message

// Source hands out batches of messages.
type Source = consume.Source

// Store is where results are recorded.
type Store interface {
	InsertCharges(ctx context.Context, cs []charge.Charge) (existing []string, err error)
	ChargesByID(ctx context.Context, ids []string) (map[string]charge.Charge, error)
	ClaimTransitions(ctx context.Context, ts []charge.Transition) (lost []string, err error)
	TransitionsFrom(ctx context.Context, from map[string]int) (map[string][]charge.Transition, error)
	SaveCharges(ctx context.Context, cs []charge.Charge) error
	InsertRefunds(ctx context.Context, rs []charge.Refund) error
	InsertEvents(ctx context.Context, es []charge.Event) error
	InsertLedgerEntries(ctx context.Context, es []charge.LedgerEntry) error
	InsertDeadLetters(ctx context.Context, ds []charge.DeadLetter) error
}

// EventPublisher publishes events and returns once all are durably stored.
type EventPublisher interface {
	PublishEvents(ctx context.Context, es []charge.Event) error
}

// Processor is the payment processor boundary.
type Processor interface {
	Authorize(ctx context.Context, req processor.AuthorizeRequest) (processor.Result, error)
	Capture(ctx context.Context, req processor.CaptureRequest) (processor.Result, error)
	Void(ctx context.Context, req processor.VoidRequest) (processor.Result, error)
	Refund(ctx context.Context, req processor.RefundRequest) (processor.Result, error)
}

// Config is the worker's own configuration.
type Config struct {
	// Batch is how many commands one fetch takes. Defaults to 256.
	Batch int
	// Pipelines is how many batches are in flight at once. Defaults to 2.
	Pipelines int
	// Concurrency bounds concurrent processor calls within a batch. Defaults to 64.
	Concurrency int
	// RetrySchedule is the delay before each retry after a transient error; once it is
	// used up the charge fails with processing_error. Required.
	RetrySchedule []time.Duration
	// FetchWait is how long one fetch waits for messages. Defaults to 1s.
	FetchWait time.Duration
	// StepTimeout bounds the handling of one batch, drain included. Defaults to 30s.
	StepTimeout time.Duration
	// AckWait is the consumer's ack wait: while a batch takes longer, its messages are
	// marked in progress every third of it, so they are not redelivered to another worker
	// meanwhile. Defaults to 30s.
	AckWait time.Duration
	// TracerProvider traces the handling of each command (trace.go). Defaults to none.
	TracerProvider trace.TracerProvider
}

// Worker consumes commands until its context ends, then drains.
type Worker struct {
	cfg       Config
	source    Source
	store     Store
	events    EventPublisher
	processor Processor
	logger    *slog.Logger
	now       charge.TimeNow
	metrics   *metrics
	loop      *consume.Loop
	charges   keyedMutex // one operation per charge at a time in this process
	tracer    telemetry.Tracer
}

// New returns a worker. reg receives its metrics.
func New(cfg Config, source Source, store Store, events EventPublisher, proc Processor, logger *slog.Logger, reg prometheus.Registerer, now charge.TimeNow) *Worker {
	cfg.Batch = cmp.Or(cfg.Batch, 256)
	cfg.Pipelines = cmp.Or(cfg.Pipelines, 2)
	cfg.Concurrency = cmp.Or(cfg.Concurrency, 64)
	cfg.FetchWait = cmp.Or(cfg.FetchWait, time.Second)
	cfg.StepTimeout = cmp.Or(cfg.StepTimeout, 30*time.Second)
	cfg.AckWait = cmp.Or(cfg.AckWait, 30*time.Second)
	loop := consume.New(consume.Config{
		Name: "charges", Metric: "billing_worker_commands_total",
		Help:  "Commands settled, by result (acked, retried, waiting, dead_lettered).",
		Batch: cfg.Batch, Pipelines: cfg.Pipelines, FetchWait: cfg.FetchWait, StepTimeout: cfg.StepTimeout, AckWait: cfg.AckWait,
	}, store, logger, reg, now)
	return &Worker{cfg: cfg, source: source, store: store, events: events, processor: proc,
		logger: logger, now: now, metrics: newMetrics(reg), loop: loop,
		tracer: telemetry.NewTracer(cfg.TracerProvider, "github.com/billing/billing/internal/worker")}
}

// Run fetches and handles batches until ctx is cancelled. A batch already fetched is
// finished and settled before Run returns: cancellation stops fetching, not handling.
func (w *Worker) Run(ctx context.Context) error {
	return w.loop.Run(ctx, w.source, w.Handle)
}

// item is one command of a batch on its way through the steps.
type item struct {
	msg     Message
	cmd     charge.Command
	outcome outcome
	reason  string     // why, for outcomeDeadLetter
	span    trace.Span // its command's, while tracing
}

// outcome is what becomes of a command's message once its batch is handled; Handle
// turns it into the consume package's outcome, which settles it.
type outcome int

const (
	// outcomeAck: everything the command causes is durable.
	outcomeAck outcome = iota
	// outcomeRetry: the processor's transient error; delivered again after the retry
	// schedule's delay, an attempt used.
	outcomeRetry
	// outcomeAway: the store or the queue failed us, or another worker holds the charge;
	// delivered again soon, no attempt used: the processor did not fail.
	outcomeAway
	// outcomeWait: the charge is not ready for the command; delivered again later, no
	// attempt used.
	outcomeWait
	// outcomeRefused: the charge's history refuses the command (a capture after a
	// cancel); acknowledged.
	outcomeRefused
	// outcomeDeadLetter: the store refuses the command's documents for good; recorded as
	// a dead letter and terminated, so that it neither comes back for ever nor holds
	// back the commands behind it.
	outcomeDeadLetter
)

// Handle runs a batch of messages through every step and settles each message (see
// package consume): ack once everything it causes is durable, a retry on the processor's
// transient error, a wait when the charge is not ready or the store is away, a dead
// letter for a message that can never be handled.
func (w *Worker) Handle(ctx context.Context, msgs []Message) {
	start := time.Now()
	defer func() { w.metrics.batch.Observe(time.Since(start).Seconds()) }()

	items := w.decode(msgs)
	w.startSpans(ctx, items)
	defer w.endSpans(items)
	defer w.settle(ctx, items)
	var creates, operations []*item
	for _, it := range items {
		switch {
		case it.outcome == outcomeDeadLetter:
		case it.cmd.Type == charge.CommandCreate:
			creates = append(creates, it)
		default:
			operations = append(operations, it)
		}
	}
	var wg sync.WaitGroup
	wg.Go(func() { w.operateAll(ctx, operations) })
	if len(creates) > 0 {
		w.isolate(ctx, "handling batch", creates, w.settleCharges)
	}
	wg.Wait()
}

// settle settles every item's message as its outcome says.
func (w *Worker) settle(ctx context.Context, items []*item) {
	msgs := make([]Message, len(items))
	outs := make([]consume.Outcome, len(items))
	for i, it := range items {
		msgs[i] = it.msg
		switch it.outcome {
		case outcomeRetry:
			outs[i] = consume.Retry(w.delay(it.msg.Attempt()))
		case outcomeAway:
			outs[i] = consume.Wait(waitDelay(it.msg.NumDelivered()))
		case outcomeWait:
			outs[i] = consume.Wait(w.waitFor(it))
		case outcomeDeadLetter:
			outs[i] = consume.Refuse(it.reason)
		default:
			if it.outcome == outcomeRefused {
				w.metrics.refused.Inc()
			}
			w.metrics.settle.WithLabelValues(string(it.cmd.Type)).Observe(w.now().Sub(it.cmd.AcceptedAt).Seconds())
			outs[i] = consume.Done()
		}
	}
	w.loop.Settle(ctx, msgs, outs)
}

// isolate runs step on items. An error leaves them all to be retried, except that when
// the store refuses one of their documents for good (charge.ErrRejected), step runs again
// on each half until the command at fault is alone, and that one is dead-lettered: one
// poison message costs a few more rounds of its batch, and the commands beside it settle.
// Re-running a step is safe: every step is idempotent.
func (w *Worker) isolate(ctx context.Context, what string, items []*item, step func(context.Context, []*item) error) {
	err := step(ctx, items)
	switch {
	case err == nil:
	case errors.Is(err, charge.ErrRejected) && len(items) > 1:
		for _, it := range items {
			it.outcome = outcomeAck
		}
		half := len(items) / 2
		w.isolate(ctx, what, items[:half], step)
		w.isolate(ctx, what, items[half:], step)
	case errors.Is(err, charge.ErrRejected):
		w.logger.ErrorContext(ctx, what+": refused for good by the store or the queue; dead-lettering the command",
			"type", items[0].cmd.Type, "charge_id", items[0].cmd.ChargeID, "error", err)
		items[0].outcome, items[0].reason = outcomeDeadLetter, "refused for good: "+err.Error()
	default:
		w.logger.WarnContext(ctx, what, "error", err, "commands", len(items))
		for _, it := range items {
			it.outcome = outcomeAway
		}
	}
}

// decode parses each message; one that cannot be parsed will never be handled, so it is
// refused: dead-lettered and terminated.
func (w *Worker) decode(msgs []Message) []*item {
	items := make([]*item, 0, len(msgs))
	for _, m := range msgs {
		var cmd charge.Command
		err := json.Unmarshal(m.Data(), &cmd)
		if err == nil && !cmd.Valid() {
			err = fmt.Errorf("unsupported or incomplete command %q", cmd.Type)
		}
		it := &item{msg: m, cmd: cmd}
		if err != nil {
			it.outcome, it.reason = outcomeDeadLetter, "undecodable: "+err.Error()
		}
		items = append(items, it)
	}
	return items
}

// settleCharges is the work of a batch of create commands. In the common case it is
// three bulk inserts, the writes that MongoDB and FerretDB both arbitrate atomically and
// FerretDB does fastest: authorize, claim each charge's first transition in the log,
// insert each charge as its transitions leave it, insert the events; then publish the
// events. Only what lost a race (a claim or a charge already stored by an earlier or
// concurrent delivery) is read back and brought up to date one by one. An error leaves
// every item to be retried; re-running is safe.
//
// The charge is not written before it is decided: until then the ingest serves it from
// its command on the queue, which is acknowledged (and so removed) only after the charge
// is stored.
func (w *Worker) settleCharges(ctx context.Context, items []*item) error {
	bases := make(map[string]charge.Charge, len(items))
	redelivered := map[string]int{}
	for _, it := range items {
		c := it.cmd.PendingCharge()
		bases[c.ID] = c
		if it.msg.NumDelivered() > 1 {
			redelivered[c.ID] = 1
		}
	}
	// Only a redelivered command can find its charge decided already; asking saves a
	// second processor call (which would be harmless: same idempotency key, same answer).
	logs, err := w.store.TransitionsFrom(ctx, redelivered)
	if err != nil {
		return err
	}
	claims, dead := w.authorize(ctx, items, logs)
	// Dead letters first: whoever sees a charge failed by exhaustion finds its record.
	if err := w.store.InsertDeadLetters(ctx, dead); err != nil {
		return err
	}
	w.metrics.givenUp.Add(float64(len(dead)))
	s := w.startStep(ctx, "store.ClaimTransitions", trace.SpanKindClient, items)
	lost, err := w.store.ClaimTransitions(ctx, claims)
	s.end(err)
	if err != nil {
		return err
	}
	for _, t := range claims {
		logs[t.ChargeID] = []charge.Transition{t}
	}
	if len(lost) > 0 {
		winners, err := w.store.TransitionsFrom(ctx, fromOne(lost))
		if err != nil {
			return err
		}
		maps.Copy(logs, winners)
	}

	views := make(map[string]charge.Charge, len(items))
	for id, ts := range logs {
		if len(ts) > 0 {
			views[id] = charge.Fold(bases[id], ts)
		}
	}
	// Events and ledger entries before charges: whoever sees a charge settled finds them
	// stored.
	var (
		events  []charge.Event
		entries []charge.LedgerEntry
	)
	for _, it := range items {
		if it.outcome == outcomeRetry {
			continue
		}
		// The create command owes the event and entries of the charge's first transition.
		if ts := logs[it.cmd.ChargeID]; len(ts) > 0 {
			events = append(events, charge.NewEvent(views[it.cmd.ChargeID], ts[0].Event))
			entries = append(entries, charge.Entries(bases[it.cmd.ChargeID], ts[0])...)
		} else {
			// Another worker holds it and has not decided yet: come back to it.
			it.outcome = outcomeAway
		}
	}
	s = w.startStep(ctx, "store.InsertEvents", trace.SpanKindClient, items)
	err = w.store.InsertEvents(ctx, events)
	if s.end(err); err != nil {
		return err
	}
	s = w.startStep(ctx, "store.InsertLedgerEntries", trace.SpanKindClient, items)
	err = w.store.InsertLedgerEntries(ctx, entries)
	if s.end(err); err != nil {
		return err
	}
	s = w.startStep(ctx, "store.InsertCharges", trace.SpanKindClient, items)
	existing, err := w.store.InsertCharges(ctx, slices.Collect(maps.Values(views)))
	if s.end(err); err != nil {
		return err
	}
	if len(existing) > 0 {
		again := make(map[string]charge.Charge, len(existing))
		for _, id := range existing {
			again[id] = bases[id]
		}
		if err := w.converge(ctx, again); err != nil {
			return err
		}
	}
	s = w.startStep(ctx, "send EVENTS", trace.SpanKindProducer, items)
	err = w.events.PublishEvents(s.publishing(ctx), events)
	s.end(err)
	return err
}

func fromOne(ids []string) map[string]int {
	m := make(map[string]int, len(ids))
	for _, id := range ids {
		m[id] = 1
	}
	return m
}

// maxConverge bounds the rounds of converge; each round past the first needs a concurrent
// writer to have overwritten a newer view with an older one, or the log to have grown.
const maxConverge = 5

// converge brings the stored view of each charge up to date with its transition log.
// from holds, for each charge, a fold of its log up to some version (the charge as
// accepted, version 0, will do); only the transitions after it are read. After writing,
// it reads back: if the stored view is not the one written (a slower writer put an older
// one back, possible on FerretDB) or the log has grown, it catches up and writes again.
func (w *Worker) converge(ctx context.Context, from map[string]charge.Charge) error {
	views := maps.Clone(from)
	todo := slices.Collect(maps.Keys(views))
	for round := 0; len(todo) > 0; round++ {
		if round == maxConverge {
			return fmt.Errorf("charge views did not converge in %d rounds: %w", maxConverge, charge.ErrUnavailable)
		}
		logs, err := w.store.TransitionsFrom(ctx, nextOf(views, todo))
		if err != nil {
			return err
		}
		var save []charge.Charge
		for _, id := range todo {
			v := views[id]
			for _, t := range logs[id] {
				v = v.Apply(t)
			}
			views[id] = v
			if v.Version > 0 {
				save = append(save, v)
			}
		}
		if err := w.store.SaveCharges(ctx, save); err != nil {
			return err
		}
		ids := make([]string, len(save))
		for i, v := range save {
			ids[i] = v.ID
		}
		stored, err := w.store.ChargesByID(ctx, ids)
		if err != nil {
			return err
		}
		grown, err := w.store.TransitionsFrom(ctx, nextOf(views, ids))
		if err != nil {
			return err
		}
		todo = todo[:0]
		for _, v := range save {
			if stored[v.ID].Version != v.Version || len(grown[v.ID]) > 0 {
				todo = append(todo, v.ID)
			}
		}
	}
	return nil
}

// nextOf maps each of ids to the sequence number after its view's.
func nextOf(views map[string]charge.Charge, ids []string) map[string]int {
	m := make(map[string]int, len(ids))
	for _, id := range ids {
		m[id] = int(views[id].Version) + 1
	}
	return m
}

// authorize calls the processor for every item whose charge has no decision in decided
// yet, at most Concurrency at once, and returns the transitions the answers call for and
// the dead letters of commands whose attempts are used up.
func (w *Worker) authorize(ctx context.Context, items []*item, decided map[string][]charge.Transition) ([]charge.Transition, []charge.DeadLetter) {
	var (
		mu          sync.Mutex
		transitions []charge.Transition
		dead        []charge.DeadLetter
		wg          sync.WaitGroup
		sem         = make(chan struct{}, w.cfg.Concurrency)
	)
	for _, it := range items {
		if len(decided[it.cmd.ChargeID]) > 0 {
			continue
		}
		c := it.cmd.PendingCharge()
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer func() { <-sem; wg.Done() }()
			t, d, ok := w.authorizeOne(ctx, it, c)
			mu.Lock()
			defer mu.Unlock()
			if ok {
				transitions = append(transitions, t)
			}
			if d != nil {
				dead = append(dead, *d)
			}
		}()
	}
	wg.Wait()
	return transitions, dead
}

func (w *Worker) authorizeOne(ctx context.Context, it *item, c charge.Charge) (charge.Transition, *charge.DeadLetter, bool) {
	pctx, span := w.startCall(ctx, it, "processor.Authorize")
	res, err := w.processor.Authorize(pctx, processor.AuthorizeRequest{
		ChargeID: c.ID, Amount: c.Amount, Currency: c.Currency, PaymentMethod: c.PaymentMethod, Capture: c.Capture,
	})
	endCall(span, err)
	now := w.now()
	switch {
	case errors.Is(err, processor.ErrTransient) || errors.Is(err, context.DeadlineExceeded):
		w.metrics.processor.WithLabelValues("transient").Inc()
		if it.msg.Attempt() <= uint64(len(w.cfg.RetrySchedule)) {
			it.outcome = outcomeRetry
			return charge.Transition{}, nil, false
		}
		w.logger.WarnContext(ctx, "giving up on charge after its last attempt", "charge_id", c.ID, "attempts", it.msg.Attempt(), "error", err)
		return charge.NewTransition(c, charge.StatusFailed, now, 0, charge.FailureProcessingError, ""),
			new(consume.DeadLetterOf(it.msg, err.Error(), now)), true
	case err != nil:
		w.metrics.processor.WithLabelValues("permanent").Inc()
		w.logger.WarnContext(ctx, "processor refused charge", "charge_id", c.ID, "error", err)
		return charge.NewTransition(c, charge.StatusFailed, now, 0, charge.FailureProcessingError, ""), nil, true
	case !res.Approved:
		w.metrics.processor.WithLabelValues("declined").Inc()
		return charge.NewTransition(c, charge.StatusFailed, now, 0, res.DeclineCode, res.Reference), nil, true
	case c.Capture:
		w.metrics.processor.WithLabelValues("approved").Inc()
		return charge.NewTransition(c, charge.StatusSucceeded, now, c.Amount, "", res.Reference), nil, true
	default:
		w.metrics.processor.WithLabelValues("approved").Inc()
		return charge.NewTransition(c, charge.StatusRequiresCapture, now, 0, "", res.Reference), nil, true
	}
}

// operateAll applies capture, cancel and refund commands in waves of at most one command
// per charge, in the order they came (see operateWave). Commands on one charge are applied
// one at a time within this process, the charges of a wave locked in order: they would
// only race for the charge's next transition. (Across processes the log arbitrates.) An
// error leaves the commands of its wave to be retried.
func (w *Worker) operateAll(ctx context.Context, items []*item) {
	queue := slices.Clone(items)
	for len(queue) > 0 {
		var wave, later []*item
		seen := map[string]bool{}
		for _, it := range queue {
			if seen[it.cmd.ChargeID] {
				later = append(later, it)
				continue
			}
			seen[it.cmd.ChargeID] = true
			wave = append(wave, it)
		}
		unlock := w.charges.lockAll(slices.Sorted(maps.Keys(seen)))
		w.isolate(ctx, "applying commands", wave, w.operateWave)
		unlock()
		queue = later
	}
}

// keyedMutex is a mutex per key, held only while in use.
type keyedMutex struct {
	mu    sync.Mutex
	locks map[string]*refMutex
}

type refMutex struct {
	sync.Mutex
	refs int
}

// lockAll locks keys, which must be sorted (so that two callers cannot each hold what
// the other waits for), and returns their unlock.
func (k *keyedMutex) lockAll(keys []string) func() {
	unlocks := make([]func(), len(keys))
	for i, key := range keys {
		unlocks[i] = k.lock(key)
	}
	return func() {
		for _, u := range unlocks {
			u()
		}
	}
}

// lock locks key and returns its unlock.
func (k *keyedMutex) lock(key string) func() {
	k.mu.Lock()
	if k.locks == nil {
		k.locks = map[string]*refMutex{}
	}
	m := k.locks[key]
	if m == nil {
		m = &refMutex{}
		k.locks[key] = m
	}
	m.refs++
	k.mu.Unlock()
	m.Lock()
	return func() {
		m.Unlock()
		k.mu.Lock()
		if m.refs--; m.refs == 0 {
			delete(k.locks, key)
		}
		k.mu.Unlock()
	}
}

// waitDelay is the wait before delivery n+1 of a command that waits (its charge not
// ready, the store away): short at first, since a charge is usually decided within a
// second and the store back as soon, then longer.
func waitDelay(n uint64) time.Duration {
	return min(time.Duration(n)*250*time.Millisecond, 10*time.Second)
}

const (
	// waitInPlace is how long after its acceptance a command that waits for its charge is
	// redelivered after waitDelay. Later, every quarter of the time it has waited: a refund
	// of a charge its merchant has not captured may wait a week (refundWaitLimit).
	waitInPlace = time.Minute
	// maxLaterDelay bounds the wait of a command for its charge: a refund settles at most
	// about this long after the capture it waited for.
	maxLaterDelay = 5 * time.Minute
)

// waitFor is how long a command whose charge is not ready for it waits before it comes
// again.
func (w *Worker) waitFor(it *item) time.Duration {
	if waited := w.now().Sub(it.cmd.AcceptedAt); waited >= waitInPlace {
		return min(waited/4, maxLaterDelay)
	}
	return waitDelay(it.msg.NumDelivered())
}

// delay is the wait before the next attempt after attempt number n.
func (w *Worker) delay(n uint64) time.Duration {
	s := w.cfg.RetrySchedule
	if n == 0 {
		n = 1
	}
	if n > uint64(len(s)) {
		return s[len(s)-1]
	}
	return s[n-1]
}

type metrics struct {
	refused   prometheus.Counter
	givenUp   prometheus.Counter
	processor *prometheus.CounterVec
	batch     prometheus.Histogram
	settle    *prometheus.HistogramVec
}

func newMetrics(reg prometheus.Registerer) *metrics {
	m := &metrics{
		refused: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "billing_worker_refused_commands_total", Help: "Commands the charge's history refuses (a capture after a cancel), acknowledged.",
		}),
		givenUp: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "billing_worker_given_up_commands_total", Help: "Commands given up on, their dead letter recorded and their charge or refund failed: the processor failing past the last retry, a refund whose charge never came.",
		}),
		processor: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "billing_processor_calls_total", Help: "Processor calls by outcome (approved, declined, transient, permanent).",
		}, []string{"outcome"}),
		batch: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "billing_worker_batch_duration_seconds", Help: "Time to handle one batch of commands.",
			Buckets: prometheus.ExponentialBuckets(0.001, 2, 16),
		}),
		settle: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "billing_worker_settle_duration_seconds", Help: "Time from a command's 202 to its result stored and the command acknowledged, by command type.",
			Buckets: []float64{.01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60, 120, 300, 900, 3600},
		}, []string{"type"}),
	}
	// Every label from zero, so that rates and alerts see the first one.
	for _, o := range []string{"approved", "declined", "transient", "permanent"} {
		m.processor.WithLabelValues(o)
	}
	for _, t := range []charge.CommandType{charge.CommandCreate, charge.CommandCapture, charge.CommandCancel, charge.CommandRefund} {
		m.settle.WithLabelValues(string(t))
	}
	reg.MustRegister(m.refused, m.givenUp, m.processor, m.batch, m.settle)
	return m
}

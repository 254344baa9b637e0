package worker_test

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/stretchr/testify/require"

	"github.com/billing/billing/internal/charge"
	"github.com/billing/billing/internal/natstest"
	"github.com/billing/billing/internal/processor"
	"github.com/billing/billing/internal/queue"
	"github.com/billing/billing/internal/service"
	"github.com/billing/billing/internal/store"
	"github.com/billing/billing/internal/storetest"
	"github.com/billing/billing/internal/worker"
)

func TestMain(m *testing.M) { os.Exit(storetest.Run(m)) }

// countingProcessor is a processor double: it answers like the simulated one (the first
// answer to a key is the answer to every call with it), counts calls per idempotency key,
// and can be told to fail, to decline, to be slow or to block.
type countingProcessor struct {
	mu      sync.Mutex
	calls   map[string]int
	answers map[string]processor.Result // the first answer per key, given again
	fail    error                       // returned instead of an answer when set
	delay   time.Duration               // each call takes this long
	decline string                      // captures, voids and refunds are declined with this code when set
	started chan struct{}               // receives on each call when set
	release chan struct{}               // each call waits for it when set
}

// call counts a call under its idempotency key, honours fail, started and release, then
// answers with answer.
func (p *countingProcessor) call(key string, answer func() (processor.Result, error)) (processor.Result, error) {
	p.mu.Lock()
	if p.calls == nil {
		p.calls = map[string]int{}
	}
	p.calls[key]++
	fail, started, release, delay := p.fail, p.started, p.release, p.delay
	p.mu.Unlock()
	time.Sleep(delay) // the processor's own time: what makes a batch slow here
	if started != nil {
		started <- struct{}{}
	}
	if release != nil {
		<-release
	}
	if fail != nil {
		return processor.Result{}, fail
	}
	// Like a processor that honours the key: the first answer is the answer.
	p.mu.Lock()
	res, ok := p.answers[key]
	p.mu.Unlock()
	if ok {
		return res, nil
	}
	res, err := answer()
	if err != nil {
		return res, err
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if first, ok := p.answers[key]; ok {
		return first, nil
	}
	if p.answers == nil {
		p.answers = map[string]processor.Result{}
	}
	p.answers[key] = res
	return res, nil
}

func (p *countingProcessor) Authorize(ctx context.Context, req processor.AuthorizeRequest) (processor.Result, error) {
	return p.call(req.ChargeID, func() (processor.Result, error) { return processor.Simulated{}.Authorize(ctx, req) })
}

func (p *countingProcessor) Capture(ctx context.Context, req processor.CaptureRequest) (processor.Result, error) {
	return p.call(req.ChargeID+":capture", p.declining(func() (processor.Result, error) { return processor.Simulated{}.Capture(ctx, req) }))
}

func (p *countingProcessor) Void(ctx context.Context, req processor.VoidRequest) (processor.Result, error) {
	return p.call(req.ChargeID+":void", p.declining(func() (processor.Result, error) { return processor.Simulated{}.Void(ctx, req) }))
}

func (p *countingProcessor) Refund(ctx context.Context, req processor.RefundRequest) (processor.Result, error) {
	return p.call(req.RefundID, p.declining(func() (processor.Result, error) { return processor.Simulated{}.Refund(ctx, req) }))
}

// declining answers with a decline when p.decline is set, else with answer.
func (p *countingProcessor) declining(answer func() (processor.Result, error)) func() (processor.Result, error) {
	return func() (processor.Result, error) {
		p.mu.Lock()
		code := p.decline
		p.mu.Unlock()
		if code != "" {
			return processor.Result{Reference: "declined", DeclineCode: code}, nil
		}
		return answer()
	}
}

func (p *countingProcessor) count(id string) int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.calls[id]
}

// msg is a delivery double for Handle: our own small interface, so a double is fine here;
// the queue behind it is exercised by Run's tests below.
type msg struct {
	data      []byte
	delivered uint64
	attempt   uint64 // 0: delivered (no waits before)
	acked     atomic.Bool
	nakDelay  atomic.Int64
	later     atomic.Int64 // the delay of Later, which also acknowledges
	laterAt   atomic.Uint64
	termed    atomic.Bool
}

func (m *msg) Data() []byte                       { return m.data }
func (m *msg) Subject() string                    { return "charges.test.create" }
func (m *msg) ID() string                         { return m.Subject() }
func (m *msg) Header(string) string               { return "" }
func (m *msg) Headers() map[string]string         { return nil }
func (m *msg) NumDelivered() uint64               { return m.delivered }
func (m *msg) Attempt() uint64                    { return cmp.Or(m.attempt, m.delivered) }
func (m *msg) Ack(context.Context) error          { m.acked.Store(true); return nil }
func (m *msg) NakWithDelay(d time.Duration) error { m.nakDelay.Store(int64(d)); return nil }
func (m *msg) Term() error                        { m.termed.Store(true); return nil }
func (m *msg) Later(_ context.Context, d time.Duration, attempt uint64) error {
	m.later.Store(int64(d))
	m.laterAt.Store(attempt)
	return nil
}
func (m *msg) InProgress() error { return nil }

type bundle struct {
	conn     *queue.Conn
	store    store.Store
	proc     *countingProcessor
	worker   *worker.Worker
	schedule []time.Duration
	reg      *prometheus.Registry
}

// counter returns the value of the counter name with the label given (any series when
// label is ""), 0 if none.
func (b *bundle) counter(t *testing.T, name, label, value string) float64 {
	t.Helper()
	families, err := b.reg.Gather()
	require.NoError(t, err)
	for _, f := range families {
		if f.GetName() != name {
			continue
		}
		for _, m := range f.GetMetric() {
			if label == "" {
				return m.GetCounter().GetValue()
			}
			for _, l := range m.GetLabel() {
				if l.GetName() == label && l.GetValue() == value {
					return m.GetCounter().GetValue()
				}
			}
		}
	}
	return 0
}

func setup(t *testing.T) *bundle {
	t.Helper()
	logger := slog.New(slog.NewTextHandler(io.Discard, nil))
	if os.Getenv("WORKER_TEST_LOG") != "" {
		logger = slog.New(slog.NewTextHandler(os.Stderr, nil))
	}
	ctx := context.Background()
	conn, err := queue.Connect(ctx, queue.Config{URL: natstest.New(t)}, logger)
	require.NoError(t, err)
	t.Cleanup(conn.Close)
	st := storetest.Open(t, storetest.Config(t))
	b := &bundle{conn: conn, store: st, proc: &countingProcessor{}, schedule: []time.Duration{time.Second, 2 * time.Second},
		reg: prometheus.NewRegistry()}
	b.worker = worker.New(worker.Config{RetrySchedule: b.schedule, FetchWait: 100 * time.Millisecond},
		nil, st, conn, b.proc, logger, b.reg, time.Now)
	return b
}

func command(t *testing.T, pm string, capture bool) (charge.Command, []byte) {
	t.Helper()
	amount, cur := int64(1234), "usd"
	p := charge.CreateParams{Amount: &amount, Currency: &cur, PaymentMethod: &pm, Capture: &capture}
	id := charge.NewID(charge.PrefixCharge)
	c := p.Charge(id, "merchant_w", time.Now)
	cmd := charge.Command{Type: charge.CommandCreate, Merchant: "merchant_w", ChargeID: id, AcceptedAt: c.CreatedAt, Charge: &c}
	data, err := json.Marshal(cmd)
	require.NoError(t, err)
	return cmd, data
}

func (b *bundle) events(t *testing.T, chargeID string) []charge.Event {
	t.Helper()
	all, _, err := b.store.ListEvents(context.Background(), "merchant_w", "", 100, "")
	require.NoError(t, err)
	var out []charge.Event
	for _, e := range all {
		if e.ChargeID == chargeID {
			out = append(out, e)
		}
	}
	return out
}

func (b *bundle) charge(t *testing.T, id string) charge.Charge {
	t.Helper()
	c, err := b.store.GetCharge(context.Background(), "merchant_w", id)
	require.NoError(t, err)
	return c
}

// A redelivered command re-runs every step and changes nothing: one transition, one event.
func TestRedeliveryIsANoOp(t *testing.T) {
	t.Parallel()
	b := setup(t)
	cmd, data := command(t, "pm_card_visa", true)
	first, second := &msg{data: data, delivered: 1}, &msg{data: data, delivered: 2}
	b.worker.Handle(context.Background(), []worker.Message{first})
	b.worker.Handle(context.Background(), []worker.Message{second})
	require.True(t, first.acked.Load())
	require.True(t, second.acked.Load())

	c := b.charge(t, cmd.ChargeID)
	require.Equal(t, charge.StatusSucceeded, c.Status)
	require.EqualValues(t, 1234, c.AmountCaptured)
	require.Len(t, c.Events, 1)
	events := b.events(t, cmd.ChargeID)
	require.Len(t, events, 1)
	require.Equal(t, charge.EventChargeSucceeded, events[0].Type)
	require.Equal(t, 1, events[0].Sequence)
	require.Equal(t, 1, b.proc.count(cmd.ChargeID), "a settled charge is not sent to the processor again")
}

// Two workers handling the same command at once (a late ack racing a redelivery) both
// ask the processor with the same key, and exactly one transition and event result.
func TestConcurrentDeliveriesSettleOnce(t *testing.T) {
	t.Parallel()
	b := setup(t)
	cmd, data := command(t, "pm_card_chargeDeclined", true)
	var wg sync.WaitGroup
	msgs := make([]*msg, 4)
	for i := range msgs {
		msgs[i] = &msg{data: data, delivered: uint64(i + 1)}
		wg.Add(1)
		go func() {
			defer wg.Done()
			b.worker.Handle(context.Background(), []worker.Message{msgs[i]})
		}()
	}
	wg.Wait()
	c := b.charge(t, cmd.ChargeID)
	require.Equal(t, charge.StatusFailed, c.Status)
	require.Equal(t, charge.FailureCardDeclined, *c.FailureCode)
	require.Len(t, c.Events, 1)
	require.Len(t, b.events(t, cmd.ChargeID), 1)
	for _, m := range msgs {
		require.True(t, m.acked.Load() || m.nakDelay.Load() > 0, "every delivery is settled")
	}
}

// Rule 3: a worker that died after claiming the transition, before the charge view and
// the event were written, leaves them to the redelivery, which writes and publishes them
// without calling the processor again.
func TestEventWrittenAfterCrashBeforeIt(t *testing.T) {
	t.Parallel()
	b := setup(t)
	ctx := context.Background()
	cmd, data := command(t, "pm_card_visa", false)
	pending := cmd.PendingCharge()
	tr := charge.NewTransition(pending, charge.StatusRequiresCapture, time.Now(), 0, "", "auth_1")
	_, err := b.store.ClaimTransitions(ctx, []charge.Transition{tr})
	require.NoError(t, err)
	require.Empty(t, b.events(t, cmd.ChargeID))

	published, stop, err := b.conn.WaitForCharge(ctx, cmd.ChargeID)
	require.NoError(t, err)
	defer stop()
	m := &msg{data: data, delivered: 2}
	b.worker.Handle(ctx, []worker.Message{m})
	require.True(t, m.acked.Load())
	require.Zero(t, b.proc.count(cmd.ChargeID))
	require.Equal(t, charge.StatusRequiresCapture, b.charge(t, cmd.ChargeID).Status)
	events := b.events(t, cmd.ChargeID)
	require.Len(t, events, 1)
	require.Equal(t, tr.Event.ID, events[0].ID)
	require.Equal(t, charge.EventChargeAuthorized, events[0].Type)
	require.Equal(t, charge.StatusRequiresCapture, events[0].Data.Object.Status)
	select {
	case <-published:
	case <-time.After(5 * time.Second):
		t.Fatal("the event was not published")
	}
}

// A retry is handed back for later with its attempt counted on the copy, so that charges
// the processor keeps failing transiently (pm_card_processingError, sent by the thousand)
// hold none of the consumer's places, and so that only the processor's failures spend
// attempts: a delivery that only waited (the store away) leaves the count as it was.
func TestRetriesAreHandedBackCountingTheAttempt(t *testing.T) {
	t.Parallel()
	b := setup(t)
	b.proc.fail = errors.Join(processor.ErrTransient, errors.New("503"))
	_, data := command(t, "pm_card_visa", true)

	first := &msg{data: data, delivered: 1}
	b.worker.Handle(context.Background(), []worker.Message{first})
	require.Zero(t, first.nakDelay.Load())
	require.Equal(t, int64(time.Second), first.later.Load(), "the schedule's first delay")
	require.Equal(t, uint64(2), first.laterAt.Load(), "attempt 2 comes next")

	// Delivered many times (waits for the store, crashes), but only at attempt 2.
	second := &msg{data: data, delivered: 40, attempt: 2}
	b.worker.Handle(context.Background(), []worker.Message{second})
	require.False(t, second.acked.Load(), "waits spend no attempt: the charge is not failed")
	require.Equal(t, int64(2*time.Second), second.later.Load())
	require.Equal(t, uint64(3), second.laterAt.Load())

	last := &msg{data: data, delivered: 41, attempt: 3}
	b.worker.Handle(context.Background(), []worker.Message{last})
	require.True(t, last.acked.Load(), "failed with processing_error after the last attempt")
}

// Transient errors are retried on the schedule; after the last attempt the charge fails
// with processing_error, its event is written and the command is dead-lettered.
func TestTransientErrorsThenProcessingError(t *testing.T) {
	t.Parallel()
	b := setup(t)
	b.proc.fail = errors.Join(processor.ErrTransient, errors.New("503"))
	cmd, data := command(t, "pm_card_visa", true)
	for attempt := 1; attempt <= len(b.schedule); attempt++ {
		m := &msg{data: data, delivered: uint64(attempt)}
		b.worker.Handle(context.Background(), []worker.Message{m})
		require.False(t, m.acked.Load())
		require.Equal(t, int64(b.schedule[attempt-1]), m.later.Load(), "attempt %d", attempt)
		// Undecided, the charge is not stored: the ingest serves it from its command.
		_, err := b.store.GetCharge(context.Background(), "merchant_w", cmd.ChargeID)
		require.ErrorIs(t, err, charge.ErrNotFound)
	}
	require.Zero(t, b.counter(t, "billing_worker_given_up_commands_total", "", ""))
	last := &msg{data: data, delivered: uint64(len(b.schedule) + 1)}
	b.worker.Handle(context.Background(), []worker.Message{last})
	require.True(t, last.acked.Load())
	require.Equal(t, 1.0, b.counter(t, "billing_worker_given_up_commands_total", "", ""))
	c := b.charge(t, cmd.ChargeID)
	require.Equal(t, charge.StatusFailed, c.Status)
	require.Equal(t, charge.FailureProcessingError, *c.FailureCode)
	require.Len(t, b.events(t, cmd.ChargeID), 1)
	dead, err := b.store.DeadLetters(context.Background())
	require.NoError(t, err)
	require.Len(t, dead, 1)
	require.Equal(t, data, dead[0].Data)
	require.Equal(t, 3, b.proc.count(cmd.ChargeID))
}

func TestPermanentProcessorErrorFails(t *testing.T) {
	t.Parallel()
	b := setup(t)
	b.proc.fail = errors.Join(processor.ErrPermanent, errors.New("400"))
	cmd, data := command(t, "pm_card_visa", true)
	m := &msg{data: data, delivered: 1}
	b.worker.Handle(context.Background(), []worker.Message{m})
	require.True(t, m.acked.Load())
	require.Equal(t, charge.FailureProcessingError, *b.charge(t, cmd.ChargeID).FailureCode)
}

func TestUndecodableCommandIsDeadLettered(t *testing.T) {
	t.Parallel()
	b := setup(t)
	m := &msg{data: []byte(`{"type": "charge.explode"}`), delivered: 1}
	b.worker.Handle(context.Background(), []worker.Message{m})
	require.True(t, m.termed.Load())
	dead, err := b.store.DeadLetters(context.Background())
	require.NoError(t, err)
	require.Len(t, dead, 1)
}

// Shutdown drains: a batch in flight when the context ends is finished and acknowledged.
func TestRunDrainsInFlightWork(t *testing.T) {
	t.Parallel()
	b := setup(t)
	ctx := context.Background()
	b.proc.started = make(chan struct{}, 1)
	b.proc.release = make(chan struct{})
	consumer, err := b.conn.CommandConsumer(ctx, queue.ConsumerConfig{})
	require.NoError(t, err)
	logger := slog.New(slog.NewTextHandler(io.Discard, nil))
	w := worker.New(worker.Config{RetrySchedule: b.schedule, FetchWait: 100 * time.Millisecond},
		service.CommandSource(consumer), b.store, b.conn, b.proc, logger, prometheus.NewRegistry(), time.Now)

	cmd, _ := command(t, "pm_card_visa", true)
	require.NoError(t, b.conn.PublishCommand(ctx, cmd))
	runCtx, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- w.Run(runCtx) }()
	select {
	case <-b.proc.started:
	case <-time.After(10 * time.Second):
		t.Fatal("the worker did not pick up the command")
	}
	cancel() // SIGTERM while the processor call is in flight
	close(b.proc.release)
	select {
	case err := <-done:
		require.NoError(t, err)
	case <-time.After(10 * time.Second):
		t.Fatal("Run did not return after cancellation")
	}
	require.Equal(t, charge.StatusSucceeded, b.charge(t, cmd.ChargeID).Status)
	pending, err := consumer.Pending(ctx)
	require.NoError(t, err)
	require.Zero(t, pending, "the in-flight command was acknowledged")
}

// When a whole batch cannot be handled within StepTimeout (a slow processor, store or
// machine), the worker takes smaller batches instead of timing out and retrying the same
// batch for ever: 60 commands whose processor calls take 20 ms one at a time, with 300 ms
// per batch, all settle.
func TestSlowBatchesShrink(t *testing.T) {
	t.Parallel()
	b := setup(t)
	ctx := context.Background()
	b.proc.delay = 20 * time.Millisecond
	var ids []string
	for range 60 {
		cmd, _ := command(t, "pm_card_visa", true)
		require.NoError(t, b.conn.PublishCommand(ctx, cmd))
		ids = append(ids, cmd.ChargeID)
	}
	consumer, err := b.conn.CommandConsumer(ctx, queue.ConsumerConfig{})
	require.NoError(t, err)
	logger := slog.New(slog.NewTextHandler(io.Discard, nil))
	w := worker.New(worker.Config{RetrySchedule: b.schedule, FetchWait: 50 * time.Millisecond, Concurrency: 1, Pipelines: 1, StepTimeout: 300 * time.Millisecond},
		service.CommandSource(consumer), b.store, b.conn, b.proc, logger, prometheus.NewRegistry(), time.Now)
	runCtx, stop := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- w.Run(runCtx) }()
	require.Eventually(t, func() bool {
		n, err := consumer.Pending(ctx)
		return err == nil && n == 0
	}, 60*time.Second, 50*time.Millisecond, "every command settled")
	stop()
	require.NoError(t, <-done)
	for _, id := range ids {
		require.Equal(t, charge.StatusSucceeded, b.charge(t, id).Status)
	}
}

// A command whose document the store refuses for good (here a charge of 17 MiB, over the
// 16 MiB any MongoDB server or FerretDB stores) is dead-lettered on its first delivery,
// counted, and the commands fetched beside it settle: it neither comes back for ever nor
// holds the others back.
func TestPoisonCommandIsDeadLetteredAlone(t *testing.T) {
	t.Parallel()
	b := setup(t)
	var msgs []*msg
	var cmds []charge.Command
	for i := range 5 {
		cmd, data := command(t, "pm_card_visa", true)
		if i == 2 {
			huge := strings.Repeat("x", 17<<20)
			cmd.Charge.Description = &huge
			var err error
			data, err = json.Marshal(cmd)
			require.NoError(t, err)
		}
		cmds = append(cmds, cmd)
		msgs = append(msgs, &msg{data: data, delivered: 1})
	}
	batch := make([]worker.Message, len(msgs))
	for i, m := range msgs {
		batch[i] = m
	}
	b.worker.Handle(context.Background(), batch)

	for i, m := range msgs {
		if i == 2 {
			require.True(t, m.termed.Load(), "the poison command is terminated")
			require.False(t, m.acked.Load())
			require.Zero(t, m.nakDelay.Load(), "and not retried")
			continue
		}
		require.True(t, m.acked.Load(), "command %d settles beside the poison one", i)
		require.Equal(t, charge.StatusSucceeded, b.charge(t, cmds[i].ChargeID).Status)
	}
	dead, err := b.store.DeadLetters(context.Background())
	require.NoError(t, err)
	require.Len(t, dead, 1)
	require.Contains(t, dead[0].Reason, "refused for good")
	require.Equal(t, 1.0, b.counter(t, "billing_worker_commands_total", "result", "dead_lettered"))
}

// The time from a command's 202 to its acknowledgement is observed under its type; the
// other types are exported from zero.
func TestSettleDurationIsObservedByType(t *testing.T) {
	t.Parallel()
	b := setup(t)
	cmd, _ := command(t, "pm_card_visa", true)
	cmd.AcceptedAt = time.Now().Add(-3 * time.Second)
	data, err := json.Marshal(cmd)
	require.NoError(t, err)
	m := &msg{data: data, delivered: 1}
	b.worker.Handle(context.Background(), []worker.Message{m})
	require.True(t, m.acked.Load())

	settled := map[string]uint64{}
	families, err := b.reg.Gather()
	require.NoError(t, err)
	for _, f := range families {
		if f.GetName() != "billing_worker_settle_duration_seconds" {
			continue
		}
		for _, s := range f.GetMetric() {
			typ := s.GetLabel()[0].GetValue()
			settled[typ] = s.GetHistogram().GetSampleCount()
			if typ == string(charge.CommandCreate) {
				require.GreaterOrEqual(t, s.GetHistogram().GetSampleSum(), 3.0, "measured from the 202")
			}
		}
	}
	require.Equal(t, map[string]uint64{"charge.create": 1, "charge.capture": 0, "charge.cancel": 0, "refund.create": 0}, settled)
}

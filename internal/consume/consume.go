// Package consume is the one way our queue's messages are handled, whichever consumer
// they come from (charge commands, events to fan out, webhook deliveries), in the manner
// of watermill's router and River's job outcomes.
//
// A Loop fetches batches from a durable consumer, keeps every message it holds marked in
// progress until it is settled, and on shutdown stops fetching and waits for what it holds.
// A handler says what became of each message (an Outcome): done, retry after a delay (one
// attempt used), wait (no attempt used), or refuse (poison). Settle, the one place a
// message is settled, turns that into the queue's verbs:
//
//	Done    ack
//	Retry   handed back for later with its attempt count grown; a delayed nak if that fails
//	Wait    a delayed nak under HandBackFrom, else handed back for later; attempts unchanged
//	Refuse  recorded as a dead letter, then terminated; retried in a while if not recorded
//
// A poison message is therefore always a dead letter, where an operator can list it and
// replay it (`worker deadletters`), never acknowledged and skipped or dropped unseen.
package consume

import (
	"cmp"
	"context"
	"log/slog"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/billing/billing/internal/charge"
)

// Message is one delivery of a queued message; *queue.Msg is one.
type Message interface {
	Data() []byte
	Subject() string
	Header(key string) string
	// ID names the message for its dead letter, the same on every delivery of it.
	ID() string
	// Headers are the message's own headers (not the queue's), kept with a dead letter so
	// that a replay is the message as it was.
	Headers() map[string]string
	// NumDelivered counts deliveries, this one included, whatever became of the earlier
	// ones: a crash, a wait, a retry.
	NumDelivered() uint64
	// Attempt is which attempt of the work this delivery is: 1 plus the Retry outcomes
	// before it. Waits do not count.
	Attempt() uint64
	Ack(ctx context.Context) error
	NakWithDelay(d time.Duration) error
	// Later hands the message back to come again after d as a new delivery, holding
	// none of the consumer's places for unacknowledged messages meanwhile, with Attempt
	// reporting attempt then.
	Later(ctx context.Context, d time.Duration, attempt uint64) error
	Term() error
	InProgress() error
}

// Source hands out batches of messages; an empty batch means none arrived within wait.
type Source interface {
	Fetch(ctx context.Context, max int, wait time.Duration) ([]Message, error)
}

// SourceOf adapts a fetch that returns a concrete message type (queue.Consumer.Fetch) to
// a Source.
func SourceOf[M Message](fetch func(ctx context.Context, max int, wait time.Duration) ([]M, error)) Source {
	return sourceFunc[M](fetch)
}

type sourceFunc[M Message] func(ctx context.Context, max int, wait time.Duration) ([]M, error)

func (f sourceFunc[M]) Fetch(ctx context.Context, max int, wait time.Duration) ([]Message, error) {
	msgs, err := f(ctx, max, wait)
	out := make([]Message, len(msgs))
	for i, m := range msgs {
		out[i] = m
	}
	return out, err
}

// DeadLetters records messages given up on.
type DeadLetters interface {
	InsertDeadLetters(ctx context.Context, ds []charge.DeadLetter) error
}

// Kind is what became of a message.
type Kind int

const (
	// KindDone: everything the message causes is durable (or it causes nothing).
	KindDone Kind = iota
	// KindRetry: the work failed for a reason that may pass (a processor's transient
	// error); one attempt is used.
	KindRetry
	// KindWait: the message cannot be worked on yet (its charge is not ready, the store
	// is away); no attempt is used.
	KindWait
	// KindRefuse: the message can never be handled (undecodable, refused for good by
	// the store); it becomes a dead letter.
	KindRefuse
)

// Outcome is what a handler says became of one message.
type Outcome struct {
	Kind   Kind
	After  time.Duration // for KindRetry and KindWait: when to deliver it again
	Reason string        // for KindRefuse: why, kept on the dead letter
}

// Done is the outcome of a message fully handled.
func Done() Outcome { return Outcome{Kind: KindDone} }

// Retry is the outcome of a failed attempt: again after d, an attempt used.
func Retry(d time.Duration) Outcome { return Outcome{Kind: KindRetry, After: d} }

// Wait is the outcome of a message not handled yet: again after d, no attempt used.
func Wait(d time.Duration) Outcome { return Outcome{Kind: KindWait, After: d} }

// Refuse is the outcome of a poison message: dead-lettered with reason, and terminated.
func Refuse(reason string) Outcome { return Outcome{Kind: KindRefuse, Reason: reason} }

// HandBackFrom is the shortest wait for which a message is handed back for later rather
// than nak'd: a delayed nak keeps it among its consumer's unacknowledged messages, which
// are capped (MaxAckPending), and enough long waits there would stop the consumer
// delivering anything else, to anyone. A retry is always handed back, to count its attempt.
const HandBackFrom = 5 * time.Second

// refusedWait is the wait of a refused message whose dead letter could not be recorded.
const refusedWait = 5 * time.Second

// Config configures a Loop.
type Config struct {
	// Name names the consumer in logs.
	Name string
	// Metric names the counter of settled messages, by result (acked, retried, waiting,
	// dead_lettered); Help describes it.
	Metric, Help string
	// Batch bounds the messages one fetch takes. Defaults to 256.
	Batch int
	// Pipelines is how many fetch loops run at once. Defaults to 1.
	Pipelines int
	// Capacity bounds the messages held at once, fetched and not yet settled. Defaults
	// to Batch × Pipelines.
	Capacity int
	// FetchWait is how long one fetch waits for messages. Defaults to 1s.
	FetchWait time.Duration
	// StepTimeout, when set, bounds the handling of one batch, and a batch that runs out
	// of it makes the next fetches smaller. Zero for a handler that bounds its own work
	// and settles its messages after it returns.
	StepTimeout time.Duration
	// AckWait is the consumer's ack wait: held messages are marked in progress every
	// third of it. Defaults to 30s.
	AckWait time.Duration
}

// Handler handles a batch. It settles every message with Loop.Settle, before it returns
// or after (then on a context of its own: ctx ends when it returns if StepTimeout is set).
type Handler func(ctx context.Context, msgs []Message)

// Loop fetches, holds and settles the messages of one consumer.
type Loop struct {
	cfg     Config
	dead    DeadLetters
	logger  *slog.Logger
	now     charge.TimeNow
	results *prometheus.CounterVec

	mu      sync.Mutex
	held    map[Message]struct{}
	changed chan struct{} // closed and replaced whenever a held message is settled
}

// New returns a Loop; dead records refused messages, reg receives the loop's counter.
func New(cfg Config, dead DeadLetters, logger *slog.Logger, reg prometheus.Registerer, now charge.TimeNow) *Loop {
	cfg.Batch = cmp.Or(cfg.Batch, 256)
	cfg.Pipelines = cmp.Or(cfg.Pipelines, 1)
	cfg.Capacity = cmp.Or(cfg.Capacity, cfg.Batch*cfg.Pipelines)
	cfg.FetchWait = cmp.Or(cfg.FetchWait, time.Second)
	cfg.AckWait = cmp.Or(cfg.AckWait, 30*time.Second)
	l := &Loop{cfg: cfg, dead: dead, logger: logger.With("consumer", cfg.Name), now: now,
		results: prometheus.NewCounterVec(prometheus.CounterOpts{Name: cfg.Metric, Help: cfg.Help}, []string{"result"}),
		held:    map[Message]struct{}{}, changed: make(chan struct{})}
	// Every result from zero, so that the first dead letter is an increase an alert sees.
	for _, r := range []string{"acked", "retried", "waiting", "dead_lettered"} {
		l.results.WithLabelValues(r)
	}
	reg.MustRegister(l.results)
	return l
}

// Run fetches batches from source and hands them to handle until ctx ends; then it stops
// fetching, hands over what the last fetch returned, and returns once every message it
// holds is settled.
func (l *Loop) Run(ctx context.Context, source Source, handle Handler) error {
	stop := l.keepInProgress()
	defer stop()
	var wg sync.WaitGroup
	for range l.cfg.Pipelines {
		wg.Go(func() { l.pipeline(ctx, source, handle) })
	}
	wg.Wait()
	for {
		l.mu.Lock()
		n, changed := len(l.held), l.changed
		l.mu.Unlock()
		if n == 0 {
			return nil
		}
		<-changed
	}
}

func (l *Loop) pipeline(ctx context.Context, source Source, handle Handler) {
	// size is how many messages a fetch takes: with a StepTimeout, as many as the last
	// batch's pace handles in half of it (at most Batch), and at most half of a batch that
	// ran out of it. A slow store or machine then makes batches smaller, rather than every
	// batch time out and be retried whole for ever.
	size := l.cfg.Batch
	backoff := time.Duration(0)
	for {
		free := l.waitForRoom(ctx)
		if ctx.Err() != nil {
			return
		}
		msgs, err := source.Fetch(ctx, min(size, free), l.cfg.FetchWait)
		l.hold(msgs)
		if ctx.Err() != nil {
			// Draining: whatever this fetch returned is still ours to finish.
			l.handle(ctx, handle, msgs)
			return
		}
		if err != nil {
			backoff = min(max(2*backoff, time.Second), 10*time.Second)
			l.logger.WarnContext(ctx, "fetching", "error", err, "retry_in", backoff)
			select {
			case <-ctx.Done():
				return
			case <-time.After(backoff):
			}
			continue
		}
		backoff = 0
		start := time.Now()
		timedOut := l.handle(ctx, handle, msgs)
		if n := len(msgs); n > 0 && l.cfg.StepTimeout > 0 {
			took := max(time.Since(start), time.Millisecond)
			size = int(min(int64(l.cfg.Batch), max(1, int64(n)*int64(l.cfg.StepTimeout/2)/int64(took))))
			if timedOut {
				size = max(1, min(size, n/2))
				l.logger.WarnContext(ctx, "a batch ran out of time; fetching fewer messages at once", "batch", size, "step_timeout", l.cfg.StepTimeout)
			}
		}
	}
}

// handle hands msgs to h on a context that outlives ctx's cancellation, so that a drain
// finishes the work in hand, bounded by StepTimeout when set. It reports whether the batch
// ran out of that time.
func (l *Loop) handle(ctx context.Context, h Handler, msgs []Message) (timedOut bool) {
	if len(msgs) == 0 {
		return false
	}
	hctx := context.WithoutCancel(ctx)
	if l.cfg.StepTimeout > 0 {
		var cancel context.CancelFunc
		hctx, cancel = context.WithTimeout(hctx, l.cfg.StepTimeout)
		defer cancel()
	}
	h(hctx, msgs)
	return hctx.Err() != nil
}

// waitForRoom returns how many more messages may be held, once there is room for one,
// or 0 when ctx ends first.
func (l *Loop) waitForRoom(ctx context.Context) int {
	for {
		l.mu.Lock()
		free, changed := l.cfg.Capacity-len(l.held), l.changed
		l.mu.Unlock()
		if free > 0 {
			return free
		}
		select {
		case <-ctx.Done():
			return 0
		case <-changed:
		}
	}
}

func (l *Loop) hold(msgs []Message) {
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, m := range msgs {
		l.held[m] = struct{}{}
	}
}

func (l *Loop) release(msgs []Message) {
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, m := range msgs {
		delete(l.held, m)
	}
	close(l.changed)
	l.changed = make(chan struct{})
}

// keepInProgress marks held messages in progress every third of the ack wait until the
// returned func is called, so that one waiting its turn or in a slow batch is not
// delivered to another worker meanwhile.
func (l *Loop) keepInProgress() func() {
	done := make(chan struct{})
	go func() {
		tick := time.NewTicker(l.cfg.AckWait / 3)
		defer tick.Stop()
		for {
			select {
			case <-done:
				return
			case <-tick.C:
				l.mu.Lock()
				msgs := make([]Message, 0, len(l.held))
				for m := range l.held {
					msgs = append(msgs, m)
				}
				l.mu.Unlock()
				for _, m := range msgs {
					_ = m.InProgress()
				}
			}
		}
	}()
	return func() { close(done) }
}

// Settle settles each of msgs as outs says, outs[i] for msgs[i]. Refused messages are
// recorded as dead letters, together, before any is terminated; if that fails they wait
// and are refused again on their next delivery. An error settling one message is logged:
// the queue then delivers it again after its ack wait, and its handling re-runs.
func (l *Loop) Settle(ctx context.Context, msgs []Message, outs []Outcome) {
	defer l.release(msgs)
	var dead []charge.DeadLetter
	for i, m := range msgs {
		if outs[i].Kind == KindRefuse {
			dead = append(dead, DeadLetterOf(m, outs[i].Reason, l.now()))
		}
	}
	recorded := true
	if len(dead) > 0 {
		if err := l.dead.InsertDeadLetters(ctx, dead); err != nil {
			l.logger.WarnContext(ctx, "recording dead letters; they wait", "error", err, "messages", len(dead))
			recorded = false
		}
	}
	// Each verb is a round trip to the server (a hand-back two: the copy, then the ack),
	// and in the cluster a replicated write: in turn, a batch of 256 would take a
	// second or more. They go out together, a bounded number at once.
	var wg sync.WaitGroup
	sem := make(chan struct{}, settleConcurrency)
	for i, m := range msgs {
		o := outs[i]
		if o.Kind == KindRefuse && !recorded {
			o = Wait(refusedWait)
		}
		sem <- struct{}{}
		wg.Go(func() {
			defer func() { <-sem }()
			l.settle(ctx, m, o)
		})
	}
	wg.Wait()
}

// settleConcurrency bounds the messages Settle settles at once.
const settleConcurrency = 64

func (l *Loop) settle(ctx context.Context, m Message, o Outcome) {
	var err error
	switch o.Kind {
	case KindDone:
		err = m.Ack(ctx)
		l.results.WithLabelValues("acked").Inc()
	case KindRetry:
		err = l.later(ctx, m, o.After, m.Attempt()+1)
		l.results.WithLabelValues("retried").Inc()
	case KindWait:
		if o.After < HandBackFrom {
			err = m.NakWithDelay(o.After)
		} else {
			err = l.later(ctx, m, o.After, m.Attempt())
		}
		l.results.WithLabelValues("waiting").Inc()
	case KindRefuse:
		l.logger.ErrorContext(ctx, "dead-lettered", "subject", m.Subject(), "reason", o.Reason)
		err = m.Term()
		l.results.WithLabelValues("dead_lettered").Inc()
	}
	if err != nil {
		l.logger.WarnContext(ctx, "settling a message; it comes again after its ack wait", "subject", m.Subject(), "error", err)
	}
}

// SettleOne settles m as o says.
func (l *Loop) SettleOne(ctx context.Context, m Message, o Outcome) {
	l.Settle(ctx, []Message{m}, []Outcome{o})
}

// later hands m back for later; if that fails, a delayed nak brings it back in place,
// the attempt uncounted (a retry too many rather than a charge failed too soon).
func (l *Loop) later(ctx context.Context, m Message, d time.Duration, attempt uint64) error {
	err := m.Later(ctx, d, attempt)
	if err == nil {
		return nil
	}
	l.logger.WarnContext(ctx, "handing a message back for later; naking it", "subject", m.Subject(), "error", err)
	return m.NakWithDelay(d)
}

// DeadLetterOf is the dead letter of m, given up on at at for reason.
func DeadLetterOf(m Message, reason string, at time.Time) charge.DeadLetter {
	return charge.DeadLetter{
		ID: m.ID(), Subject: m.Subject(), Data: m.Data(), Headers: m.Headers(),
		Reason: reason, Attempts: m.NumDelivered(), At: at,
	}
}

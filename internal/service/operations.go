package service

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"time"

	"github.com/billing/billing/internal/charge"
	"github.com/billing/billing/internal/queue"
	"github.com/billing/billing/internal/reconcile"
	"github.com/billing/billing/internal/store"
	"github.com/billing/billing/internal/webhook"
)

// settleSampleEvery is how often the ingest samples the commands settled, by default.
const settleSampleEvery = 10 * time.Second

// WithSettleSampling makes the ingest sample the commands settled every d instead of
// every 10 s (the operator page's settle rate), for tests.
func WithSettleSampling(d time.Duration) Option {
	return func(o *options) { o.settleSampleEvery = d }
}

// operations is what the dashboard's operator pages read and do, over the ingest's queue
// and store: `worker deadletters` without a shell.
type operations struct {
	queue  *queue.Conn
	store  store.Store
	logger *slog.Logger
	// sampleEvery is how often sample reads the commands settled. Defaults to
	// settleSampleEvery. The rate is over the last 6 samples' span (a minute by default)
	// and needs 2 samples half an interval apart (5 s).
	sampleEvery time.Duration

	mu sync.Mutex
	// samples are the latest, oldest first; at most settleSamples.
	samples []settleSample
}

// settleSamples is how many samples the rate spans: 6 intervals, a minute by default.
const settleSamples = 7

// settleSample is the commands settled so far, at a time.
type settleSample struct {
	at      time.Time
	settled uint64
}

// sample reads the commands settled every sampleEvery until ctx ends. A failed read is
// skipped: the rate then spans the samples around it.
func (o *operations) sample(ctx context.Context) {
	t := time.NewTicker(cmp.Or(o.sampleEvery, settleSampleEvery))
	defer t.Stop()
	for {
		o.sampleOnce(ctx)
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

func (o *operations) sampleOnce(ctx context.Context) {
	last, held, err := o.queue.CommandCounts(ctx)
	if err != nil {
		if ctx.Err() == nil {
			o.logger.Debug("sampling the commands settled", "error", err)
		}
		return
	}
	s := settleSample{at: time.Now(), settled: last - min(last, held)}
	o.mu.Lock()
	defer o.mu.Unlock()
	if n := len(o.samples); n > 0 && s.settled < o.samples[n-1].settled {
		o.samples = o.samples[:0] // the stream was made again: start over
	}
	if len(o.samples) == settleSamples {
		o.samples = slices.Delete(o.samples, 0, 1)
	}
	o.samples = append(o.samples, s)
}

// SettleRate is the commands settled per second over the samples kept, and the span it is
// measured over; ok is false while it is still measuring.
func (o *operations) SettleRate(context.Context) (perSecond float64, over time.Duration, ok bool) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if len(o.samples) < 2 {
		return 0, 0, false
	}
	first, last := o.samples[0], o.samples[len(o.samples)-1]
	over = last.at.Sub(first.at)
	if over < cmp.Or(o.sampleEvery, settleSampleEvery)/2 {
		return 0, over, false
	}
	return float64(last.settled-first.settled) / over.Seconds(), over, true
}

func (o *operations) Backlog(ctx context.Context) (pending, waiting uint64, err error) {
	return o.queue.CommandBacklog(ctx)
}

func (o *operations) DeadLetters(ctx context.Context, limit int) ([]charge.DeadLetter, error) {
	ds, err := o.store.DeadLetters(ctx)
	if err != nil {
		return nil, err
	}
	return ds[:min(len(ds), limit)], nil
}

// ReplayDeadLetter publishes a dead letter's message again, then removes it, as
// `worker deadletters --replay` does.
func (o *operations) ReplayDeadLetter(ctx context.Context, id string) error {
	ds, err := o.store.DeadLetters(ctx)
	if err != nil {
		return err
	}
	i := slices.IndexFunc(ds, func(d charge.DeadLetter) bool { return d.ID == id })
	if i < 0 {
		return charge.ErrNotFound
	}
	if err := o.queue.Replay(ctx, ds[i]); err != nil {
		return err
	}
	if err := o.store.DeleteDeadLetter(ctx, id); err != nil {
		return fmt.Errorf("replayed %s, but could not remove its dead letter: %w", id, err)
	}
	return nil
}

func (o *operations) DisabledEndpoints(ctx context.Context, limit int) ([]webhook.Endpoint, error) {
	return o.store.DisabledEndpoints(ctx, limit)
}

// Reconciliation is the summary the last `worker reconcile` recorded, or nil if none has.
func (o *operations) Reconciliation(ctx context.Context) (*reconcile.Summary, error) {
	data, err := o.queue.Report(ctx, queue.ReportReconciliation)
	if errors.Is(err, charge.ErrNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var s reconcile.Summary
	if err := json.Unmarshal(data, &s); err != nil {
		return nil, fmt.Errorf("decoding the reconciliation's summary: %w", err)
	}
	return &s, nil
}

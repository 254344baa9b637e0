package service

import (
	"context"
	"errors"
	"log/slog"
	"math"
	"net/http"
	"slices"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.opentelemetry.io/otel/trace"
	"golang.org/x/sync/errgroup"

	"github.com/billing/billing/internal/config"
	"github.com/billing/billing/internal/consume"
	"github.com/billing/billing/internal/processor"
	"github.com/billing/billing/internal/queue"
	"github.com/billing/billing/internal/webhook"
	"github.com/billing/billing/internal/worker"
)

// janitorInterval is how often expired events are swept.
const janitorInterval = time.Hour

// RunWorker runs a worker with the roles cfg names until ctx ends, then drains: it stops
// fetching, finishes and acknowledges what is in flight, and closes its connections.
func RunWorker(ctx context.Context, cfg config.Config, logger *slog.Logger, opts ...Option) error {
	return stoppedEarly(ctx, runWorker(ctx, cfg, logger, opts))
}

func runWorker(ctx context.Context, cfg config.Config, logger *slog.Logger, opts []Option) error {
	tp, flush, err := startTracing(ctx, cfg, "billing-worker", logger, opts)
	if err != nil {
		return err
	}
	defer flush()
	g, gctx := errgroup.WithContext(ctx)
	d, err := connect(gctx, cfg, "billing-worker", tp, logger, func(f func() error) { g.Go(f) })
	if err != nil {
		return errors.Join(err, g.Wait())
	}
	defer d.close()

	var runs []func(context.Context) error
	if slices.Contains(cfg.WorkerRoles, config.RoleCharges) {
		run, err := chargesRole(gctx, cfg, d, tp, logger)
		if err != nil {
			return err
		}
		runs = append(runs, run)
	}
	if slices.Contains(cfg.WorkerRoles, config.RoleWebhooks) {
		more, err := webhooksRole(gctx, cfg, d, tp, logger)
		if err != nil {
			return err
		}
		runs = append(runs, more...)
	}
	g.Go(func() error {
		<-gctx.Done()
		d.admin.MarkDraining()
		return nil
	})
	for _, run := range runs {
		g.Go(func() error { return run(gctx) })
	}
	d.admin.MarkReady()
	logger.Info("worker running", "roles", cfg.WorkerRoles, "processor", cfg.Processor)
	return g.Wait()
}

// chargesRole settles charge commands.
func chargesRole(ctx context.Context, cfg config.Config, d *deps, tp trace.TracerProvider, logger *slog.Logger) (func(context.Context) error, error) {
	consumer, err := retry(ctx, logger, "the charges consumer", func() (*queue.Consumer, error) {
		return d.queue.CommandConsumer(ctx, queue.ConsumerConfig{AckWait: cfg.WorkerAckWait})
	})
	if err != nil {
		return nil, err
	}
	d.reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "billing_queue_pending_commands",
		Help: "Commands waiting for a worker or in a worker's hands: the lag to scale workers on.",
	}, gauge(consumer.Lag)), prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "billing_queue_waiting_commands",
		Help: "Commands handed back to wait, not lag: refunds waiting for their charge's capture, retries 5 s or more away (about).",
	}, gauge(consumer.Waiting)))
	w := worker.New(worker.Config{
		Batch: cfg.WorkerBatch, Concurrency: cfg.WorkerConcurrency,
		RetrySchedule: cfg.WorkerRetrySchedule, StepTimeout: cfg.ShutdownTimeout, AckWait: cfg.WorkerAckWait,
		TracerProvider: tp,
	}, CommandSource(consumer), d.store, d.queue, newProcessor(cfg), logger, d.reg, time.Now)
	return w.Run, nil
}

// newProcessor returns the processor cfg names.
func newProcessor(cfg config.Config) worker.Processor {
	if cfg.Processor == "http" {
		return &processor.HTTP{BaseURL: cfg.ProcessorURL, Client: &http.Client{Timeout: cfg.ProcessorTimeout}}
	}
	return processor.Simulated{}
}

// webhooksRole fans events out to endpoints, delivers them, and sweeps expired events.
func webhooksRole(ctx context.Context, cfg config.Config, d *deps, tp trace.TracerProvider, logger *slog.Logger) ([]func(context.Context) error, error) {
	box, err := newBox(cfg)
	if err != nil {
		return nil, err
	}
	events, err := retry(ctx, logger, "the webhook fan-out consumer", func() (*queue.Consumer, error) {
		return d.queue.EventConsumer(ctx, queue.ConsumerConfig{})
	})
	if err != nil {
		return nil, err
	}
	// Long enough for an attempt to time out, short enough that a crashed worker's tasks
	// go to another soon; tasks waiting for a slot are kept in progress meanwhile.
	ackWait := max(10*time.Second, 3*cfg.WebhookTimeout)
	tasks, err := retry(ctx, logger, "the webhook deliveries consumer", func() (*queue.Consumer, error) {
		return d.queue.TaskConsumer(ctx, queue.ConsumerConfig{AckWait: ackWait})
	})
	if err != nil {
		return nil, err
	}
	d.reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "billing_webhook_pending_tasks",
		Help: "Webhook deliveries waiting for a worker or in flight.",
	}, gauge(tasks.Lag)), prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "billing_webhook_waiting_tasks",
		Help: "Webhook deliveries waiting for their next attempt after a failed one (about).",
	}, gauge(tasks.Waiting)))
	guard := &webhook.Guard{AllowPrivate: cfg.WebhookAllowPrivate}
	fanout := webhook.NewFanout(d.store, d.queue, logger, d.reg, time.Now)
	deliverer := webhook.NewDeliverer(webhook.DelivererConfig{
		Concurrency: cfg.WebhookConcurrency, PerEndpoint: cfg.WebhookEndpointConcurrency,
		Timeout: cfg.WebhookTimeout, Schedule: cfg.WebhookRetrySchedule,
		DisableAfter: cfg.WebhookDisableAfter, AckWait: ackWait, TracerProvider: tp,
	}, d.store, d.queue, box, webhook.NewClient(guard, cfg.WebhookTimeout, cfg.WebhookEndpointConcurrency),
		logger, d.reg, time.Now)
	janitor := &webhook.Janitor{Store: d.store, Retention: cfg.EventRetention, Interval: janitorInterval, Logger: logger, NowFunc: time.Now}
	return []func(context.Context) error{
		func(ctx context.Context) error { return fanout.Run(ctx, consume.SourceOf(events.Fetch)) },
		func(ctx context.Context) error { return deliverer.Run(ctx, consume.SourceOf(tasks.Fetch)) },
		janitor.Run,
	}, nil
}

// gauge reports a count of a consumer's (Lag, Waiting) for a gauge; NaN when it cannot
// be read.
func gauge(count func(context.Context) (uint64, error)) func() float64 {
	return func() float64 {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		n, err := count(ctx)
		if err != nil {
			return math.NaN()
		}
		return float64(n)
	}
}

// CommandSource adapts the queue's consumer to the worker's Source.
func CommandSource(c *queue.Consumer) worker.Source { return consume.SourceOf(c.Fetch) }

package service

import (
	"context"
	"errors"
	"log/slog"
	"math"
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/sync/errgroup"

	"github.com/billing/billing/internal/config"
	"github.com/billing/billing/internal/processor"
	"github.com/billing/billing/internal/queue"
	"github.com/billing/billing/internal/worker"
)

// RunWorker runs a worker until ctx ends, then drains: it stops fetching, finishes and
// acknowledges the batches in flight, and closes its connections.
func RunWorker(ctx context.Context, cfg config.Config, logger *slog.Logger) error {
	g, gctx := errgroup.WithContext(ctx)
	d, err := connect(gctx, cfg, "billing-worker", logger, func(f func() error) { g.Go(f) })
	if err != nil {
		return errors.Join(err, g.Wait())
	}
	defer d.close()

	consumer, err := d.queue.CommandConsumer(gctx, queue.ConsumerConfig{AckWait: cfg.WorkerAckWait})
	if err != nil {
		return err
	}
	d.reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "billing_queue_pending_commands",
		Help: "Commands waiting in CHARGES or delivered and not yet acknowledged: the lag to scale workers on.",
	}, func() float64 {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		n, err := consumer.Pending(ctx)
		if err != nil {
			return math.NaN()
		}
		return float64(n)
	}))
	var proc worker.Processor = processor.Simulated{}
	if cfg.Processor == "http" {
		proc = &processor.HTTP{BaseURL: cfg.ProcessorURL, Client: &http.Client{Timeout: cfg.ProcessorTimeout}}
	}
	w := worker.New(worker.Config{
		Batch: cfg.WorkerBatch, Concurrency: cfg.WorkerConcurrency,
		RetrySchedule: cfg.WorkerRetrySchedule, StepTimeout: cfg.ShutdownTimeout, AckWait: cfg.WorkerAckWait,
	}, CommandSource(consumer), d.store, d.queue, proc, logger, d.reg, time.Now)
	g.Go(func() error {
		<-gctx.Done()
		d.admin.MarkDraining()
		return nil
	})
	g.Go(func() error { return w.Run(gctx) })
	d.admin.MarkReady()
	logger.Info("worker running", "processor", cfg.Processor)
	return g.Wait()
}

// CommandSource adapts the queue's consumer to the worker's Source.
func CommandSource(c *queue.Consumer) worker.Source { return source{c} }

type source struct{ c *queue.Consumer }

func (s source) Fetch(ctx context.Context, max int, wait time.Duration) ([]worker.Message, error) {
	msgs, err := s.c.Fetch(ctx, max, wait)
	out := make([]worker.Message, len(msgs))
	for i, m := range msgs {
		out[i] = m
	}
	return out, err
}

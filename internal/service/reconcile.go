package service

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"time"

	"github.com/billing/billing/internal/config"
	"github.com/billing/billing/internal/queue"
	"github.com/billing/billing/internal/reconcile"
	"github.com/billing/billing/internal/store"
)

// reconcileConcurrency bounds the processor calls a reconciliation makes at once.
const reconcileConcurrency = 16

// Reconcile checks the store against itself and, with askProcessor, against the
// configured processor, writes one line per disagreement and a summary to out, records
// the summary in the REPORTS bucket for the dashboard's operator page, and returns the
// report. A summary that cannot be recorded is logged, not an error: the check ran.
func Reconcile(ctx context.Context, cfg config.Config, logger *slog.Logger, askProcessor bool, out io.Writer) (reconcile.Report, error) {
	st, err := store.Open(ctx, StoreConfig(cfg), logger)
	if err != nil {
		return reconcile.Report{}, fmt.Errorf("opening the store: %w", err)
	}
	defer func() { _ = st.Close(context.WithoutCancel(ctx)) }()
	var proc reconcile.Processor
	if askProcessor {
		proc = newProcessor(cfg)
	}
	began := time.Now()
	rep, err := reconcile.Run(ctx, st, proc, reconcileConcurrency)
	if err != nil {
		return rep, err
	}
	for _, f := range rep.Findings {
		fmt.Fprintln(out, f)
	}
	fmt.Fprintln(out, rep.Summary())
	if err := recordReconciliation(ctx, cfg, logger, rep.Summarize(began, time.Since(began).Round(time.Millisecond), askProcessor)); err != nil {
		logger.Warn("the summary of the reconciliation was not recorded for the dashboard", "error", err)
	}
	return rep, nil
}

// recordReconciliation stores sum as the last reconciliation's, where the ingest reads it.
func recordReconciliation(ctx context.Context, cfg config.Config, logger *slog.Logger, sum reconcile.Summary) error {
	data, err := json.Marshal(sum)
	if err != nil {
		return err
	}
	q, err := queue.Connect(ctx, QueueConfig(cfg, "billing-reconcile"), logger)
	if err != nil {
		return err
	}
	defer q.Close()
	return q.SaveReport(ctx, queue.ReportReconciliation, data)
}

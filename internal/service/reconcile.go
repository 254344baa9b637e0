package service

import (
	"context"
	"fmt"
	"io"
	"log/slog"

	"github.com/billing/billing/internal/config"
	"github.com/billing/billing/internal/reconcile"
	"github.com/billing/billing/internal/store"
)

// reconcileConcurrency bounds the processor calls a reconciliation makes at once.
const reconcileConcurrency = 16

// Reconcile checks the store against itself and, with askProcessor, against the
// configured processor, writes one line per disagreement and a summary to out, and
// returns the report.
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
	rep, err := reconcile.Run(ctx, st, proc, reconcileConcurrency)
	if err != nil {
		return rep, err
	}
	for _, f := range rep.Findings {
		fmt.Fprintln(out, f)
	}
	fmt.Fprintln(out, rep.Summary())
	return rep, nil
}

package webhook

import (
	"context"
	"log/slog"
	"time"

	"github.com/billing/billing/internal/charge"
)

// Janitor deletes events and delivery records past the retention, every Interval (the
// store has no TTL indexes to do it).
type Janitor struct {
	Store     Store
	Retention time.Duration
	Interval  time.Duration
	Logger    *slog.Logger
	NowFunc   charge.TimeNow
}

// Run sweeps once at start, then every Interval, until ctx ends.
func (j *Janitor) Run(ctx context.Context) error {
	t := time.NewTicker(j.Interval)
	defer t.Stop()
	for {
		n, err := j.Store.DeleteBefore(ctx, j.NowFunc().Add(-j.Retention))
		switch {
		case err != nil && ctx.Err() == nil:
			j.Logger.WarnContext(ctx, "deleting expired events", "error", err)
		case n > 0:
			j.Logger.InfoContext(ctx, "deleted expired events and deliveries", "count", n)
		}
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
	}
}

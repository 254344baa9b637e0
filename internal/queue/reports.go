package queue

import (
	"context"
	"errors"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/billing/billing/internal/charge"
)

// The keys of the REPORTS bucket.
const (
	// ReportReconciliation is the summary of the last `worker reconcile`.
	ReportReconciliation = "reconciliation"
)

// SaveReport stores report under key in the REPORTS bucket, replacing the one before
// (the bucket keeps no history).
func (c *Conn) SaveReport(ctx context.Context, key string, report []byte) error {
	if !validToken(key) {
		return invalid("report key %q", key)
	}
	ctx, cancel := withTimeout(ctx)
	defer cancel()
	if _, err := c.streams().reports.Put(ctx, key, report); err != nil {
		return unavailable("saving report "+key, err)
	}
	return nil
}

// Report returns the report stored under key in the REPORTS bucket, or charge.ErrNotFound
// if none is.
func (c *Conn) Report(ctx context.Context, key string) ([]byte, error) {
	if !validToken(key) {
		return nil, charge.ErrNotFound
	}
	ctx, cancel := withTimeout(ctx)
	defer cancel()
	e, err := c.streams().reports.Get(ctx, key)
	if errors.Is(err, jetstream.ErrKeyNotFound) || errors.Is(err, jetstream.ErrKeyDeleted) {
		return nil, charge.ErrNotFound
	}
	if err != nil {
		return nil, unavailable("reading report "+key, err)
	}
	return e.Value(), nil
}

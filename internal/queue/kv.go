package queue

import (
	"context"
	"errors"
	"fmt"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/billing/billing/internal/charge"
)

// KV is the IDEMPOTENCY bucket: records keyed by a hash of merchant and idempotency key,
// each living IdempotencyTTL from its last write. Writes are conditional on the revision,
// so that two requests racing on one key cannot both win.
type KV struct {
	kv jetstream.KeyValue
}

// Idempotency returns the idempotency bucket.
func (c *Conn) Idempotency() *KV {
	return &KV{kv: c.streams().idempotency}
}

// Create stores value under key if the key holds nothing (never written, deleted, or
// expired), and returns its revision. It returns charge.ErrConflict if the key holds a
// value.
//
// If it fails with charge.ErrUnavailable the record may nevertheless have been written:
// a retry then meets charge.ErrConflict, and Get tells whose the record is.
func (k *KV) Create(ctx context.Context, key string, value []byte) (uint64, error) {
	if !validToken(key) {
		return 0, invalid("idempotency key %q", key)
	}
	rev, err := k.kv.Create(ctx, key, value)
	if err != nil {
		return 0, kvError("creating idempotency record", err)
	}
	return rev, nil
}

// Get returns the value under key and its revision, or charge.ErrNotFound if the key
// holds nothing.
func (k *KV) Get(ctx context.Context, key string) ([]byte, uint64, error) {
	if !validToken(key) {
		return nil, 0, charge.ErrNotFound
	}
	e, err := k.kv.Get(ctx, key)
	if errors.Is(err, jetstream.ErrKeyNotFound) || errors.Is(err, jetstream.ErrKeyDeleted) {
		return nil, 0, charge.ErrNotFound
	}
	if err != nil {
		return nil, 0, unavailable("reading idempotency record", err)
	}
	return e.Value(), e.Revision(), nil
}

// Update replaces the value under key if its revision is still revision, and returns the
// new revision. It returns charge.ErrConflict if the key was written or deleted since.
func (k *KV) Update(ctx context.Context, key string, value []byte, revision uint64) (uint64, error) {
	if !validToken(key) {
		return 0, invalid("idempotency key %q", key)
	}
	if revision == 0 {
		return 0, invalid("update of %q without a revision", key)
	}
	rev, err := k.kv.Update(ctx, key, value, revision)
	if err != nil {
		return 0, kvError("updating idempotency record", err)
	}
	return rev, nil
}

// Delete removes the value under key if its revision is still revision; Create can then
// use the key again. It returns charge.ErrConflict if the key was written or deleted
// since.
func (k *KV) Delete(ctx context.Context, key string, revision uint64) error {
	if !validToken(key) {
		return invalid("idempotency key %q", key)
	}
	if revision == 0 {
		// LastRevision(0) would delete unconditionally.
		return invalid("delete of %q without a revision", key)
	}
	if err := k.kv.Delete(ctx, key, jetstream.LastRevision(revision)); err != nil {
		return kvError("deleting idempotency record", err)
	}
	return nil
}

// kvError translates the error of a conditional write.
func kvError(what string, err error) error {
	if isWrongRevision(err) {
		return fmt.Errorf("%s: %w", what, charge.ErrConflict)
	}
	return unavailable(what, err)
}

// isWrongRevision reports whether a conditional write failed because the key's revision
// was not the expected one. nats.go reports it as ErrKeyExists (Create), as
// ErrKeyRevisionMismatch (Update, Delete), or as the bare API error (the second attempt
// of Create over a deleted key), with code 10071, or 10164 on replicated streams.
func isWrongRevision(err error) bool {
	if errors.Is(err, jetstream.ErrKeyExists) || errors.Is(err, jetstream.ErrKeyRevisionMismatch) {
		return true
	}
	var apiErr *jetstream.APIError
	return errors.As(err, &apiErr) &&
		(apiErr.ErrorCode == jetstream.JSErrCodeStreamWrongLastSequence ||
			apiErr.ErrorCode == jetstream.JSErrCodeStreamWrongLastSequenceConstant)
}

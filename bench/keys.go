package main

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

const (
	// idempotencyStream is the stream of the IDEMPOTENCY bucket.
	idempotencyStream = "KV_IDEMPOTENCY"
	// keyRecordSize is about the size of an idempotency record of a charge: the request,
	// the 202 body and the command.
	keyRecordSize = 1500
	// keysSettle is how long the keys phase waits, once every record is stored, before
	// it reads the server's memory again: long enough for the server to drop the caches
	// of the blocks it wrote, so that what remains is what it keeps per key.
	keysSettle = 15 * time.Second
)

// keysResult is the NATS server's memory before and after the IDEMPOTENCY bucket took
// keys more records.
type keysResult struct {
	keys            int
	took            time.Duration
	before, written memory // the server's process, before and right after the writes
	settled         memory // keysSettle after
	process         string
}

// perKey is the resident memory the server kept per key.
func (k keysResult) perKey() float64 {
	return float64(k.settled.current-k.before.current) / float64(k.keys)
}

// measureKeys stores n records in the IDEMPOTENCY bucket, as the ingest claims keys
// (a subject per key, made of a SHA-256 in hex, written only if the key holds nothing),
// and reads the memory of the server process p before and after. The records are purged
// afterwards.
func measureKeys(ctx context.Context, natsURL string, p *process, n int, smoke bool) (keysResult, error) {
	r := keysResult{keys: n, process: p.name}
	var failed atomic.Int64
	nc, err := nats.Connect(natsURL, nats.Name("bench-keys"))
	if err != nil {
		return r, err
	}
	defer nc.Close()
	js, err := jetstream.New(nc,
		jetstream.WithPublishAsyncErrHandler(func(jetstream.JetStream, *nats.Msg, error) { failed.Add(1) }),
		jetstream.WithPublishAsyncTimeout(asyncAckTimeout),
	)
	if err != nil {
		return r, err
	}
	st, err := js.Stream(ctx, idempotencyStream)
	if err != nil {
		return r, fmt.Errorf("stream %s: %w", idempotencyStream, err)
	}
	if r.before, err = readMemory(p.pid()); err != nil {
		return r, err
	}
	value := make([]byte, keyRecordSize)
	for i := range value {
		value[i] = 'a' + byte(i%26)
	}
	start := time.Now()
	for i := range n {
		sum := sha256.Sum256([]byte("bench-key-" + strconv.Itoa(i)))
		subject := "$KV.IDEMPOTENCY." + hex.EncodeToString(sum[:])
		if _, err := js.PublishAsync(subject, value, jetstream.WithExpectLastSequencePerSubject(0),
			jetstream.WithStallWait(asyncAckTimeout)); err != nil {
			return r, fmt.Errorf("storing key %d: %w", i, err)
		}
	}
	select {
	case <-js.PublishAsyncComplete():
	case <-time.After(asyncAckTimeout):
		return r, errors.New("keys: acks still missing after a minute")
	case <-ctx.Done():
		return r, ctx.Err()
	}
	r.took = time.Since(start)
	if f := failed.Load(); f > 0 {
		return r, fmt.Errorf("keys: %d of %d not stored", f, n)
	}
	if r.written, err = readMemory(p.pid()); err != nil {
		return r, err
	}
	settle := keysSettle
	if smoke {
		settle /= smokeDivisor
	}
	select {
	case <-time.After(settle):
	case <-ctx.Done():
		return r, ctx.Err()
	}
	if r.settled, err = readMemory(p.pid()); err != nil {
		return r, err
	}
	pctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), time.Minute)
	defer cancel()
	if err := st.Purge(pctx, jetstream.WithPurgeSubject("$KV.IDEMPOTENCY.>")); err != nil {
		return r, fmt.Errorf("purging the keys: %w", err)
	}
	return r, nil
}

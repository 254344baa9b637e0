package main

import (
	"context"
	"errors"
	"fmt"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

const (
	rawStream  = "BENCH_RAW_PUBLISH"
	rawSubject = "bench.raw"
	// rawMessageSize is about the size of a charge command.
	rawMessageSize = 400
	// asyncAckTimeout bounds the wait for all acks of the async publishes.
	asyncAckTimeout = time.Minute
)

// publishCeilings are raw JetStream publish rates to a scratch stream on the same server.
type publishCeilings struct {
	async, sync float64 // messages/s
	asyncN      int
}

// measurePublish publishes asyncN messages asynchronously (then waits for every ack),
// then publishes synchronously from one client for syncFor.
func measurePublish(ctx context.Context, natsURL string, replicas, asyncN int, syncFor time.Duration) (publishCeilings, error) {
	var failed atomic.Int64
	nc, err := nats.Connect(natsURL, nats.Name("bench-raw-publish"))
	if err != nil {
		return publishCeilings{}, err
	}
	defer nc.Close()
	js, err := jetstream.New(nc,
		jetstream.WithPublishAsyncErrHandler(func(jetstream.JetStream, *nats.Msg, error) { failed.Add(1) }),
		jetstream.WithPublishAsyncTimeout(asyncAckTimeout),
	)
	if err != nil {
		return publishCeilings{}, err
	}
	if _, err := js.CreateStream(ctx, jetstream.StreamConfig{
		Name: rawStream, Subjects: []string{rawSubject}, Storage: jetstream.FileStorage, Replicas: replicas,
	}); err != nil {
		return publishCeilings{}, fmt.Errorf("creating stream %s: %w", rawStream, err)
	}
	defer func() {
		dctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
		defer cancel()
		_ = js.DeleteStream(dctx, rawStream)
	}()
	payload := make([]byte, rawMessageSize)
	for i := range payload {
		payload[i] = 'a' + byte(i%26)
	}

	res := publishCeilings{asyncN: asyncN}
	start := time.Now()
	for range asyncN {
		// With every write fsynced the server acknowledges a few thousand a second, so
		// the 4,000 outstanding publishes nats.go allows may take a second to drain.
		if _, err := js.PublishAsync(rawSubject, payload, jetstream.WithStallWait(asyncAckTimeout)); err != nil {
			return res, fmt.Errorf("async publish: %w", err)
		}
	}
	select {
	case <-js.PublishAsyncComplete():
	case <-time.After(asyncAckTimeout):
		return res, errors.New("async publish: acks still missing after a minute")
	case <-ctx.Done():
		return res, ctx.Err()
	}
	res.async = perSecond(asyncN, time.Since(start))
	if n := failed.Load(); n > 0 {
		return res, fmt.Errorf("async publish: %d of %d not acknowledged", n, asyncN)
	}

	sent := 0
	start = time.Now()
	for time.Since(start) < syncFor {
		if _, err := js.Publish(ctx, rawSubject, payload); err != nil {
			return res, fmt.Errorf("sync publish: %w", err)
		}
		sent++
	}
	res.sync = perSecond(sent, time.Since(start))
	return res, nil
}

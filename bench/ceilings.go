package main

import (
	"context"
	"errors"
	"fmt"
	"time"
)

const (
	// asyncPublishes is how many messages the async publish ceiling sends.
	asyncPublishes = 200_000
	// smokeDivisor shortens the fixed phases (these, and the worker alone) under -smoke.
	smokeDivisor = 20
	// syncPublishFor is how long the sync publish ceiling runs.
	syncPublishFor = 3 * time.Second
	// insertFor is how long the bulk insert ceiling runs.
	insertFor = 4 * time.Second
)

// ceilingResults are what this machine can do at most for each part of the work, measured
// against the same NATS server and store as the system.
type ceilingResults struct {
	http       loadResult // a. HTTP + JWT + one JetStream publish
	httpCPU    cpuUse
	publish    publishCeilings // b. raw JetStream publish
	publishCPU cpuUse
	insert     storeCeiling // c. raw bulk insert
	insertCPU  cpuUse
}

// measureCeilings runs the ceilings one after the other, the system's processes idle.
func measureCeilings(ctx context.Context, opts config, st *stack, cpu *cpuMeter, progress func(string, ...any)) (ceilingResults, error) {
	var r ceilingResults

	progress("ceiling a: HTTP + JWT + one JetStream publish, %d connections, %s + %s warm-up", opts.concurrency, opts.duration, opts.warmup)
	srv, err := startHTTPCeiling(ctx, st.natsURL(), st.jwksPath(), st.replicas())
	if err != nil {
		return r, fmt.Errorf("ceiling a: %w", err)
	}
	load := newLoadGen(srv.url(), st.token, opts.concurrency, fmt.Sprintf("ceiling-%d-", time.Now().UnixNano()))
	cpu.start()
	r.http = load.runFor(ctx, opts.warmup, opts.duration)
	r.httpCPU = cpu.stop()
	load.close()
	cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
	defer cancel()
	if err := srv.close(cctx); err != nil {
		return r, fmt.Errorf("ceiling a: stopping: %w", err)
	}
	if r.http.accepted == 0 {
		return r, errors.New("ceiling a: nothing accepted:" + r.http.failures())
	}

	asyncN, syncFor, insertTime := asyncPublishes, syncPublishFor, insertFor
	if opts.smoke {
		asyncN, syncFor, insertTime = asyncN/smokeDivisor, syncFor/smokeDivisor, insertTime/smokeDivisor
	}
	progress("ceiling b: JetStream publish, %d async then %s sync", asyncN, syncFor)
	cpu.start()
	r.publish, err = measurePublish(ctx, st.natsURL(), st.replicas(), asyncN, syncFor)
	r.publishCPU = cpu.stop()
	if err != nil {
		return r, fmt.Errorf("ceiling b: %w", err)
	}

	progress("ceiling c: raw bulk insert into %s, batches of %d, %s", st.engine, insertBatch, insertTime)
	cpu.start()
	r.insert, err = measureStoreCeiling(ctx, st, insertTime)
	r.insertCPU = cpu.stop()
	if err != nil {
		return r, fmt.Errorf("ceiling c: %w", err)
	}
	return r, nil
}

package main

import (
	"context"
	"fmt"
	"syscall"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

const (
	// The worker's stream and durable consumer (internal/queue).
	chargesStream   = "CHARGES"
	workersConsumer = "workers"
	// acceptedSeries is the ingest's count of charges accepted for the first time.
	acceptedSeries = "billing_charges_accepted_total"
	// refundsSeries is its count of refunds accepted for the first time.
	refundsSeries = `billing_operations_accepted_total{operation="refund"}`
	// drainFor bounds the phase of the worker alone.
	drainFor = 15 * time.Second
	// settlePollEvery is how often the worker's counter is read while waiting: the
	// resolution of the end-to-end time.
	settlePollEvery = 20 * time.Millisecond
	// stallTimeout is how long the worker may go without acknowledging anything while
	// commands wait before the bench gives up on it.
	stallTimeout = 20 * time.Second
	// workerProfileFor is how long the worker is profiled while it drains (-cpuprofile).
	workerProfileFor = 5 * time.Second
	// refundsProfileFor is how long the worker and devstack are profiled while refunds
	// settle (-cpuprofile): the phase lasts about 5 s.
	refundsProfileFor = 3 * time.Second
)

// systemResults are the figures of the system under test.
type systemResults struct {
	// Both running, on a fresh store: n charges from the first POST until the last is
	// settled, or until the budget runs out.
	e2eSubmit loadResult // the POSTs; elapsed is until the last answer
	e2e       settleResult
	e2eCPU    cpuUse
	// Refunds end to end, both running: one refund of 1 cent of each of a twentieth of the
	// charges of the first phase, from the first POST until the last is settled (few
	// enough to settle before the next phases, which they would otherwise disturb).
	refundSubmit loadResult
	refunds      settleResult
	refundsCPU   cpuUse
	// The ingest alone (the worker paused): closed-loop load for the duration.
	ingest    loadResult
	ingestCPU cpuUse
	// The worker alone (the ingest idle) on the backlog left by the phases before, for at
	// most drainFor.
	drain    settleResult
	drainCPU cpuUse
	// worker is what the worker's own metrics say, at the end of the phases above.
	worker workerStats
	// Peak memory of each process, read at the end of the phases above.
	memory map[string]memory
	// memoryOrder is the processes of memory, in the order to print them.
	memoryOrder []string
	// profiles are the CPU profiles taken (-cpuprofile).
	profiles []*cpuProfile
}

// settleResult is how far the worker got with the charges a phase waited for.
type settleResult struct {
	target  int           // charges to settle
	settled int           // of them, settled in time
	elapsed time.Duration // until the last one settled, or until the time was up
	// stored is how many charges the store held when the phase began: work that reads the
	// store back can slow down as it grows.
	stored int
}

func (r settleResult) complete() bool { return r.settled >= r.target }
func (r settleResult) rate() float64  { return perSecond(r.settled, r.elapsed) }

// system measures the stack: both end to end, the ingest alone, then the worker alone.
type system struct {
	opts          config
	st            *stack
	js            jetstream.JetStream
	ingestMetrics *scraper
	workerMetrics *scraper
	cpu           *cpuMeter
	// profileDir receives CPU profiles when profiling.
	profileDir string
}

func newSystem(opts config, st *stack, js jetstream.JetStream, profileDir string) *system {
	return &system{
		opts: opts, st: st, js: js, profileDir: profileDir,
		ingestMetrics: newScraper(st.ingestAdmin),
		workerMetrics: newScraper(st.workerAdmin),
		cpu:           newCPUMeter(st.metered(st.ingest, st.worker, st.infra)),
	}
}

// connectJetStream connects the bench's own client, for the consumer's state.
func connectJetStream(natsURL string) (*nats.Conn, jetstream.JetStream, error) {
	nc, err := nats.Connect(natsURL, nats.Name("bench"))
	if err != nil {
		return nil, nil, err
	}
	js, err := jetstream.New(nc)
	if err != nil {
		nc.Close()
		return nil, nil, err
	}
	return nc, js, nil
}

func (s *system) run(ctx context.Context, progress func(string, ...any)) (systemResults, error) {
	var r systemResults
	prefix := fmt.Sprintf("bench-%d-", time.Now().UnixNano())
	load := newLoadGen(s.st.apiURL()+"/v1/charges", s.st.token, s.opts.concurrency, prefix)
	load.keepIDs = true // for the refunds of phase 2
	defer load.close()
	cons, err := s.js.Consumer(ctx, chargesStream, workersConsumer)
	if err != nil {
		return r, fmt.Errorf("looking up consumer %s: %w", workersConsumer, err)
	}

	// 1. End to end, both running, on the fresh store: progress is the worker's count of
	// acknowledged commands.
	progress("end to end: %d charges, then waiting for them to settle (at most %s from the first POST)", s.opts.n, s.opts.budget)
	ackedBefore, err := s.value(ctx, s.workerMetrics, ackedSeries)
	if err != nil {
		return r, err
	}
	acceptedBefore, err := s.value(ctx, s.ingestMetrics, acceptedSeries)
	if err != nil {
		return r, err
	}
	s.cpu.start()
	start := time.Now()
	r.e2eSubmit = load.runCount(ctx, s.opts.n)
	if r.e2eSubmit.accepted == 0 {
		return r, fmt.Errorf("end to end: ingest accepted nothing:%s", r.e2eSubmit.failures())
	}
	acceptedAfter, err := s.value(ctx, s.ingestMetrics, acceptedSeries)
	if err != nil {
		return r, err
	}
	r.e2e, err = s.waitSettled(ctx, start, int(acceptedAfter-acceptedBefore), s.opts.budget, s.ackedSince(ackedBefore))
	if err != nil {
		return r, fmt.Errorf("end to end: %w", err)
	}
	r.e2e.stored = int(ackedBefore)
	r.e2eCPU = s.cpu.stop()
	load.keepIDs = false

	// 2. Refunds end to end: each refund reserves, calls the processor and settles
	// through its charge's transition log, and writes two ledger entries.
	ids := load.ids()
	ids = ids[:len(ids)/20]
	progress("refunds end to end: %d refunds of 1 cent, then waiting for them to settle", len(ids))
	refunds := newLoadGen(s.st.apiURL()+"/v1/refunds", s.st.token, s.opts.concurrency, prefix+"refund-")
	defer refunds.close()
	refunds.body = func(n int64) string { return `{"charge":"` + ids[(n-1)%int64(len(ids))] + `","amount":1}` }
	if ackedBefore, err = s.value(ctx, s.workerMetrics, ackedSeries); err != nil {
		return r, err
	}
	refundsBefore, err := s.value(ctx, s.ingestMetrics, refundsSeries)
	if err != nil {
		return r, err
	}
	refundProfiles := s.profile(ctx, &r, refundsProfileFor, "worker-refunds", "devstack-refunds")
	s.cpu.start()
	start = time.Now()
	r.refundSubmit = refunds.runCount(ctx, len(ids))
	refundsAfter, err := s.value(ctx, s.ingestMetrics, refundsSeries)
	if err != nil {
		return r, err
	}
	r.refunds, err = s.waitSettled(ctx, start, int(refundsAfter-refundsBefore), s.opts.budget, s.ackedSince(ackedBefore))
	if err != nil {
		return r, fmt.Errorf("refunds: %w", err)
	}
	r.refunds.stored = int(ackedBefore)
	r.refundsCPU = s.cpu.stop()
	if err := waitAll(refundProfiles); err != nil {
		return r, err
	}

	// 3. The ingest alone: the worker is paused.
	progress("ingest alone (worker paused): %s + %s warm-up", s.opts.duration, s.opts.warmup)
	if err := s.pauseWorker(ctx, cons); err != nil {
		return r, err
	}
	s.profile(ctx, &r, s.opts.warmup+s.opts.duration-time.Second, "ingest", "devstack-ingest")
	s.cpu.start()
	r.ingest = load.runFor(ctx, s.opts.warmup, s.opts.duration)
	r.ingestCPU = s.cpu.stop()
	if r.ingest.accepted == 0 {
		return r, fmt.Errorf("ingest accepted nothing:%s", r.ingest.failures())
	}

	// 4. The worker alone on the backlog: progress is read from the consumer, since the
	// paused worker cannot answer a scrape.
	backlog, err := remaining(ctx, cons)
	if err != nil {
		return r, err
	}
	drainTime := drainFor
	if s.opts.smoke {
		drainTime /= smokeDivisor
	}
	progress("worker alone: the backlog of %d charges, for at most %s", backlog, drainTime)
	drainProfiles := s.profile(ctx, &r, workerProfileFor, "worker", "devstack-worker")
	s.cpu.start()
	start = time.Now()
	if err := s.st.worker.signal(syscall.SIGCONT); err != nil {
		return r, err
	}
	r.drain, err = s.waitSettled(ctx, start, backlog, drainTime, func(ctx context.Context) (int, error) {
		n, err := remaining(ctx, cons)
		return backlog - n, err
	})
	if err != nil {
		return r, fmt.Errorf("worker alone: %w", err)
	}
	r.drainCPU = s.cpu.stop()
	if r.drain.stored, err = s.valueInt(ctx, s.workerMetrics, ackedSeries); err != nil {
		return r, err
	}
	r.drain.stored -= r.drain.settled // what the store held when the phase began
	// What follows starts once the profiles are done, so that they see the worker alone.
	if err := waitAll(drainProfiles); err != nil {
		return r, err
	}

	if r.worker, err = s.workerStats(ctx); err != nil {
		return r, err
	}
	r.memory = map[string]memory{}
	for _, p := range s.st.processes() {
		if r.memory[p.name], err = readMemory(p.pid()); err != nil {
			return r, fmt.Errorf("memory of %s: %w", p.name, err)
		}
		r.memoryOrder = append(r.memoryOrder, p.name)
	}
	return r, nil
}

func (s *system) profiling() bool { return s.st.pprofAddrs != nil }

func (s *system) value(ctx context.Context, sc *scraper, series string) (float64, error) {
	v, err := sc.value(ctx, series)
	if err != nil {
		return 0, fmt.Errorf("reading %s: %w", series, err)
	}
	return v, nil
}

func (s *system) valueInt(ctx context.Context, sc *scraper, series string) (int, error) {
	v, err := s.value(ctx, sc, series)
	return int(v), err
}

// pauseWorker stops the worker (SIGSTOP) and waits until the server holds no pull request
// of it: those expire within a second, and until then the server could still hand it
// commands that would sit unacknowledged until their AckWait. Commands it was handling
// stay in flight; they are redelivered only if the pause outlasts their AckWait (30 s).
func (s *system) pauseWorker(ctx context.Context, cons jetstream.Consumer) error {
	if err := s.st.worker.signal(syscall.SIGSTOP); err != nil {
		return err
	}
	return s.st.worker.waitUntil(ctx, "holding no pull request once paused", 10*time.Second, func() error {
		info, err := cons.Info(ctx)
		if err != nil {
			return err
		}
		if info.NumWaiting > 0 {
			return fmt.Errorf("%d pull requests waiting", info.NumWaiting)
		}
		return nil
	})
}

// workerStats are the worker's counts since it started.
type workerStats struct {
	acked, retried, deadLettered float64
	batches                      float64
	batchSeconds                 float64 // spent in all batches
}

func (w workerStats) String() string {
	mean := 0.0
	if w.batches > 0 {
		mean = w.batchSeconds / w.batches
	}
	return fmt.Sprintf("%.0f commands acked, %.0f retried, %.0f dead-lettered; %.0f batches, %.0f ms each on average",
		w.acked, w.retried, w.deadLettered, w.batches, mean*1000)
}

func (s *system) workerStats(ctx context.Context) (workerStats, error) {
	var w workerStats
	for _, v := range []struct {
		series string
		into   *float64
	}{
		{ackedSeries, &w.acked},
		{`billing_worker_commands_total{result="retried"}`, &w.retried},
		{`billing_worker_commands_total{result="dead_lettered"}`, &w.deadLettered},
		{"billing_worker_batch_duration_seconds_count", &w.batches},
		{"billing_worker_batch_duration_seconds_sum", &w.batchSeconds},
	} {
		var err error
		if *v.into, err = s.value(ctx, s.workerMetrics, v.series); err != nil {
			return w, err
		}
	}
	return w, nil
}

// remaining is how many commands the consumer has not had acknowledged yet: waiting for
// a worker, or delivered and in flight.
func remaining(ctx context.Context, cons jetstream.Consumer) (int, error) {
	info, err := cons.Info(ctx)
	if err != nil {
		return 0, fmt.Errorf("reading consumer %s: %w", workersConsumer, err)
	}
	return int(info.NumPending) + info.NumAckPending, nil
}

// ackedSince counts the commands the worker has acknowledged beyond before.
func (s *system) ackedSince(before float64) func(context.Context) (int, error) {
	return func(ctx context.Context) (int, error) {
		v, err := s.workerMetrics.value(ctx, ackedSeries)
		return int(v - before), err
	}
}

// waitSettled polls settled until it reaches target, or until budget has passed since
// from. It fails when the count has not moved for stallTimeout: the worker is then stuck,
// and its log says why.
func (s *system) waitSettled(ctx context.Context, from time.Time, target int, budget time.Duration, settled func(context.Context) (int, error)) (settleResult, error) {
	return waitSettled(ctx, s.st.worker, from, target, budget, settled)
}

// waitSettled polls settled until it reaches target or budget has passed since from; w
// is the process that settles, whose exit ends the wait with an error, as does a count
// that stands still for stallTimeout.
func waitSettled(ctx context.Context, w *process, from time.Time, target int, budget time.Duration, settled func(context.Context) (int, error)) (settleResult, error) {
	r := settleResult{target: target}
	tick := time.NewTicker(settlePollEvery)
	defer tick.Stop()
	deadline := time.NewTimer(time.Until(from.Add(budget)))
	defer deadline.Stop()
	last, moved := 0, time.Now()
	for {
		n, err := settled(ctx)
		switch {
		case err == nil && n >= target:
			r.settled, r.elapsed = target, time.Since(from)
			return r, nil
		case err == nil && n != last:
			last, moved = n, time.Now()
		case time.Since(moved) > stallTimeout:
			return r, w.failure("settling", fmt.Errorf("%d of %d settled, and none for %s (last error: %v)",
				last, target, stallTimeout, err))
		}
		select {
		case <-deadline.C:
			r.settled, r.elapsed = last, time.Since(from)
			return r, nil
		case <-ctx.Done():
			return r, ctx.Err()
		case <-w.done:
			return r, w.failure("settling", fmt.Errorf("exited (%v)", w.cmd.ProcessState))
		case <-tick.C:
		}
	}
}

// profile starts, when profiling (-cpuprofile), a CPU profile of d of each named process
// (the name's first part: "devstack-refunds" is of the devstack), records them in r and
// returns them; nothing otherwise.
func (s *system) profile(ctx context.Context, r *systemResults, d time.Duration, names ...string) []*cpuProfile {
	if !s.profiling() {
		return nil
	}
	var ps []*cpuProfile
	for _, name := range names {
		ps = append(ps, startCPUProfile(ctx, name, s.st.pprofAddrs[binaryOf(name)], s.profileDir, d))
	}
	r.profiles = append(r.profiles, ps...)
	return ps
}

// waitAll waits until each profile is written.
func waitAll(ps []*cpuProfile) error {
	for _, p := range ps {
		if err := p.wait(); err != nil {
			return err
		}
	}
	return nil
}

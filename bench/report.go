package main

import (
	"bufio"
	"fmt"
	"io"
	"os"
	"runtime"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/billing/billing/internal/store"
)

// report is everything one run measured on one store engine, and where and how.
type report struct {
	at     time.Time
	engine string
	// durability is the NATS setup (natsSetups).
	durability string
	opts       config
	// source is what was measured (sourceState).
	source string
	build  time.Duration
	// servicesStop is how long the ingest and the worker took to drain and exit.
	servicesStop time.Duration
	total        time.Duration
	system       systemResults
	ceilings     ceilingResults
	// emptyReads are the reads of a fresh merchant on the empty store; growth, after the
	// growth phase (zero when -grow 0).
	emptyReads merchantReads
	growth     growthResults
	// keys is the keys phase (zero when not run).
	keys keysResult
	// peer is the River peer's figures (zero when not run).
	peer peerResults
	// profileTops are the top functions of each CPU profile, by name (-cpuprofile).
	profileTops []string
	// stages are the ingest's and the worker's CPU per charge by stage (-cpuprofile).
	stages []stageTable
}

// write renders the report as text.
func (r *report) write(w io.Writer) error {
	s, c := r.system, r.ceilings
	bw := bufio.NewWriter(w)
	p := func(format string, args ...any) { fmt.Fprintf(bw, format+"\n", args...) }

	p("billing bench, store %s, NATS %s, %s, %s", r.engine, r.durability, r.at.UTC().Format(time.RFC3339), r.source)
	p("%s %s/%s, nproc %d, %s", runtime.Version(), runtime.GOOS, runtime.GOARCH, runtime.NumCPU(), cpuModel())
	p("load: %d keep-alive connections, closed loop, from the bench process on the same machine; "+
		"duration %s after %s warm-up; end to end n=%d", r.opts.concurrency, r.opts.duration, r.opts.warmup, r.opts.n)
	if r.opts.workerBatch > 0 {
		p("worker: BILLING_WORKER_BATCH=%d", r.opts.workerBatch)
	}
	p("stack: %s", stackLine(r.engine, r.durability))
	if r.opts.smoke {
		p("SMOKE RUN (-smoke, make bench-smoke): short phases, the fixed ones a twentieth as long; not figures to quote")
	}
	g := r.growth
	if others := max(s.e2eCPU.others, s.refundsCPU.others, s.ingestCPU.others, s.drainCPU.others, c.httpCPU.others, c.publishCPU.others,
		c.insertCPU.others, g.seedCPU.others, g.readsCPU.others); others > disturbedAbove {
		p("")
		p("WARNING: other processes of the machine used up to %.2f cores during the run (see CPU below): the figures are disturbed", others)
	}
	p("")

	tw := tabwriter.NewWriter(bw, 0, 0, 2, ' ', 0)
	row := func(cols ...string) { fmt.Fprintln(tw, strings.Join(cols, "\t")+"\t") }
	row("", "ours", "ceiling", "", "ratio")
	row("ingest alone: charges accepted/s", count(s.ingest.rate()),
		count(c.http.rate()), "a. HTTP + EdDSA JWT + 1 JetStream publish (req/s)", ratio(s.ingest.rate(), c.http.rate()))
	row("  latency p50 / p99 / p99.9", s.ingest.latencies.summary(), c.http.latencies.summary(), "a.", "")
	storeCeiling := c.insert.what()
	row("end to end: charges settled/s"+incomplete(s.e2e), count(s.e2e.rate()),
		count(c.insert.docsPerSec), storeCeiling, ratio(s.e2e.rate(), c.insert.docsPerSec))
	row("end to end: refunds settled/s"+incomplete(s.refunds), count(s.refunds.rate()),
		count(c.insert.docsPerSec), "c.", ratio(s.refunds.rate(), c.insert.docsPerSec))
	row("worker alone: charges settled/s"+incomplete(s.drain), count(s.drain.rate()),
		count(c.insert.docsPerSec), "c.", ratio(s.drain.rate(), c.insert.docsPerSec))
	row("", "", count(c.publish.async), fmt.Sprintf("b. JetStream async publish of %d × %d B (msgs/s)", c.publish.asyncN, rawMessageSize), "")
	row("", "", count(c.publish.sync), "b. JetStream sync publish, one client (msgs/s)", "")
	if err := tw.Flush(); err != nil {
		return err
	}
	p("")
	p("end to end: %d charges POSTed in %.2f s (%s/s with the worker on; p50 / p99 / p99.9 %s); %s",
		s.e2eSubmit.accepted, s.e2eSubmit.elapsed.Seconds(), count(s.e2eSubmit.rate()), s.e2eSubmit.latencies.summary(), settled(s.e2e))
	p("refunds: %d refunds of 1 cent, one per charge, POSTed in %.2f s (%s/s; p50 / p99 / p99.9 %s); %s",
		s.refundSubmit.accepted, s.refundSubmit.elapsed.Seconds(), count(s.refundSubmit.rate()), s.refundSubmit.latencies.summary(), settled(s.refunds))
	p("worker alone: a backlog of %d charges (the store holding %d); %s", s.drain.target, s.drain.stored, settled(s.drain))
	p("worker's metrics: %s", s.worker)
	p("ceiling c: %s", c.insert.unit())
	for _, f := range []struct {
		what string
		res  loadResult
	}{{"end to end", s.e2eSubmit}, {"refunds", s.refundSubmit}, {"ingest alone", s.ingest}, {"ceiling a", c.http}} {
		if msg := f.res.failures(); msg != "" {
			p("%s: answers other than 202:%s", f.what, msg)
		}
	}
	p("")
	p("CPU in cores (of %d), per phase; \"others\" is every other process of the machine: more than a few hundredths means the figures are disturbed", runtime.NumCPU())
	p("  end to end     %s", s.e2eCPU)
	p("  refunds        %s", s.refundsCPU)
	p("  ingest alone   %s", s.ingestCPU)
	p("  worker alone   %s", s.drainCPU)
	p("  ceiling a      %s", c.httpCPU)
	p("  ceiling b      %s", c.publishCPU)
	p("  ceiling c      %s", c.insertCPU)
	if g.grow > 0 {
		p("  seeding        %s", g.seedCPU)
		p("  reads, grown   %s", g.readsCPU)
	}
	p("")
	var mem []string
	for _, name := range s.memoryOrder {
		m := s.memory[name]
		mem = append(mem, fmt.Sprintf("%s %s (now %s)", name, mib(m.peak), mib(m.current)))
	}
	p("peak memory (VmHWM) after the three phases above: %s", strings.Join(mem, ", "))
	if g.grow > 0 {
		p("peak memory after the growth phase: ingest (started again for it) %s, devstack (the ceilings included) %s",
			mib(g.memory["ingest"].peak), mib(g.memory["devstack"].peak))
	}
	r.writePeer(p)
	if k := r.keys; k.keys > 0 {
		p("idempotency keys: %d records of %d B stored in the bucket in %.1f s (%s/s); resident memory of %s %s before, %s right after, %s %s later: %.0f B per key; at 10,000,000 keys (projected from this, not measured) %s",
			k.keys, keyRecordSize, k.took.Seconds(), count(perSecond(k.keys, k.took)), k.process, mib(k.before.current), mib(k.written.current),
			mib(k.settled.current), keysSettle, k.perKey(), mib(int64(k.perKey()*10_000_000)))
	}
	p("")
	if err := r.writeReads(bw); err != nil {
		return err
	}
	p("build %.1f s, run %.1f s; the ingest and the worker took %.1f s to stop (SIGTERM, drain) before the ceilings",
		r.build.Seconds(), r.total.Seconds(), r.servicesStop.Seconds())
	if len(r.stages) > 0 {
		p("")
		p("where the time goes (-cpuprofile): a sample counts for the innermost stage on its stack")
		for _, t := range r.stages {
			t.write(bw)
		}
	}
	for _, top := range r.profileTops {
		p("")
		p("%s", strings.TrimRight(top, "\n"))
	}
	return bw.Flush()
}

// stackLine describes the stack on engine with the NATS setup durability.
func stackLine(engine, durability string) string {
	var nats string
	switch durability {
	case natsAlways:
		nats = "one NATS server of its own (devstack nats), JetStream file store, sync_interval: always; devstack infra --no-nats for the store"
	case natsCluster:
		nats = "three clustered NATS servers (devstack nats, each a process), JetStream file store, sync_interval: always, streams and bucket with 3 replicas; devstack infra --no-nats for the store"
	default:
		nats = "devstack infra (NATS JetStream file store, default sync_interval)"
	}
	if engine == store.EngineSQLite {
		return nats + ", one ingest, one worker (simulated processor), separate processes; " +
			"store: one SQLite file (WAL, synchronous=FULL) that the ingest and the worker open themselves, so its CPU is theirs"
	}
	return nats + ", one ingest, one worker (simulated processor), separate processes; store: FerretDB on SQLite in devstack infra"
}

// writeReads writes the reads on the empty store and, after the growth phase, of the large
// and the small merchant, side by side, with what the growth seeded.
func (r *report) writeReads(w io.Writer) error {
	g := r.growth
	p := func(format string, args ...any) { fmt.Fprintf(w, format+"\n", args...) }
	p("reads: p50 / p99 ms of %d sequential GETs each (one keep-alive connection, at most %s per read: n says when fewer), through the ingest",
		r.opts.reads, r.opts.readBudget)
	if g.grow == 0 {
		p("  (no growth phase: -grow 0)")
	} else {
		note := fmt.Sprintf("-grow %d", r.opts.grow)
		if r.opts.grow < 0 && r.engine == store.EngineMongoDB {
			note = fmt.Sprintf("the mongodb default, not sqlite's %s: FerretDB answers most reads by scanning (README.md), so a million would take hours to read back",
				count(float64(growDefault[store.EngineSQLite])))
		} else if r.opts.grow < 0 {
			note = "the default for " + r.engine
		}
		p("growth: %s charges of %s (%s), and %d small merchants of %d, interleaved; failed 1 in %d (%s), refunded in part 1 in %d",
			count(float64(g.grow)), largeMerchant, note, smallMerchants, smallCharges, failEvery, declinedMethod, refundEvery)
		p("  seeded through store.Open with the engine's batch methods (%d charges a batch), besides the %s commands the phases above settled: %s",
			seedBatch, count(r.system.worker.acked), g.seed)
		p("  in %.1f s: %s charges/s, %s records/s; store files %s after it", g.seed.elapsed.Seconds(),
			count(perSecond(g.seed.charges, g.seed.elapsed)), count(perSecond(g.seed.records(), g.seed.elapsed)), mib(g.storeBytes))
		p("  then the ingest alone (worker off); endpoints with %d deliveries (large) and %d (small)", largeDeliveries, smallDeliveries)
	}
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	row := func(cols ...string) { fmt.Fprintln(tw, strings.Join(cols, "\t")+"\t") }
	empty := r.emptyReads
	header := []string{"", "empty store: " + freshMerchant}
	if g.grow > 0 {
		// The twin store's reads, timed in turn with the grown store's.
		empty = g.empty
		header = []string{"", "twin empty store: " + freshMerchant}
	}
	sizes := []string{"", fmt.Sprintf("(%d charges)", empty.charges)}
	if g.grow > 0 {
		header = append(header, "grown: "+largeMerchant, "grown: "+smallMerchant, "p99 vs empty: large", "small")
		sizes = append(sizes, fmt.Sprintf("(%s charges)", count(float64(g.large.charges))), fmt.Sprintf("(%d charges)", g.small.charges), "", "")
	}
	row(header...)
	row(sizes...)
	var over []string
	for i, spec := range readSpecs {
		cols := []string{spec.name, cellOf(empty, i, r.opts.reads)}
		if g.grow > 0 {
			cols = append(cols, cellOf(g.large, i, r.opts.reads), cellOf(g.small, i, r.opts.reads))
			for _, m := range []merchantReads{g.large, g.small} {
				ratio, p99 := p99Ratio(empty, m, i)
				cols = append(cols, fmt.Sprintf("%.2f×", ratio))
				if ratio > p99Bound || p99 > p99Limit {
					over = append(over, fmt.Sprintf("%s of %s (%.2f×, %s ms)", strings.TrimSpace(spec.name), m.merchant, ratio, ms(p99)))
				}
			}
		}
		row(cols...)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	if g.grow > 0 {
		verdict := "met"
		if len(over) > 0 {
			verdict = "not met by " + strings.Join(over, ", ")
		}
		if r.engine != store.EngineSQLite {
			verdict += " (the bound is sqlite's: FerretDB scans for most reads)"
		}
		p("every p99 of the grown store within %.1f× of the twin empty store's and under %s ms: %s", p99Bound, ms(p99Limit), verdict)
	}
	for _, m := range []merchantReads{empty, g.large, g.small} {
		for i, res := range m.results {
			if res.others > 0 {
				p("  %s, %s: %d answers other than 200, the last: %s", m.merchant, readSpecs[i].name, res.others, res.lastOther)
			}
		}
	}
	p("")
	return nil
}

// The bound on the reads of a grown store: each p99 within p99Bound of the same read on an
// empty store, and under p99Limit.
const (
	p99Bound = 1.5
	p99Limit = 10 * time.Millisecond
)

// p99Ratio is the p99 of read i of m over that of empty, and m's p99.
func p99Ratio(empty, m merchantReads, i int) (float64, time.Duration) {
	if i >= len(empty.results) || i >= len(m.results) {
		return 0, 0
	}
	base, p99 := empty.results[i].latencies.percentile(99), m.results[i].latencies.percentile(99)
	if base <= 0 {
		return 0, p99
	}
	return float64(p99) / float64(base), p99
}

// cellOf is the table cell of read i of m.
func cellOf(m merchantReads, i, asked int) string {
	if i >= len(m.results) {
		return "-"
	}
	return m.results[i].cell(asked)
}

// disturbedAbove is the CPU, in cores, that other processes may use during a phase
// before the report warns that its figures are disturbed.
const disturbedAbove = 0.1

// incomplete marks a rate measured on part of the charges only.
func incomplete(r settleResult) string {
	if r.complete() {
		return ""
	}
	return " (partial)"
}

// settled says how far the worker got.
func settled(r settleResult) string {
	if r.complete() {
		return fmt.Sprintf("all %d settled %.2f s after the phase began", r.target, r.elapsed.Seconds())
	}
	return fmt.Sprintf("only %d of %d settled in the %.0f s allowed (partial: the rate is over those)", r.settled, r.target, r.elapsed.Seconds())
}

// count formats a rate as a whole number with thousands separators.
func count(v float64) string {
	s := strconv.FormatInt(int64(v+0.5), 10)
	var b strings.Builder
	for i, ch := range s {
		if i > 0 && (len(s)-i)%3 == 0 {
			b.WriteByte(',')
		}
		b.WriteRune(ch)
	}
	return b.String()
}

func ratio(ours, ceiling float64) string {
	if ceiling <= 0 {
		return "-"
	}
	return fmt.Sprintf("%.0f%%", 100*ours/ceiling)
}

func mib(b int64) string { return fmt.Sprintf("%.0f MiB", float64(b)/(1<<20)) }

// cpuModel is the processor's name from /proc/cpuinfo, or "unknown CPU".
func cpuModel() string {
	data, err := os.ReadFile("/proc/cpuinfo")
	if err != nil {
		return "unknown CPU"
	}
	for line := range strings.SplitSeq(string(data), "\n") {
		if k, v, ok := strings.Cut(line, ":"); ok && strings.TrimSpace(k) == "model name" {
			return strings.TrimSpace(v)
		}
	}
	return "unknown CPU"
}

// writePeer writes the River peer's figures beside ours, as ratios ours / peer.
func (r *report) writePeer(p func(string, ...any)) {
	pr, s := r.peer, r.system
	switch {
	case pr.skipped != "":
		p("peer: %s", pr.skipped)
		p("")
		return
	case pr.ingest.accepted == 0:
		return
	}
	e2e := pr.e2e.rate()
	partial := ""
	if !pr.e2e.complete() {
		partial = fmt.Sprintf(" (partial: %d of %d in the budget)", pr.e2e.settled, pr.e2e.target)
	}
	p("peer: River on PostgreSQL (bench/peer: the idempotency row and the job in one transaction before the 202; %d River workers; synchronous_commit %s), same machine, load and token; ours / peer:",
		peerWorkers, onOff(pr.syncCommit))
	p("  ingest alone: peer %s accepted/s, p50 / p99 / p99.9 %s; ours %s: %.2f×",
		count(pr.ingest.rate()), pr.ingest.latencies.summary(), count(s.ingest.rate()), s.ingest.rate()/pr.ingest.rate())
	p("  end to end: peer %s settled/s%s; ours %s: %.2f×", count(e2e), partial, count(s.e2e.rate()), s.e2e.rate()/e2e)
	p("  CPU, end to end: %s", pr.e2eCPU)
	p("  CPU, ingest alone: %s (PostgreSQL's backends are among the others)", pr.ingestCPU)
	p("  peak memory of the peer: %s", mib(pr.memory.peak))
	p("")
}

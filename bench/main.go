// Command bench measures the billing system on this machine in one run (docs/design.md,
// "Benchmark"), once per store engine asked for (-store): it builds the real binaries,
// runs devstack infra, one ingest and one worker as separate processes, and drives them
// with a load generator over loopback: reads on the empty store, end to end, the ingest
// alone, then the worker alone. It then measures, against the same NATS server and store,
// the ceilings of the machine for the same work (HTTP + JWT + one JetStream publish, raw
// JetStream publish, raw bulk insert into the engine), grows the store to a large
// merchant's history and times the same reads again, and prints each figure against its
// ceiling, with CPU use and peak memory per process. The report also goes to
// bench/results/<UTC time>.txt and bench/results/latest.txt. README.md has the details.
//
//	go run ./bench [-store sqlite|mongodb|all] [-nats default|always|cluster|all] [-grow 1000000] [-duration 10s] [-n 20000] [-cpuprofile]
package main

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/billing/billing/internal/store"
)

// config is the command-line flags.
type config struct {
	duration    time.Duration
	warmup      time.Duration
	concurrency int
	n           int
	workerBatch int
	budget      time.Duration
	cpuProfile  bool
	goCmd       string
	keep        bool
	// out is where the reports go; empty: bench/results of the module.
	out string
	// keys is how many idempotency records the keys phase stores (0: none).
	keys int
	// peer runs the River peer (bench/peer) in each report.
	peer bool
	// smoke shortens the fixed phases (make bench-smoke): every phase runs, the figures
	// are not for quoting.
	smoke bool
	// store is the engine to measure: sqlite, mongodb, or all (each in turn).
	store string
	// nats is the NATS durability setup: default, always, cluster, or all (each in turn).
	nats string
	// grow is the large merchant's charges in the growth phase; negative: the engine's
	// default (growDefault), 0: no growth phase.
	grow int
	// reads is how many sequential requests time each read; readBudget bounds each.
	reads      int
	readBudget time.Duration
}

// storeAll runs every engine, one after the other.
const storeAll = "all"

// growDefault is the large merchant's size by engine: FerretDB scans a collection for
// most reads (README.md), so a million charges would take hours to read back through it.
var growDefault = map[string]int{store.EngineSQLite: 1_000_000, store.EngineMongoDB: 10_000}

// setups are the NATS durability setups to measure, in order.
func (o config) setups() []string {
	if o.nats == storeAll {
		return natsSetups
	}
	return []string{o.nats}
}

// engines are the engines to measure, in order.
func (o config) engines() []string {
	if o.store == storeAll {
		return []string{store.EngineSQLite, store.EngineMongoDB}
	}
	return []string{o.store}
}

// growFor is the large merchant's size for engine.
func (o config) growFor(engine string) int {
	if o.grow < 0 {
		return growDefault[engine]
	}
	return o.grow
}

func parseFlags() config {
	var o config
	flag.DurationVar(&o.duration, "duration", 10*time.Second, "measured time of each closed-loop load (ingest alone, ceiling a)")
	flag.DurationVar(&o.warmup, "warmup", 2*time.Second, "load before each measured time, not counted")
	flag.IntVar(&o.concurrency, "concurrency", 64, "concurrent keep-alive connections of the load generator")
	flag.IntVar(&o.n, "n", 20_000, "charges submitted in the end-to-end phase")
	flag.DurationVar(&o.budget, "budget", 40*time.Second, "the longest the end-to-end phase waits, from the first POST, for the n charges to settle")
	flag.IntVar(&o.workerBatch, "worker-batch", 0, "the worker's BILLING_WORKER_BATCH (0: the service's default)")
	flag.BoolVar(&o.cpuProfile, "cpuprofile", false, "build the binaries with net/http/pprof (via a build overlay) and profile the ingest, the worker and devstack; slows them a little")
	flag.StringVar(&o.goCmd, "go", "go", "the go command that builds the binaries")
	flag.BoolVar(&o.peer, "peer", true, "measure the River peer on PostgreSQL too (synchronous_commit off beside -nats default, on beside always and cluster); skipped with a message where PostgreSQL cannot be installed")
	flag.IntVar(&o.keys, "keys", 1_000_000, "idempotency records stored in the keys phase, for the NATS server's memory per key (0: no keys phase); run beside -nats default only: its memory per key is the others', whose fsyncs make the phase minutes long")
	flag.BoolVar(&o.smoke, "smoke", false, "a twentieth of the fixed phases (ceilings b and c, worker alone), for make bench-smoke: every phase runs, the figures are not for quoting")
	flag.StringVar(&o.out, "out", "", "directory of the reports (default bench/results of the module)")
	flag.BoolVar(&o.keep, "keep", false, "keep the temporary directory (binaries, data, logs)")
	flag.StringVar(&o.store, "store", store.EngineSQLite, "the store engine: sqlite, mongodb, or all (each in turn, one report each)")
	flag.StringVar(&o.nats, "nats", natsDefault, "the NATS durability setup: default (one server, default fsync), always (one server, sync_interval: always), cluster (three servers, 3 replicas, always), or all (each in turn, one report each)")
	flag.IntVar(&o.grow, "grow", -1, "charges of the large merchant in the growth phase (-1: 1,000,000 for sqlite, 10,000 for mongodb; 0: no growth phase)")
	flag.IntVar(&o.reads, "reads", 1000, "sequential requests that time each read, on the empty store and after growth")
	flag.DurationVar(&o.readBudget, "read-budget", 15*time.Second, "the longest one read is repeated for; fewer requests are timed if it runs out")
	flag.Parse()
	return o
}

func (o config) validate() error {
	switch {
	case o.duration < time.Second:
		return errors.New("-duration must be at least 1s")
	case o.warmup < 0:
		return errors.New("-warmup must not be negative")
	case o.concurrency < 1:
		return errors.New("-concurrency must be at least 1")
	case o.n < 1:
		return errors.New("-n must be at least 1")
	case o.budget < time.Second:
		return errors.New("-budget must be at least 1s")
	case o.workerBatch < 0 || o.workerBatch > 4096:
		return errors.New("-worker-batch must be 0 to 4096")
	case o.store != storeAll && o.store != store.EngineSQLite && o.store != store.EngineMongoDB:
		return fmt.Errorf("-store must be %s, %s or %s", store.EngineSQLite, store.EngineMongoDB, storeAll)
	case o.nats != storeAll && !slices.Contains(natsSetups, o.nats):
		return fmt.Errorf("-nats must be one of %s or %s", strings.Join(natsSetups, ", "), storeAll)
	case o.keys < 0:
		return errors.New("-keys must not be negative")
	case o.reads < 1:
		return errors.New("-reads must be at least 1")
	case o.readBudget < time.Second:
		return errors.New("-read-budget must be at least 1s")
	}
	for _, e := range o.engines() {
		if !slices.Contains(store.Engines, e) {
			return fmt.Errorf("-store %s: this build's store does not have the %s engine yet (store.Engines: %s)",
				o.store, e, strings.Join(store.Engines, ", "))
		}
	}
	return nil
}

func main() {
	opts := parseFlags()
	if err := opts.validate(); err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(2)
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, opts); err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		stop()
		os.Exit(1)
	}
}

func progress(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "bench: "+format+"\n", args...)
}

func run(ctx context.Context, opts config) (err error) {
	began := time.Now()
	root, err := moduleRoot(ctx, opts.goCmd)
	if err != nil {
		return err
	}
	tmp, err := os.MkdirTemp("", "billing-bench-*")
	if err != nil {
		return err
	}
	defer func() {
		if opts.keep || err != nil {
			progress("binaries, data and logs kept in %s", tmp)
			return
		}
		os.RemoveAll(tmp)
	}()
	stamp := began.UTC().Format("20060102T150405Z")
	resultsDir := filepath.Join(root, "bench", "results")
	if opts.out != "" {
		resultsDir = opts.out
	}

	progress("building ./cmd/... into %s", filepath.Join(tmp, "bin"))
	bins, buildTime, err := build(ctx, opts.goCmd, root, filepath.Join(tmp, "bin"), opts.cpuProfile)
	if err != nil {
		return err
	}
	source := sourceState(ctx, root)
	// Each engine's report is printed and saved as soon as it is done, so that a failure
	// of the next one loses nothing measured.
	var out bytes.Buffer
	for _, engine := range opts.engines() {
		for _, setup := range opts.setups() {
			rep := &report{at: time.Now(), engine: engine, durability: setup, opts: opts, build: buildTime, source: source}
			profileDir := filepath.Join(resultsDir, "profiles", stamp, engine+"-"+setup)
			if err := runEngine(ctx, opts, rep, bins, filepath.Join(tmp, engine+"-"+setup), profileDir); err != nil {
				return fmt.Errorf("store %s, NATS %s: %w", engine, setup, err)
			}
			var text bytes.Buffer
			if err := rep.write(&text); err != nil {
				return err
			}
			if out.Len() > 0 {
				out.WriteString("\n\n")
			}
			out.Write(text.Bytes())
			os.Stdout.Write(text.Bytes())
			if err := saveResults(resultsDir, stamp, out.Bytes()); err != nil {
				return err
			}
		}
	}
	progress("results written to %s (%.0f s in all)", filepath.Join(resultsDir, stamp+".txt"), time.Since(began).Seconds())
	return nil
}

// saveResults writes the reports of the run to resultsDir, under its time and as latest.txt.
func saveResults(resultsDir, stamp string, text []byte) error {
	if err := os.MkdirAll(resultsDir, 0o755); err != nil {
		return err
	}
	for _, name := range []string{stamp + ".txt", "latest.txt"} {
		if err := os.WriteFile(filepath.Join(resultsDir, name), text, 0o644); err != nil {
			return err
		}
	}
	return nil
}

// runEngine measures the system on one store engine, its data under dir, into rep: the
// reads of a fresh merchant on the empty store, the system's phases, the ceilings, then
// the growth phase.
func runEngine(ctx context.Context, opts config, rep *report, bins binaries, dir, profileDir string) (err error) {
	began := time.Now()
	engine := rep.engine
	if opts.cpuProfile {
		if err := os.MkdirAll(profileDir, 0o755); err != nil {
			return err
		}
	}
	progress("store %s, NATS %s: starting NATS, devstack infra, ingest and worker", engine, rep.durability)
	st, err := startStack(ctx, bins, dir, engine, rep.durability, opts.workerBatch, opts.cpuProfile)
	if err != nil {
		return err
	}
	defer func() {
		progress("stopping the processes (SIGTERM)")
		err = errors.Join(err, st.stop())
	}()
	nc, js, err := connectJetStream(st.natsURL())
	if err != nil {
		return err
	}
	defer nc.Close()

	// Reads on the empty store, before anything else writes to it.
	progress("reads on the empty store: a fresh merchant of %d charges, %d requests per read", freshCharges, opts.reads)
	if rep.emptyReads, err = measureEmptyReads(ctx, opts, st); err != nil {
		return fmt.Errorf("reads on the empty store: %w", err)
	}

	sys := newSystem(opts, st, js, profileDir)
	if rep.system, err = sys.run(ctx, progress); err != nil {
		return err
	}
	// The worker may still have a backlog: stopped, it takes no CPU from the ceilings.
	progress("stopping the ingest and the worker (SIGTERM) before the ceilings")
	stopStart := time.Now()
	if err := st.stopServices(); err != nil {
		return err
	}
	rep.servicesStop = time.Since(stopStart)
	if rep.ceilings, err = measureCeilings(ctx, opts, st, sys.cpu, progress); err != nil {
		return err
	}
	if opts.peer {
		if rep.peer, err = measurePeer(ctx, opts, st, bins, dir, rep.durability != natsDefault, progress); err != nil {
			return fmt.Errorf("River peer: %w", err)
		}
	}
	if opts.keys > 0 && rep.durability == natsDefault {
		server := st.infra
		progress("keys: %d idempotency records into the bucket, the memory of %s before and after", opts.keys, server.name)
		if rep.keys, err = measureKeys(ctx, st.natsURL(), server, opts.keys, opts.smoke); err != nil {
			return fmt.Errorf("keys phase: %w", err)
		}
	}
	if grow := opts.growFor(engine); grow > 0 {
		if rep.growth, err = runGrowth(ctx, opts, st, grow, progress); err != nil {
			return fmt.Errorf("growth phase: %w", err)
		}
	}
	for _, p := range rep.system.profiles {
		top, err := p.top(ctx, opts.goCmd, bins.path(binaryOf(p.name)))
		if err != nil {
			return err
		}
		rep.profileTops = append(rep.profileTops, fmt.Sprintf("CPU profile %s (%s)\n%s", p.name, p.path, top))
		if t, ok, err := stagesOf(p, rep.system); err != nil {
			return err
		} else if ok {
			rep.stages = append(rep.stages, t)
		}
	}
	rep.total = time.Since(began)
	return nil
}

// binaryOf is the binary a profile was taken of: "devstack-worker" is of devstack.
func binaryOf(profile string) string {
	name, _, _ := strings.Cut(profile, "-")
	return name
}

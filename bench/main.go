// Command bench measures the billing system on this machine in one run (DESIGN.md,
// "Benchmark"): it builds the real binaries, runs devstack infra, one ingest and one
// worker as separate processes, and drives them with a load generator over loopback: end
// to end, the ingest alone, then the worker alone. It then measures, against the same
// NATS server and store, the ceilings of the machine for the same work (HTTP + JWT + one
// JetStream publish, raw JetStream publish, raw bulk insert), and prints each figure
// against its ceiling, with CPU use and peak memory per process. The report also goes to
// bench/results/<UTC time>.txt and bench/results/latest.txt. README.md has the details.
//
//	go run ./bench [-duration 10s] [-concurrency 64] [-n 20000] [-budget 40s] [-cpuprofile]
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
	"strings"
	"syscall"
	"time"
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
	flag.BoolVar(&o.keep, "keep", false, "keep the temporary directory (binaries, data, logs)")
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
	profileDir := filepath.Join(resultsDir, "profiles", stamp)
	if opts.cpuProfile {
		if err := os.MkdirAll(profileDir, 0o755); err != nil {
			return err
		}
	}

	progress("building ./cmd/... into %s", filepath.Join(tmp, "bin"))
	bins, buildTime, err := build(ctx, opts.goCmd, root, filepath.Join(tmp, "bin"), opts.cpuProfile)
	if err != nil {
		return err
	}
	progress("starting devstack infra, ingest and worker")
	st, err := startStack(ctx, bins, tmp, opts.workerBatch, opts.cpuProfile)
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

	rep := &report{at: began, opts: opts, build: buildTime, source: sourceState(ctx, root)}
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
	for _, p := range rep.system.profiles {
		top, err := p.top(ctx, opts.goCmd, bins.path(binaryOf(p.name)))
		if err != nil {
			return err
		}
		rep.profileTops = append(rep.profileTops, fmt.Sprintf("CPU profile %s (%s)\n%s", p.name, p.path, top))
	}
	rep.total = time.Since(began)

	var out bytes.Buffer
	if err := rep.write(&out); err != nil {
		return err
	}
	os.Stdout.Write(out.Bytes())
	if err := os.MkdirAll(resultsDir, 0o755); err != nil {
		return err
	}
	for _, name := range []string{stamp + ".txt", "latest.txt"} {
		if err := os.WriteFile(filepath.Join(resultsDir, name), out.Bytes(), 0o644); err != nil {
			return err
		}
	}
	progress("results written to %s", filepath.Join(resultsDir, stamp+".txt"))
	return nil
}

// binaryOf is the binary a profile was taken of: "devstack-worker" is of devstack.
func binaryOf(profile string) string {
	name, _, _ := strings.Cut(profile, "-")
	return name
}

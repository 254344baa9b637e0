package main

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"path/filepath"
)

// growthResults are the figures of the growth phase ("reads with history").
type growthResults struct {
	// grow is the large merchant's charges.
	grow int
	// seed is what was written into the store, and how fast.
	seed    seedStats
	seedCPU cpuUse
	// storeBytes is the size of the store's files after seeding (the SQLite database and
	// its WAL; on mongodb, FerretDB's SQLite files).
	storeBytes int64
	// empty, large and small are the reads of a fresh merchant on the twin store (empty
	// but for it), of the large merchant and of a small one, timed in turn.
	empty, large, small merchantReads
	readsCPU            cpuUse
	// memory is the peak memory of the ingest started again, and of devstack, after it.
	memory map[string]memory
}

// runGrowth is the growth phase, the ingest and the worker stopped: it seeds the store,
// through store.Open on the same database, with grow charges of one large merchant and
// smallMerchants × smallCharges of small ones, interleaved, then starts the ingest again
// (the worker stays off) and times the reads of the large merchant and of a small one.
func runGrowth(ctx context.Context, opts config, st *stack, grow int, progress func(string, ...any)) (r growthResults, err error) {
	r.grow = grow
	total := grow + smallMerchants*smallCharges
	progress("growth: seeding %s charges of %s and %d × %d of small merchants through the store's batch methods",
		count(float64(grow)), largeMerchant, smallMerchants, smallCharges)
	cpu := newCPUMeter(st.metered(st.infra))
	cpu.start()
	sd, err := newSeeder(ctx, st, st.storeConfig(), map[string]int{largeMerchant: grow, smallMerchant: smallCharges})
	if err != nil {
		return r, err
	}
	sd.progress = progress
	err = sd.seed(ctx, growthPlan(grow), total)
	if err == nil {
		err = sd.endpoint(ctx, sd.samples[largeMerchant], largeDeliveries)
	}
	if err == nil {
		err = sd.endpoint(ctx, sd.samples[smallMerchant], smallDeliveries)
	}
	if err = errors.Join(err, sd.close(ctx)); err != nil {
		return r, fmt.Errorf("seeding: %w", err)
	}
	r.seedCPU = cpu.stop()
	r.seed = sd.stats
	if r.storeBytes, err = dirSize(filepath.Join(st.dataDir, "store")); err != nil {
		return r, err
	}
	progress("growth: seeded %s records in %.1f s; starting the ingest again (the worker stays off)",
		count(float64(r.seed.records())), r.seed.elapsed.Seconds())

	if err := st.startIngest(ctx); err != nil {
		return r, err
	}
	// The same reads on a store empty but for a fresh merchant, served by an ingest of
	// its own, timed in turn with the grown store's so that the noise of this machine
	// falls on both alike.
	progress("growth: seeding the twin store, empty but for %s (%d charges), and starting an ingest on it", freshMerchant, freshCharges)
	fresh, err := seedFresh(ctx, st, st.twinStoreConfig())
	if err != nil {
		return r, fmt.Errorf("the twin store: %w", err)
	}
	addrs, err := freeAddrs(2)
	if err != nil {
		return r, err
	}
	twin, err := st.startTwinIngest(ctx, addrs[0], addrs[1])
	if err != nil {
		return r, err
	}
	defer func() { err = errors.Join(err, twin.stop()) }()
	targets := []readTarget{{apiURL: "http://" + addrs[0], sample: fresh}}
	for _, m := range []*merchantSample{sd.samples[largeMerchant], sd.samples[smallMerchant]} {
		targets = append(targets, readTarget{apiURL: st.apiURL(), sample: m})
	}
	for i := range targets {
		if targets[i].token, err = st.mintToken(ctx, targets[i].sample.name, readScopes); err != nil {
			return r, err
		}
	}
	progress("growth: reads of %s (twin store), %s (%s charges) and %s, in turn, %d requests each per read (at most %s a read)",
		freshMerchant, largeMerchant, count(float64(grow)), smallMerchant, opts.reads, opts.readBudget)
	cpu = newCPUMeter(st.metered(st.ingest, twin, st.infra))
	cpu.start()
	reads, err := measureReads(ctx, targets, opts.reads, opts.readBudget)
	if err != nil {
		return r, err
	}
	r.empty, r.large, r.small = reads[0], reads[1], reads[2]
	r.readsCPU = cpu.stop()
	r.memory = map[string]memory{}
	for _, p := range append([]*process{st.ingest, st.infra}, st.natsNodes...) {
		if r.memory[p.name], err = readMemory(p.pid()); err != nil {
			return r, fmt.Errorf("memory of %s: %w", p.name, err)
		}
	}
	return r, nil
}

// dirSize is the size of the regular files under dir.
func dirSize(dir string) (int64, error) {
	var n int64
	err := filepath.WalkDir(dir, func(_ string, d fs.DirEntry, err error) error {
		if err != nil || !d.Type().IsRegular() {
			return err
		}
		info, err := d.Info()
		if err != nil {
			return err
		}
		n += info.Size()
		return nil
	})
	return n, err
}

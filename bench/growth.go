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
	// large and small are the reads of the large merchant and of a small one.
	large, small merchantReads
	readsCPU     cpuUse
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
	cpu := newCPUMeter([]string{"devstack", "bench"}, []int{st.infra.pid(), 0})
	cpu.start()
	sd, err := newSeeder(ctx, st, map[string]int{largeMerchant: grow, smallMerchant: smallCharges})
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
	cpu = newCPUMeter([]string{"ingest", "devstack", "bench"}, []int{st.ingest.pid(), st.infra.pid(), 0})
	cpu.start()
	for _, m := range []struct {
		sample *merchantSample
		into   *merchantReads
	}{{sd.samples[largeMerchant], &r.large}, {sd.samples[smallMerchant], &r.small}} {
		progress("growth: reads of %s (%s charges), %d requests per read (at most %s each)",
			m.sample.name, count(float64(m.sample.charges)), opts.reads, opts.readBudget)
		token, err := st.mintToken(ctx, m.sample.name, readScopes)
		if err != nil {
			return r, err
		}
		if *m.into, err = measureReads(ctx, st.apiURL(), token, m.sample, opts.reads, opts.readBudget); err != nil {
			return r, err
		}
	}
	r.readsCPU = cpu.stop()
	r.memory = map[string]memory{}
	for _, p := range []*process{st.ingest, st.infra} {
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

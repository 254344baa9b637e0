package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"os/exec"
	"path/filepath"
	"time"
)

// peerWorkers is the River peer's MaxWorkers in the end-to-end phase.
const peerWorkers = 100

// peerResults are the River peer's figures (bench/peer on PostgreSQL), measured in the
// same run as ours, on the same machine, with the same load generator and token.
type peerResults struct {
	// skipped is why the peer was not measured, or empty.
	skipped    string
	syncCommit bool
	e2eSubmit  loadResult
	e2e        settleResult
	ingest     loadResult
	e2eCPU     cpuUse
	ingestCPU  cpuUse
	// memory is the peer's, after the end-to-end phase.
	memory memory
}

// measurePeer runs the River peer against a PostgreSQL of its own under dir, with
// synchronous_commit as syncCommit says: end to end first (n charges POSTed with River
// workers on, then the wait until they are stored), then the ingest alone (an
// insert-only client, the same closed loop as ours). Where PostgreSQL cannot be had, the
// result says why and the error is nil.
func measurePeer(ctx context.Context, opts config, st *stack, bins binaries, dir string, syncCommit bool, progress func(string, ...any)) (r peerResults, err error) {
	r.syncCommit = syncCommit
	pg, err := startPostgres(ctx, filepath.Join(dir, "postgres"), syncCommit)
	if err != nil {
		r.skipped = err.Error()
		progress("%s", r.skipped)
		return r, nil
	}
	defer func() { err = errors.Join(err, pg.stop()) }()
	migrate := exec.CommandContext(ctx, bins.path("peer"), "-migrate", "-dsn", pg.dsn())
	if out, err := migrate.CombinedOutput(); err != nil {
		return r, fmt.Errorf("peer -migrate: %w\n%s", err, out)
	}
	addrs, err := freeAddrs(1)
	if err != nil {
		return r, err
	}
	url := "http://" + addrs[0]
	start := func(name string, workers int) (*process, error) {
		p, err := startProcess(name, filepath.Join(st.logDir, name+".log"), baseEnv(), bins.path("peer"),
			"-addr", addrs[0], "-dsn", pg.dsn(), "-jwks", st.jwksPath(), "-workers", fmt.Sprint(workers))
		if err != nil {
			return nil, err
		}
		if err := p.waitTCP(ctx, addrs[0], startTimeout); err != nil {
			return nil, errors.Join(err, p.stop())
		}
		return p, nil
	}

	progress("peer (River on PostgreSQL, synchronous_commit %s): end to end, %d charges", onOff(syncCommit), opts.n)
	p, err := start("peer", peerWorkers)
	if err != nil {
		return r, err
	}
	cpu := newCPUMeter([]string{"peer", "postgres (postmaster)", "bench"}, []int{p.pid(), pg.pid(), 0})
	load := newLoadGen(url+"/v1/charges", st.token, opts.concurrency, fmt.Sprintf("peer-%d-", time.Now().UnixNano()))
	cpu.start()
	began := time.Now()
	r.e2eSubmit = load.runCount(ctx, opts.n)
	if r.e2eSubmit.accepted == 0 {
		return r, errors.Join(fmt.Errorf("peer: nothing accepted:%s", r.e2eSubmit.failures()), p.stop())
	}
	r.e2e, err = waitSettled(ctx, p, began, r.e2eSubmit.accepted, opts.budget, func(ctx context.Context) (int, error) {
		s, err := peerStats(ctx, url)
		return s.Settled, err
	})
	r.e2eCPU = cpu.stop()
	load.close()
	if err != nil {
		return r, errors.Join(err, p.stop())
	}
	if r.memory, err = readMemory(p.pid()); err != nil {
		return r, errors.Join(err, p.stop())
	}
	if err := p.stop(); err != nil {
		return r, fmt.Errorf("stopping the peer: %w", err)
	}

	progress("peer: ingest alone (insert-only client), %s + %s warm-up", opts.duration, opts.warmup)
	if p, err = start("peer-insert-only", 0); err != nil {
		return r, err
	}
	cpu = newCPUMeter([]string{"peer", "postgres (postmaster)", "bench"}, []int{p.pid(), pg.pid(), 0})
	load = newLoadGen(url+"/v1/charges", st.token, opts.concurrency, fmt.Sprintf("peer-alone-%d-", time.Now().UnixNano()))
	cpu.start()
	r.ingest = load.runFor(ctx, opts.warmup, opts.duration)
	r.ingestCPU = cpu.stop()
	load.close()
	if err := p.stop(); err != nil {
		return r, fmt.Errorf("stopping the peer: %w", err)
	}
	if r.ingest.accepted == 0 {
		return r, fmt.Errorf("peer, ingest alone: nothing accepted:%s", r.ingest.failures())
	}
	return r, nil
}

// peerStats is the peer's GET /stats.
type peerStatsBody struct {
	Accepted int `json:"accepted"`
	Settled  int `json:"settled"`
}

func peerStats(ctx context.Context, url string) (peerStatsBody, error) {
	var s peerStatsBody
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url+"/stats", nil)
	if err != nil {
		return s, err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return s, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return s, fmt.Errorf("GET /stats answered %d", resp.StatusCode)
	}
	return s, json.NewDecoder(resp.Body).Decode(&s)
}

func onOff(b bool) string {
	if b {
		return "on"
	}
	return "off"
}

package main

import (
	"os"
	"path/filepath"
	"runtime/pprof"
	"testing"
	"time"
)

// spinHash works in plain Go (no assembly, whose frames a profile may not unwind) until
// d has passed.
//
//go:noinline
func spinHash(d time.Duration) uint64 {
	h := uint64(14695981039346656037)
	for end := time.Now().Add(d); time.Now().Before(end); {
		for i := range 100_000 {
			h ^= uint64(i)
			h *= 1099511628211
		}
	}
	return h
}

//go:noinline
func spinOuter(d time.Duration) uint64 { return spinHash(d) }

// A profile of work done by two nested functions, split by a stage for the inner one and
// one for the outer one: the samples count for the inner (innermost) stage, and every
// sample of the profile is in some row.
func TestStagesCountTheInnermostStage(t *testing.T) {
	path := filepath.Join(t.TempDir(), "cpu.pprof")
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := pprof.StartCPUProfile(f); err != nil {
		t.Fatal(err)
	}
	spinOuter(700 * time.Millisecond)
	pprof.StopCPUProfile()
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}

	st := stages("outer", `bench\.spinOuter$`, "inner", `bench\.spinHash$`)
	tab, err := readStages(path, "test", "spin", 1, st)
	if err != nil {
		t.Fatal(err)
	}
	var sum time.Duration
	for _, d := range tab.cpu {
		sum += d
	}
	if sum != tab.total || tab.total == 0 {
		t.Fatalf("rows sum to %s, the profile holds %s", sum, tab.total)
	}
	if inner, outer := tab.cpu[1], tab.cpu[0]; inner < tab.total/2 || outer > inner/10 {
		t.Errorf("inner %s, outer %s of %s: the samples under spinHash should count for the inner stage", inner, outer, tab.total)
	}
}

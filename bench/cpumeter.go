package main

import (
	"cmp"
	"fmt"
	"os"
	"slices"
	"strings"
	"time"
)

// cpuMeter measures the CPU that a set of processes, and the rest of the machine, use
// between start and stop.
type cpuMeter struct {
	names   []string
	pids    []int
	before  []time.Duration
	machine time.Duration
	all     map[int]namedCPU
	at      time.Time
}

// newCPUMeter meters the processes pids (0: the bench itself), called names.
func newCPUMeter(names []string, pids []int) *cpuMeter {
	return &cpuMeter{names: names, pids: pids}
}

// start records the CPU time used so far.
func (m *cpuMeter) start() {
	m.at = time.Now()
	m.before = make([]time.Duration, len(m.pids))
	for i, pid := range m.pids {
		m.before[i], _ = cpuTime(pid)
	}
	m.machine, _ = machineBusy()
	m.all = processCPU()
}

// cpuUse is the CPU each process used during a phase, in cores (CPU seconds per second),
// and what every other process of the machine used meanwhile.
type cpuUse struct {
	names  []string
	cores  []float64
	others float64
	// busiest are the other processes that used the most, for a report that warns.
	busiest []string
}

// busiestShown is how many of the other processes a cpuUse names.
const busiestShown = 3

// stop returns the CPU used since start.
func (m *cpuMeter) stop() cpuUse {
	wall := time.Since(m.at).Seconds()
	u := cpuUse{names: m.names, cores: make([]float64, len(m.pids))}
	if wall <= 0 {
		return u
	}
	ours := 0.0
	for i, pid := range m.pids {
		if now, err := cpuTime(pid); err == nil {
			u.cores[i] = (now - m.before[i]).Seconds() / wall
			ours += u.cores[i]
		}
	}
	if busy, err := machineBusy(); err == nil {
		// Kernel work on our behalf that is not charged to a process shows up here too.
		u.others = max(0, (busy-m.machine).Seconds()/wall-ours)
	}
	u.busiest = m.busiestOthers(wall)
	return u
}

// busiestOthers names the processes other than ours that used the most CPU since start.
func (m *cpuMeter) busiestOthers(wall float64) []string {
	ours := map[int]bool{}
	for _, pid := range m.pids {
		ours[cmp.Or(pid, os.Getpid())] = true
	}
	type use struct {
		name  string
		cores float64
	}
	var uses []use
	for pid, now := range processCPU() {
		if ours[pid] {
			continue
		}
		cores := (now.cpu - m.all[pid].cpu).Seconds() / wall // a new process started at 0
		if cores >= 0.01 {
			uses = append(uses, use{now.name, cores})
		}
	}
	slices.SortFunc(uses, func(a, b use) int { return cmp.Compare(b.cores, a.cores) })
	var names []string
	for _, u := range uses[:min(len(uses), busiestShown)] {
		names = append(names, fmt.Sprintf("%s %.2f", u.name, u.cores))
	}
	return names
}

// String is "ingest 1.10, devstack 0.52, …, others 0.01 (total 1.95)" in cores, followed
// by the busiest other processes when others used a noticeable share.
func (u cpuUse) String() string {
	parts := make([]string, 0, len(u.names)+1)
	total := u.others
	for i, n := range u.names {
		parts = append(parts, fmt.Sprintf("%s %.2f", n, u.cores[i]))
		total += u.cores[i]
	}
	parts = append(parts, fmt.Sprintf("others %.2f", u.others))
	s := fmt.Sprintf("%s (total %.2f)", strings.Join(parts, ", "), total)
	if u.others > disturbedAbove && len(u.busiest) > 0 {
		s += "; others were: " + strings.Join(u.busiest, ", ")
	}
	return s
}

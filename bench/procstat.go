package main

import (
	"bufio"
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"
)

// clockTick is the unit of the CPU times in /proc/<pid>/stat (USER_HZ, 100 on Linux).
const clockTick = 10 * time.Millisecond

// cpuTime is the CPU time, user and system, that process pid (0: this one) has used.
func cpuTime(pid int) (time.Duration, error) {
	data, err := os.ReadFile(procPath(pid, "stat"))
	if err != nil {
		return 0, err
	}
	// The fields after the command name, which is in parentheses and may hold spaces:
	// state is field 3, utime 14 and stime 15.
	s := string(data)
	fields := strings.Fields(s[strings.LastIndexByte(s, ')')+1:])
	if len(fields) < 13 {
		return 0, fmt.Errorf("%s: too few fields", procPath(pid, "stat"))
	}
	var ticks int64
	for _, f := range fields[11:13] {
		n, err := strconv.ParseInt(f, 10, 64)
		if err != nil {
			return 0, fmt.Errorf("%s: %w", procPath(pid, "stat"), err)
		}
		ticks += n
	}
	return time.Duration(ticks) * clockTick, nil
}

// machineBusy is the CPU time all processors have spent on anything but idling, from
// the first line of /proc/stat.
func machineBusy() (time.Duration, error) {
	data, err := os.ReadFile("/proc/stat")
	if err != nil {
		return 0, err
	}
	line, _, _ := strings.Cut(string(data), "\n")
	fields := strings.Fields(line)
	if len(fields) < 9 || fields[0] != "cpu" {
		return 0, fmt.Errorf("/proc/stat: unexpected first line %q", line)
	}
	// user nice system idle iowait irq softirq steal: all but idle and iowait are busy.
	var ticks int64
	for i, f := range fields[1:9] {
		if i == 3 || i == 4 {
			continue
		}
		n, err := strconv.ParseInt(f, 10, 64)
		if err != nil {
			return 0, fmt.Errorf("/proc/stat: %w", err)
		}
		ticks += n
	}
	return time.Duration(ticks) * clockTick, nil
}

// memory is a process's peak and current resident set size, in bytes.
type memory struct {
	peak, current int64
}

// readMemory reads VmHWM and VmRSS of process pid from /proc/<pid>/status.
func readMemory(pid int) (memory, error) {
	f, err := os.Open(procPath(pid, "status"))
	if err != nil {
		return memory{}, err
	}
	defer f.Close()
	var m memory
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		key, val, ok := strings.Cut(sc.Text(), ":")
		if !ok || (key != "VmHWM" && key != "VmRSS") {
			continue
		}
		kb, err := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(val), " kB"), 10, 64)
		if err != nil {
			return memory{}, fmt.Errorf("%s %s: %w", procPath(pid, "status"), key, err)
		}
		if key == "VmHWM" {
			m.peak = kb << 10
		} else {
			m.current = kb << 10
		}
	}
	return m, sc.Err()
}

// processCPU returns the CPU time of every process of the machine by pid, with a name
// for each: the start of its command line. Processes that end while being read are
// left out.
func processCPU() map[int]namedCPU {
	entries, err := os.ReadDir("/proc")
	if err != nil {
		return nil
	}
	procs := make(map[int]namedCPU, len(entries))
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		cpu, err := cpuTime(pid)
		if err != nil || cpu == 0 {
			continue
		}
		procs[pid] = namedCPU{name: commandName(pid), cpu: cpu}
	}
	return procs
}

// namedCPU is a process's name and CPU time.
type namedCPU struct {
	name string
	cpu  time.Duration
}

// commandName is the first word of the process's command line (at most 60 characters),
// or its comm for a kernel thread.
func commandName(pid int) string {
	data, _ := os.ReadFile(procPath(pid, "cmdline"))
	name, _, _ := strings.Cut(string(data), "\x00")
	if name == "" {
		comm, _ := os.ReadFile(procPath(pid, "comm"))
		name = "[" + strings.TrimSpace(string(comm)) + "]"
	}
	if len(name) > 60 {
		name = "…" + name[len(name)-59:]
	}
	return name
}

func procPath(pid int, name string) string {
	if pid == 0 {
		return "/proc/self/" + name
	}
	return "/proc/" + strconv.Itoa(pid) + "/" + name
}

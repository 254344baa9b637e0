package main

import (
	"fmt"
	"io"
	"os"
	"regexp"
	"slices"
	"strings"
	"time"

	"github.com/google/pprof/profile"
)

// A stage is a part of the work of a charge, known in a CPU profile by the functions that
// do it: a sample counts for the innermost frame of its stack that matches a stage, so
// that a stage holds what it calls unless the callee is a stage of its own (the HTTP
// server holds the handler's parts only where they are no stage).
type stage struct {
	name string
	re   *regexp.Regexp
}

func stages(pairs ...string) []stage {
	var s []stage
	for i := 0; i < len(pairs); i += 2 {
		s = append(s, stage{name: pairs[i], re: regexp.MustCompile(pairs[i+1])})
	}
	return s
}

// ingestStages are the ingest's parts of an accepted charge, in the order printed.
var ingestStages = stages(
	"auth: JWT, scope, rate limit", `internal/auth\.|internal/api\.\(\*Server\)\.(authenticate|rateLimit)$|internal/api\.New\.requireScope`,
	"validation: read, strict parse, card scan", `internal/api\.(readJSON|decodeStrict|readIdempotent|bodyParser|loneSurrogate)|internal/charge\.\(\*CreateParams\)|internal/charge\.ContainsCard`,
	"charge and record encoding (JSON)", `internal/ingest\.(mustJSON|NewAction)|internal/ingest\.\(\*Charges\)\.Create|internal/service\.runIngest\.func`,
	"idempotency claim (KV create)", `internal/queue\.\(\*KV\)\.`,
	"command publish", `internal/queue\.\(\*Conn\)\.(publishCommand|PublishEncodedCommand|checkRoom)`,
	"NATS client I/O", `nats-io/nats%2ego\.\(\*Conn\)\.(flusher|readLoop|processMsg)`,
	"metrics and request id", `prometheus|internal/api\.\(\*Server\)\.observe$|internal/api\.withRequestID`,
	"HTTP server, Gin, response write", `^net/http\.|^net\.|gin-gonic/gin`,
	"GC and runtime background", `^runtime\.(gcBgMarkWorker|bgsweep|bgscavenge|mcall|morestack|sysmon)`,
)

// workerStages are the worker's parts of a settled charge, in the order printed.
var workerStages = stages(
	"fetch", `internal/queue\.\(\*Consumer\)\.Fetch|internal/consume\.\(\*Loop\)\.fetch`,
	"command decode", `internal/worker\.\(\*Worker\)\.decode`,
	"processor (simulated)", `internal/processor\.`,
	"store: read back (TransitionsFrom)", `store/sqlitestore\.\(\*Store\)\.TransitionsFrom|store/mongostore\.\(\*Store\)\.TransitionsFrom`,
	"store: claim transitions", `store/(sqlitestore|mongostore)\.\(\*Store\)\.ClaimTransitions`,
	"store: insert events", `store/(sqlitestore|mongostore)\.\(\*Store\)\.InsertEvents`,
	"store: insert ledger entries", `store/(sqlitestore|mongostore)\.\(\*Store\)\.InsertLedgerEntries`,
	"store: insert charges", `store/(sqlitestore|mongostore)\.\(\*Store\)\.InsertCharges`,
	// Exported methods only: the engines' helpers (transactions, batches) count for
	// the method that calls them.
	"store: other", `store/(sqlitestore|mongostore)\.\(\*Store\)\.[A-Z]`,
	"events publish", `PublishEvents`,
	"settle: ack, nak, hand back", `internal/consume\.\(\*Loop\)\.(Settle|settle)|internal/queue\.\(\*Msg\)\.`,
	"webhook fan-out", `internal/webhook\.\(\*Fanout\)`,
	"webhook deliveries", `internal/webhook\.`,
	"NATS client I/O", `nats-io/nats%2ego\.\(\*Conn\)\.(flusher|readLoop|processMsg)`,
	"metrics", `prometheus`,
	"GC and runtime background", `^runtime\.(gcBgMarkWorker|bgsweep|bgscavenge|mcall|morestack|sysmon)`,
)

// stageTable is the CPU of one process's profile split by stage, per unit of work.
type stageTable struct {
	process string
	unit    string  // "accepted charge", "settled charge"
	units   float64 // units of work done during the profile
	names   []string
	cpu     []time.Duration // by stage, then "other" last
	total   time.Duration
	seconds float64 // the profile's duration
}

// readStages splits the CPU profile at path by stages; units is the work done while it
// was taken.
func readStages(path, process, unit string, units float64, st []stage) (stageTable, error) {
	f, err := os.Open(path)
	if err != nil {
		return stageTable{}, err
	}
	defer f.Close()
	p, err := profile.Parse(f)
	if err != nil {
		return stageTable{}, fmt.Errorf("%s: %w", path, err)
	}
	t := stageTable{process: process, unit: unit, units: units, cpu: make([]time.Duration, len(st)+1),
		seconds: time.Duration(p.DurationNanos).Seconds()}
	for _, s := range st {
		t.names = append(t.names, s.name)
	}
	t.names = append(t.names, "other")
	cpuIndex := slices.IndexFunc(p.SampleType, func(v *profile.ValueType) bool { return v.Type == "cpu" })
	if cpuIndex < 0 {
		return t, fmt.Errorf("%s: not a CPU profile", path)
	}
	matched := map[string]int{} // function name → stage index, or -1
	stageOf := func(fn string) int {
		if i, ok := matched[fn]; ok {
			return i
		}
		i := slices.IndexFunc(st, func(s stage) bool { return s.re.MatchString(fn) })
		matched[fn] = i
		return i
	}
	for _, s := range p.Sample {
		d := time.Duration(s.Value[cpuIndex])
		t.total += d
		at := len(st) // other
	frames:
		for _, loc := range s.Location { // leaf first
			for _, line := range loc.Line {
				if line.Function == nil {
					continue
				}
				if i := stageOf(line.Function.Name); i >= 0 {
					at = i
					break frames
				}
			}
		}
		t.cpu[at] += d
	}
	return t, nil
}

// write renders t: CPU microseconds per unit by stage.
func (t stageTable) write(w io.Writer) {
	per := func(d time.Duration) string {
		if t.units <= 0 {
			return "n/a"
		}
		return fmt.Sprintf("%.1f", float64(d.Microseconds())/t.units)
	}
	fmt.Fprintf(w, "  %s: CPU µs per %s, from its profile (%.0f s, %.0f %ss, %.2f cores)\n",
		t.process, t.unit, t.seconds, t.units, t.unit, t.total.Seconds()/max(t.seconds, 1e-9))
	width := 0
	for _, n := range t.names {
		width = max(width, len(n))
	}
	for i, n := range t.names {
		if t.cpu[i] == 0 {
			continue
		}
		fmt.Fprintf(w, "    %-*s %8s  %4.1f%%\n", width, n, per(t.cpu[i]), 100*float64(t.cpu[i])/float64(max(t.total, 1)))
	}
	fmt.Fprintf(w, "    %-*s %8s\n", width, strings.Repeat("-", 5), "")
	fmt.Fprintf(w, "    %-*s %8s\n", width, "total", per(t.total))
}

// stagesOf splits the ingest's profile (taken while it ran alone) by ingestStages and the
// worker's (taken while it settled its backlog alone) by workerStages, the work done
// during each being the phase's rate over the profile's time; ok is false for other
// profiles.
func stagesOf(p *cpuProfile, r systemResults) (t stageTable, ok bool, err error) {
	switch p.name {
	case "ingest":
		t, err = readStages(p.path, "ingest", "accepted charge", 0, ingestStages)
		t.units = r.ingest.rate() * t.seconds
	case "worker":
		t, err = readStages(p.path, "worker", "settled charge", 0, workerStages)
		t.units = r.drain.rate() * min(t.seconds, r.drain.elapsed.Seconds())
	default:
		return t, false, nil
	}
	return t, err == nil, err
}

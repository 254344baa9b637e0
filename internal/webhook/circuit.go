package webhook

import (
	"context"
	"math/rand/v2"
	"sync"
	"time"
)

// A circuit per endpoint, in each worker.
//
// Once openAfter attempts in a row to an endpoint fail, its circuit opens: one task of it,
// the prober,
// tries the endpoint now and then (probeInterval), and every other task of it is parked:
// handed back for parkFor without an attempt. When a probe succeeds the circuit closes and
// the worker releases the endpoint's parked tasks at once (Releaser).
//
// Without it, a failing endpoint's backlog is tried task by task on each task's schedule
// (each attempt a request, two writes and a hand-back), and comes back through every fetch
// again and again; both take the workers from the deliveries of healthy endpoints.
// Parked, a task of a sick endpoint costs one hand-back while the endpoint is down.

// Releaser brings an endpoint's parked tasks back at once; *queue.Conn is one.
type Releaser interface {
	ReleaseTasks(ctx context.Context, endpoint string) (int, error)
}

// openAfter is how many attempts in a row must fail to open a circuit: one failure of a
// busy healthy endpoint (a timeout under load) must not park its tasks.
const openAfter = 5

// parkFor is how long a task of an endpoint whose circuit is open waits, unless the
// endpoint answers again first and its tasks are released. If the release is lost (the
// worker that saw the probe succeed died), that is how late they come.
const parkFor = 30 * time.Minute

// probeInterval is the time between probes of an endpoint that has been failing for age:
// a second at first, a tenth of the outage later, at most 5 minutes.
func probeInterval(age time.Duration) time.Duration {
	return min(max(age/10, time.Second), 5*time.Minute)
}

// proberGrace is how long past its turn a prober may be late before another task takes
// its place (it was lost with a worker that died).
const proberGrace = 10 * time.Second

// verdict is what a circuit says of one task.
type verdict int

const (
	attemptIt verdict = iota // the circuit is closed
	probeIt                  // the circuit is open, and this task probes it now
	waitTurn                 // the circuit is open, and this task is the prober: not yet
	parkIt                   // the circuit is open: park the task
)

type circuit struct {
	failures  int       // attempts in a row that failed
	open      bool      // failures reached openAfter
	since     time.Time // when the circuit opened
	nextProbe time.Time
	prober    string    // the key of the task that probes
	proberDue time.Time // when the prober is due back at the latest
}

type circuits struct {
	mu   sync.Mutex
	open map[string]*circuit
}

// decide says what to do with task key of endpoint at now, and, for waitTurn, how long.
func (c *circuits) decide(endpoint, key string, now time.Time) (verdict, time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	s := c.open[endpoint]
	if s == nil || !s.open {
		return attemptIt, 0
	}
	if key != s.prober && s.prober != "" && now.Before(s.proberDue) {
		return parkIt, parkFor + rand.N(parkFor/10)
	}
	s.prober = key
	if now.Before(s.nextProbe) {
		s.proberDue = s.nextProbe.Add(proberGrace)
		return waitTurn, s.nextProbe.Sub(now)
	}
	s.nextProbe = now.Add(probeInterval(now.Sub(s.since)))
	s.proberDue = s.nextProbe.Add(proberGrace)
	return probeIt, 0
}

// nextProbe is when endpoint is next due a probe (zero if its circuit is closed).
func (c *circuits) nextProbe(endpoint string) time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	if s := c.open[endpoint]; s != nil && s.open {
		return s.nextProbe
	}
	return time.Time{}
}

// note records whether an attempt to endpoint at now succeeded, and reports whether that
// closed its circuit.
func (c *circuits) note(endpoint string, ok bool, now time.Time) (closed bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	s := c.open[endpoint]
	if ok {
		delete(c.open, endpoint)
		return s != nil && s.open
	}
	if s == nil {
		if c.open == nil || len(c.open) > 100_000 {
			c.open = map[string]*circuit{}
		}
		s = &circuit{}
		c.open[endpoint] = s
	}
	if s.failures++; !s.open && s.failures >= openAfter {
		s.open, s.since, s.nextProbe = true, now, now.Add(probeInterval(0))
	}
	return false
}

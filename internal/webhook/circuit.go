package webhook

import (
	"context"
	"sync"
	"time"
)

// A circuit per endpoint, in each worker.
//
// Once openAfter attempts in a row to an endpoint fail, its circuit opens: the worker
// parks every task of it that comes (hands it back for parkFor, without an attempt) and
// probes the endpoint itself now and then (probeInterval) with the last task that failed.
// When a probe succeeds the circuit closes, and the worker releases the endpoint's parked
// tasks at once (Releaser).
//
// Without it, a failing endpoint's backlog is tried task by task on each task's schedule
// (each attempt a request, two writes and a hand-back), and comes back through every
// fetch again and again; both take the workers from the deliveries of healthy endpoints.
// Parked, a task of a sick endpoint costs one hand-back while the endpoint is down. The
// probe is the worker's own, not one of the tasks: a task may be fetched by any worker,
// and one whose circuit is open would park another's prober.

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

type circuit struct {
	failures int  // attempts in a row that failed
	open     bool // failures reached openAfter; a probe runs
}

type circuits struct {
	mu    sync.Mutex
	state map[string]*circuit
}

// isOpen reports whether the tasks of endpoint are parked.
func (c *circuits) isOpen(endpoint string) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	s := c.state[endpoint]
	return s != nil && s.open
}

// note records whether an attempt to endpoint succeeded. It reports whether that opened
// its circuit (start probing) or closed it (release its parked tasks).
func (c *circuits) note(endpoint string, ok bool) (opened, closed bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	s := c.state[endpoint]
	if ok {
		delete(c.state, endpoint)
		return false, s != nil && s.open
	}
	if s == nil {
		if c.state == nil || len(c.state) > 100_000 {
			c.state = map[string]*circuit{}
		}
		s = &circuit{}
		c.state[endpoint] = s
	}
	if s.failures++; !s.open && s.failures >= openAfter {
		s.open = true
		return true, false
	}
	return false, false
}

package e2e

import (
	"context"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/billing/billing/internal/store"
)

// Issues 2, 3 and 4: 1,000 charges through an ingest and two workers, one of which is
// SIGKILLed while load runs and replaced by a new process. Every 202 must end in exactly
// one terminal state, every charge must be authorized exactly once at the processor, the
// listing must hold exactly the accepted charges, every charge's event must reach the
// merchant's webhook endpoint with a valid signature. Then captures, cancels and refunds
// of those charges run while the other worker is killed (see moveMoney), the
// reconciliation finds nothing, and the survivors must drain and exit 0.
//
// It runs on every store engine, one after the other: sqlite, the embedded default, and
// mongodb on the embedded FerretDB, the production path.
func TestChargesSurviveWorkerCrash(t *testing.T) {
	for _, engine := range store.Engines {
		t.Run(engine, func(t *testing.T) { chargesSurviveWorkerCrash(t, engine) })
	}
}

func chargesSurviveWorkerCrash(t *testing.T, engine string) {
	const (
		total   = 1000
		clients = 16
		killAt  = 300 // accepted charges before worker-1 is killed
		startAt = 600 // accepted charges before its replacement starts
	)
	s := setup(t, engine)
	orders := newOrders(total)
	hooks := startHookReceiver(t)
	hooks.register(t, s)

	// Load, with a crash and a restart in the middle.
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	defer cancel()
	l := s.submit(ctx, orders, clients, killAt, startAt)
	<-l.reached(killAt)
	victim := s.workers[0]
	victim.kill(t)
	t.Logf("killed %s after %d accepted charges", victim.name, l.accepted.Load())
	<-l.reached(startAt)
	s.workers = append(s.workers, s.restartWorker(t, victim, "worker-1-restarted"))
	t.Logf("restarted it after %d accepted charges", l.accepted.Load())
	accepted := l.finish(t)

	ids, charges := s.settleAndCheck(t, orders, l, accepted)

	// Every charge's event reached the webhook endpoint, signed, whatever died meanwhile.
	hookCtx, cancelHooks := context.WithTimeout(t.Context(), 2*time.Minute)
	defer cancelHooks()
	delivered := hooks.await(hookCtx, ids)
	var undelivered []string
	for id := range ids {
		ev, ok := delivered[id]
		if !ok {
			undelivered = append(undelivered, id)
			continue
		}
		require.Equal(t, settledEvent[charges[id].Status], ev.Type, id)
		require.Equal(t, charges[id].Status, ev.Status, id)
	}
	require.Empty(t, undelivered, "charges whose event never reached the endpoint")
	hooks.mu.Lock()
	require.Zero(t, hooks.badSig, "deliveries with a bad signature or body")
	dupes := hooks.deliveries - len(hooks.seen) - hooks.failed500
	t.Logf("webhooks: %d deliveries of %d events, %d answered 500 on purpose and retried, %d repeated (at least once)",
		hooks.deliveries, len(hooks.seen), hooks.failed500, dupes)
	hooks.mu.Unlock()

	// Issue 4: captures, cancels and refunds, with a worker killed meanwhile.
	s.moveMoney(t, orders, hooks)

	s.logMetrics(t)

	// The survivors drain and exit 0 on SIGTERM, the infrastructure last.
	for _, svc := range append([]*service{s.ingest}, s.workers...) {
		if svc.killed {
			continue
		}
		code, took := svc.stop()
		assert.Equal(t, 0, code, "%s exit on SIGTERM (%s, after %s)\n%s", svc.name, svc.cmd.ProcessState, took, svc.tail(20))
		t.Logf("%s exited %d in %s", svc.name, code, took.Round(time.Millisecond))
	}
	code, took := s.infra.stop()
	assert.Equal(t, 0, code, "devstack infra exit on SIGTERM (%s)\n%s", s.infra.cmd.ProcessState, s.infra.tail(20))
	t.Logf("devstack exited %d in %s", code, took.Round(time.Millisecond))

	for _, p := range s.processes() {
		if log := p.log(); strings.Contains(strings.ToLower(log), "panic") {
			assert.Fail(t, p.name+" logged a panic", "%s", linesWith(log, "panic", 20))
		}
	}
}

// logMetrics logs the billing_ counters of the live workers and the ingest.
func (s *system) logMetrics(t *testing.T) {
	t.Helper()
	for _, svc := range append([]*service{s.ingest}, s.workers...) {
		if svc.exited() {
			continue
		}
		resp, err := s.client.Get("http://" + svc.adminAddr + "/metrics")
		if err != nil {
			t.Logf("%s metrics: %v", svc.name, err)
			continue
		}
		body, _ := io.ReadAll(resp.Body)
		_ = resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			t.Logf("%s metrics: %d", svc.name, resp.StatusCode)
			continue
		}
		var lines []string
		for line := range strings.Lines(string(body)) {
			if strings.HasPrefix(line, "billing_") && strings.Contains(line, "_total") {
				lines = append(lines, strings.TrimSpace(line))
			}
		}
		t.Logf("%s metrics: %s", svc.name, strings.Join(lines, "; "))
	}
}

// linesWith returns up to n lines of log that contain word, case-insensitively.
func linesWith(log, word string, n int) string {
	var out []string
	for line := range strings.Lines(log) {
		if strings.Contains(strings.ToLower(line), word) && len(out) < n {
			out = append(out, strings.TrimRight(line, "\n"))
		}
	}
	return strings.Join(out, "\n")
}

// acceptedIDs returns the accepted orders by charge id, failing if two keys got one id.
func acceptedIDs(t *testing.T, orders []*order) map[string]*order {
	t.Helper()
	ids := make(map[string]*order, len(orders))
	for _, o := range orders {
		require.NotEmpty(t, o.id, "order %s was never accepted", o.key)
		require.NotContains(t, ids, o.id, "two keys got the same charge id")
		ids[o.id] = o
	}
	return ids
}

// settleAll waits until every order's charge is terminal, or no charge has settled for a
// minute, and returns them by id as last seen; start is when the load began and accepted
// how long after it the last was accepted.
func (s *system) settleAll(t *testing.T, orders []*order, start time.Time, accepted time.Duration) (map[string]chargeObject, time.Duration) {
	t.Helper()
	settleCtx, cancelSettle := context.WithTimeout(t.Context(), 3*time.Minute)
	defer cancelSettle()
	// Few pollers: on two cores, each GET's store reads compete with the workers'.
	charges, errs := s.settle(settleCtx, orders, 4, time.Minute)
	if len(errs) > 0 {
		// The checker counts them as lost; the first say why.
		for _, err := range errs[:min(len(errs), 5)] {
			t.Logf("not settled: %v", err)
		}
	}
	settled := time.Since(start)
	var lastUpdate time.Time
	for _, c := range charges {
		if c.UpdatedAt.After(lastUpdate) {
			lastUpdate = c.UpdatedAt
		}
	}
	t.Logf("all %d settled %s after the first request (%s after accepting ended; the last update at +%s): %.0f/s",
		len(orders), settled.Round(time.Millisecond), (settled - accepted).Round(time.Millisecond),
		lastUpdate.Sub(start).Round(time.Millisecond), float64(len(orders))/lastUpdate.Sub(start).Seconds())
	return charges, lastUpdate.Sub(start)
}

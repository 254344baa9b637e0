package e2e

import (
	"context"
	"database/sql"
	"fmt"
	"net/http"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/stretchr/testify/require"
	_ "modernc.org/sqlite" // lockSQLite

	"github.com/billing/billing/internal/devstack"
	"github.com/billing/billing/internal/store"
)

// The production topology on one machine (docs/design.md, "Production"): three NATS
// servers clustered on loopback, each a `devstack nats` process of its own with JetStream
// fsyncing every write, streams and the bucket with three replicas, and the services
// pointed at all three.

// clusterClients are the concurrent merchants' clients of every scenario.
const clusterClients = 16

// replicatedStreams are the streams (and the bucket's stream) whose replicas the test
// waits for after a server comes back.
var replicatedStreams = []string{"CHARGES", "EVENTS", "WEBHOOKS", "KV_IDEMPOTENCY", "KV_REPORTS"}

// natsNode is one server of the cluster and the processes that ran it, the current last.
type natsNode struct {
	devstack.Node
	procs []*process
}

func (n *natsNode) proc() *process { return n.procs[len(n.procs)-1] }

// setupCluster starts the three servers, the store (devstack infra --no-nats), the
// processor, ingests ingests and workers workers (extraEnv added to their environment),
// and waits until all are ready and every replicated stream is whole.
func setupCluster(t *testing.T, engine string, ingests, workers int, extraEnv ...string) *system {
	t.Helper()
	addrs := freeAddrs(t, 8+ingests)
	s := &system{logDir: logDir(t), dataDir: t.TempDir(), natsAddr: addrs[6], mongoAddr: addrs[7], engine: engine, replicas: 3,
		extraEnv: extraEnv}
	s.sqlitePath = filepath.Join(s.dataDir, "store", "billing.db")
	for i := range 3 {
		n := &natsNode{Node: devstack.Node{Name: fmt.Sprintf("nats-%d", i+1), ClientAddr: addrs[i], ClusterAddr: addrs[3+i]}}
		for j := range 3 {
			if j != i {
				n.Routes = append(n.Routes, addrs[3+j])
			}
		}
		s.nodes = append(s.nodes, n)
	}
	nodes := make([]devstack.Node, len(s.nodes))
	for i, n := range s.nodes {
		nodes[i] = n.Node
	}
	s.natsURL = devstack.ClientURLs(nodes)
	for _, n := range s.nodes {
		s.startNode(t, n)
	}
	s.infra = startProcess(t, s.logDir, "devstack", append(s.infraEnv(), "BILLING_NATS_URL="+s.natsURL), "devstack", "infra", "--no-nats")
	if engine == store.EngineMongoDB {
		s.infra.waitTCP(t, s.mongoAddr, startTimeout)
	}
	s.infra.waitOutput(t, "Services started separately need:", startTimeout)
	s.startServices(t, addrs[8:], workers)
	s.js = s.jetStream(t)
	s.awaitCurrent(t)
	return s
}

// startNode starts (or starts again) the server of n and waits until it takes clients.
func (s *system) startNode(t *testing.T, n *natsNode) {
	t.Helper()
	name := n.Name
	if len(n.procs) > 0 {
		name = fmt.Sprintf("%s-%d", n.Name, len(n.procs)+1)
	}
	p := startProcess(t, s.logDir, name, s.infraEnv(), "devstack", "nats", "--name", n.Name,
		"--listen", n.ClientAddr, "--cluster", n.ClusterAddr, "--routes", strings.Join(n.Routes, ","))
	n.procs = append(n.procs, p)
	p.waitTCP(t, n.ClientAddr, startTimeout)
}

// jetStream connects the test to the cluster, for what only the servers know: which one
// leads a stream, whether its replicas are current.
func (s *system) jetStream(t *testing.T) jetstream.JetStream {
	t.Helper()
	nc, err := nats.Connect(s.natsURL, nats.MaxReconnects(-1), nats.ReconnectWait(100*time.Millisecond))
	require.NoError(t, err)
	t.Cleanup(nc.Close)
	js, err := jetstream.New(nc)
	require.NoError(t, err)
	return js
}

// leaderOf returns the node that leads stream.
func (s *system) leaderOf(t *testing.T, js jetstream.JetStream, stream string) *natsNode {
	t.Helper()
	var leader string
	require.Eventually(t, func() bool {
		ctx, cancel := context.WithTimeout(t.Context(), 2*time.Second)
		defer cancel()
		st, err := js.Stream(ctx, stream)
		if err != nil {
			return false
		}
		info, err := st.Info(ctx)
		if err != nil || info.Cluster == nil {
			return false
		}
		leader = info.Cluster.Leader
		return leader != ""
	}, startTimeout, 100*time.Millisecond, "stream %s has no leader", stream)
	for _, n := range s.nodes {
		if n.Name == leader {
			return n
		}
	}
	require.FailNow(t, "unknown leader", "stream %s is led by %q, not a server of the test", stream, leader)
	return nil
}

// awaitCurrent waits until every replicated stream has a leader and two current
// replicas: the cluster whole again after a server came back.
func (s *system) awaitCurrent(t *testing.T) {
	t.Helper()
	var last string
	require.Eventually(t, func() bool {
		for _, name := range replicatedStreams {
			ctx, cancel := context.WithTimeout(t.Context(), 2*time.Second)
			info, err := func() (*jetstream.StreamInfo, error) {
				defer cancel()
				st, err := s.js.Stream(ctx, name)
				if err != nil {
					return nil, err
				}
				return st.Info(ctx)
			}()
			switch {
			case err != nil:
				last = fmt.Sprintf("%s: %v", name, err)
				return false
			case info.Cluster == nil || info.Cluster.Leader == "":
				last = name + ": no leader"
				return false
			}
			current := 0
			for _, r := range info.Cluster.Replicas {
				if r.Current && !r.Offline {
					current++
				}
			}
			if current < 2 {
				last = fmt.Sprintf("%s: %d current replicas beside the leader %s", name, current, info.Cluster.Leader)
				return false
			}
		}
		return true
	}, 2*startTimeout, 200*time.Millisecond, "the cluster is not whole again: %s", &last)
}

// Issue 12, scenario 3: while merchants submit charges, SIGKILL the server that leads the
// CHARGES stream and start it again later, then restart every server one by one (SIGTERM,
// as an upgrade does). Every 202 settles in its one terminal state, authorized once, and
// the listing holds exactly the accepted charges: a 202 is stored on a quorum, and a
// client's retry with the same key never makes a second charge.
func TestClusterSurvivesServerFaults(t *testing.T) {
	total := scaled(2000)
	marks := []int64{int64(total) * 3 / 20, int64(total) * 7 / 20, int64(total) * 11 / 20}
	s := setupCluster(t, store.EngineSQLite, 1, 2)
	orders := newOrders(total)

	ctx, cancel := context.WithTimeout(t.Context(), time.Duration(scaled(4))*time.Minute)
	defer cancel()
	l := s.submit(ctx, orders, clusterClients, marks...)

	<-l.reached(marks[0])
	victim := s.leaderOf(t, s.js, "CHARGES")
	victim.proc().kill(t)
	t.Logf("SIGKILLed %s, the leader of CHARGES, after %d accepted charges", victim.Name, l.accepted.Load())

	<-l.reached(marks[1])
	s.startNode(t, victim)
	s.awaitCurrent(t)
	t.Logf("%s back and current after %d accepted charges; CHARGES led by %s", victim.Name, l.accepted.Load(),
		s.leaderOf(t, s.js, "CHARGES").Name)

	<-l.reached(marks[2])
	for _, n := range s.nodes {
		code, took := n.proc().stop()
		require.Equal(t, 0, code, "%s exit on SIGTERM\n%s", n.Name, n.proc().tail(20))
		s.startNode(t, n)
		s.awaitCurrent(t)
		t.Logf("restarted %s (stopped in %s) after %d accepted charges", n.Name, took.Round(time.Millisecond), l.accepted.Load())
	}

	accepted := l.finish(t)

	s.settleAndCheck(t, orders, l, accepted)
	s.requireReconciled(t)
}

// Issue 12, scenarios 1 and 2, on the same topology: while merchants submit charges
// through two ingest replicas (each request to either, as a load balancer sends them), a
// worker is SIGKILLed in the middle of its work again and again, each replaced at once,
// and an ingest replica is SIGKILLed with requests in flight and started again later. The
// clients retry what failed, with the same key, on whichever replica answers.
func TestClusterSurvivesProcessCrashes(t *testing.T) {
	total := scaled(2000)
	s := setupCluster(t, store.EngineSQLite, 2, 3)
	orders := newOrders(total)
	var marks []int64
	every := int64(total / 10) // accepted charges between two crashes
	for m := every; m < int64(total); m += every {
		marks = append(marks, m)
	}

	ctx, cancel := context.WithTimeout(t.Context(), time.Duration(scaled(4))*time.Minute)
	defer cancel()
	l := s.submit(ctx, orders, clusterClients, marks...)
	workerKills := 0
	for i, m := range marks {
		<-l.reached(m)
		switch i {
		case 2:
			victim := s.ingests[1]
			victim.kill(t)
			t.Logf("SIGKILLed %s after %d accepted charges", victim.name, l.accepted.Load())
			continue
		case 5:
			s.ingests[1] = s.restartIngest(t, s.ingests[1], "ingest-2-restarted")
			t.Logf("restarted ingest-2 after %d accepted charges", l.accepted.Load())
			continue
		}
		k := workerKills % len(s.workers)
		victim := s.workers[k]
		victim.kill(t)
		s.workers[k] = s.restartWorker(t, victim, fmt.Sprintf("worker-%d-%d", k+1, workerKills/len(s.workers)+2))
		workerKills++
		t.Logf("SIGKILLed %s and started another after %d accepted charges", victim.name, l.accepted.Load())
	}

	accepted := l.finish(t)
	t.Logf("%d workers killed", workerKills)

	s.settleAndCheck(t, orders, l, accepted)
	s.requireReconciled(t)
}

// Issue 12, scenarios 5 and 6, on the same topology: a worker frozen (SIGSTOP) for longer
// than the consumer's ack wait while it waits for the processor's answer in the middle of
// a batch, so that its messages go to another worker and both handle them once it goes
// on (SIGCONT); and a processor that charges the card and then drops the connection
// unanswered on 3% of authorizations, so that the worker cannot know the outcome and
// must retry with the same key. Neither may charge a card twice or settle a charge twice.
func TestClusterSurvivesStalledWorkerAndLostAnswers(t *testing.T) {
	const (
		ackWait = 5 * time.Second // BILLING_WORKER_ACK_WAIT of startWorker
	)
	total := scaled(2000)
	// One worker to begin with, so that the call held below is its.
	s := setupCluster(t, store.EngineSQLite, 1, 1)
	s.processor.loseAnswersOf(0.03)
	orders := newOrders(total)

	ctx, cancel := context.WithTimeout(t.Context(), time.Duration(scaled(4))*time.Minute)
	defer cancel()
	l := s.submit(ctx, orders, clusterClients, 300)
	<-l.reached(300)
	arrived, release, again := s.processor.holdNext()
	<-arrived
	// The second worker is ready and fetching before the first freezes, so that the
	// frozen worker's messages, the held one among them, go to it once the ack wait has
	// passed. The held call, released during the freeze, is decided and answered, but
	// the frozen worker cannot record it: the second asks for the same key again, and
	// only then does the first go on, to finish the same batch.
	s.workers = append(s.workers, s.startWorker(t, "worker-2", freeAddrs(t, 1)[0]))
	stalled := s.workers[0]
	t.Logf("freezing %s, waiting for an authorization in a batch, after %d accepted charges",
		stalled.name, l.accepted.Load())
	// SQLite's write lock belongs to whichever process holds it, frozen or not: a worker
	// stopped inside a write transaction (its fan-out or another batch) would stop every
	// writer until it went on. The stall under test is the one that holds messages, so
	// the worker is frozen while this test holds the write lock, which it then lets go.
	unlock := lockSQLite(t, s.sqlitePath)
	thaw := stalled.freeze(t)
	unlock()
	frozenAt := time.Now()
	release()
	select {
	case <-again:
	case <-time.After(12 * ackWait):
		thaw()
		require.FailNow(t, "the frozen worker's batch was not redelivered",
			"no other worker asked for the held key in %s; the ack wait is %s", 12*ackWait, ackWait)
	}
	thaw()
	t.Logf("%s frozen for %s, until another worker asked for the held key", stalled.name, time.Since(frozenAt).Round(time.Millisecond))
	stalled.requireRunning(t)

	accepted := l.finish(t)
	s.settleAndCheck(t, orders, l, accepted)
	// Answers were lost (the stall happened by construction, above).
	ps := s.processor.stats()
	require.Positive(t, ps.lost, "no answer was lost: the scenario did not run")
	s.requireReconciled(t)
	s.logMetrics(t)
}

// deregistrationDelay is how long after taking an ingest out of the balancer the test
// sends it SIGTERM: deploy/ingest.yaml's preStop waits 10 s for load balancers to stop
// sending; the test's balancer is a function call, whose requests already on their way
// arrive within this.
const deregistrationDelay = time.Second

// Issue 12, scenario 7: a rolling deploy while merchants submit charges. Every process in
// turn gets SIGTERM and is started again: each ingest (taken out of the balancer first, as
// a load balancer does once the pod is told to stop), each worker, each NATS server. Each
// exits 0 having drained, and the clients see nothing but retryable answers: no
// connection refused or reset.
func TestClusterRollingDeploy(t *testing.T) {
	total := scaled(2000)
	s := setupCluster(t, store.EngineSQLite, 2, 2)
	orders := newOrders(total)

	stopped := func(svc *process) {
		t.Helper()
		code, took := svc.stop()
		require.Equal(t, 0, code, "%s exit on SIGTERM (%s)\n%s", svc.name, svc.cmd.ProcessState, svc.tail(20))
		t.Logf("%s drained and exited 0 in %s", svc.name, took.Round(time.Millisecond))
	}
	var steps []func()
	for i := range s.ingests {
		steps = append(steps, func() {
			// As deploy/ingest.yaml's preStop does: the balancer stops sending first, and
			// the requests it had already sent arrive, before the SIGTERM.
			s.rotate(i, false)
			time.Sleep(deregistrationDelay)
			stopped(s.ingests[i].process)
			s.ingests[i] = s.restartIngest(t, s.ingests[i], fmt.Sprintf("ingest-%d-deployed", i+1))
			s.rotate(i, true)
		})
	}
	for i := range s.workers {
		steps = append(steps, func() {
			stopped(s.workers[i].process)
			s.workers[i] = s.restartWorker(t, s.workers[i], fmt.Sprintf("worker-%d-deployed", i+1))
		})
	}
	for _, n := range s.nodes {
		steps = append(steps, func() {
			stopped(n.proc())
			s.startNode(t, n)
			s.awaitCurrent(t)
		})
	}
	var marks []int64
	for i := range steps {
		marks = append(marks, int64((i+1)*total/(len(steps)+2)))
	}

	ctx, cancel := context.WithTimeout(t.Context(), time.Duration(scaled(4))*time.Minute)
	defer cancel()
	l := s.submit(ctx, orders, clusterClients, marks...)
	for i, step := range steps {
		<-l.reached(marks[i])
		step()
	}
	accepted := l.finish(t)
	_, transport := l.retryWhy.Load("transport")
	require.False(t, transport, "clients saw connection errors during the deploy: %s", l.retryReasons())

	s.settleAndCheck(t, orders, l, accepted)
	s.requireReconciled(t)
}

// Issue 12, scenario 4: the store away for 20 seconds while merchants submit charges. On
// SQLite another process holds the database's write lock (BEGIN EXCLUSIVE); on the
// MongoDB engine its server (FerretDB, in devstack infra) is killed and started again
// after. The ingest keeps answering 202 (it writes to NATS, not to the store), the
// workers' writes fail and wait without using up the charges' processor attempts (no
// charge fails with processing_error because of the store), and everything settles after.
func TestClusterSurvivesStoreAway(t *testing.T) {
	for _, engine := range []string{store.EngineSQLite, store.EngineMongoDB} {
		t.Run(engine, func(t *testing.T) { storeAway(t, engine) })
	}
}

func storeAway(t *testing.T, engine string) {
	const away = 20 * time.Second
	total := scaled(2000)
	s := setupCluster(t, engine, 1, 2)
	orders := newOrders(total)

	ctx, cancel := context.WithTimeout(t.Context(), time.Duration(scaled(4))*time.Minute)
	defer cancel()
	l := s.submit(ctx, orders, clusterClients, 300)
	<-l.reached(300)
	var release func()
	if engine == store.EngineSQLite {
		release = lockSQLite(t, s.sqlitePath)
	} else {
		release = s.stopMongo(t)
	}
	before := l.accepted.Load()
	t.Logf("store away after %d accepted charges", before)
	time.Sleep(away)
	during := l.accepted.Load() - before
	release()
	t.Logf("store back after %s; %d charges accepted meanwhile", away, during)
	require.Positive(t, during, "the ingest stopped accepting while the store was away")

	accepted := l.finish(t)
	s.settleAndCheck(t, orders, l, accepted)
	s.requireReconciled(t)
	s.logMetrics(t)
}

// stopMongo kills the MongoDB-compatible server (devstack infra, which runs only the store
// in the cluster) and returns what starts it again on the same data.
func (s *system) stopMongo(t *testing.T) (restart func()) {
	t.Helper()
	s.infra.kill(t)
	return func() {
		s.infra = startProcess(t, s.logDir, "devstack-2", append(s.infraEnv(), "BILLING_NATS_URL="+s.natsURL), "devstack", "infra", "--no-nats")
		s.infra.waitTCP(t, s.mongoAddr, startTimeout)
	}
}

// lockSQLite takes the write lock of the SQLite database at path from this process, as
// another program holding it would, and returns its release.
func lockSQLite(t *testing.T, path string) (release func()) {
	t.Helper()
	db, err := sql.Open("sqlite", "file:"+path+"?_pragma=busy_timeout(10000)")
	require.NoError(t, err)
	conn, err := db.Conn(t.Context())
	require.NoError(t, err)
	_, err = conn.ExecContext(t.Context(), "BEGIN EXCLUSIVE")
	require.NoError(t, err)
	return func() {
		_, err := conn.ExecContext(context.Background(), "ROLLBACK")
		require.NoError(t, err)
		require.NoError(t, conn.Close())
		require.NoError(t, db.Close())
	}
}

// Issue 12, scenario 9: the CHARGES stream at its configured limit
// (BILLING_CHARGES_MAX_BYTES) while the workers are down. New requests get 503 with
// Retry-After, nothing accepted is dropped, and acceptance resumes as the workers drain
// the stream once they are back.
func TestClusterStreamFull(t *testing.T) {
	const (
		maxBytes = 256 << 10
	)
	total := scaled(2000)
	s := setupCluster(t, store.EngineSQLite, 1, 2, fmt.Sprintf("BILLING_CHARGES_MAX_BYTES=%d", maxBytes))
	for _, w := range s.workers {
		code, _ := w.stop()
		require.Equal(t, 0, code, "%s exit on SIGTERM", w.name)
	}
	orders := newOrders(total)

	ctx, cancel := context.WithTimeout(t.Context(), time.Duration(scaled(4))*time.Minute)
	defer cancel()
	l := s.submit(ctx, orders, clusterClients)
	// The stream fills: acceptance stops short of the total, and requests are refused.
	var full int64
	require.Eventually(t, func() bool {
		n, ok := l.retryWhy.Load("503")
		if !ok || n.(*atomic.Int64).Load() < 50 {
			return false
		}
		full = l.accepted.Load()
		return true
	}, time.Minute, 50*time.Millisecond, "the ingest never refused a request with the stream full")
	require.Less(t, full, int64(total), "every charge was accepted with the workers down")
	info, err := func() (*jetstream.StreamInfo, error) {
		st, err := s.js.Stream(ctx, "CHARGES")
		if err != nil {
			return nil, err
		}
		return st.Info(ctx)
	}()
	require.NoError(t, err)
	// Over the limit by at most the publishes in flight when it was reached: one per
	// client, of under a kilobyte each.
	require.LessOrEqual(t, info.State.Bytes, uint64(maxBytes+clusterClients*1024))
	t.Logf("stream full at %d accepted charges (%d messages, %d bytes of %d)", full, info.State.Msgs, info.State.Bytes, maxBytes)

	// A refusal is a 503 with Retry-After, and nothing was accepted for it.
	o := newOrders(1)[0]
	o.amount = 999_999 // no other order's
	status, body, hdr, err := s.do(ctx, http.MethodPost, "/v1/charges", o.body(), "Idempotency-Key", o.key)
	require.NoError(t, err)
	require.Equal(t, http.StatusServiceUnavailable, status, "%s", body)
	require.NotEmpty(t, hdr.Get("Retry-After"))

	for i, w := range s.workers {
		s.workers[i] = s.restartWorker(t, w, w.name+"-back")
	}
	t.Logf("workers back after %d accepted charges", l.accepted.Load())
	accepted := l.finish(t)

	s.settleAndCheck(t, orders, l, accepted)
	s.requireReconciled(t)
}

// Issue 12, scenario 8: the merchant has three webhook endpoints: one that hangs (holds
// each delivery past the sender's timeout), one that answers 500, both for a while, and a
// healthy one. The healthy one gets every event while the others are still failing (they
// do not hold it up), and once they heal, each gets every event too: none is lost.
func TestClusterWebhooksBesideBadEndpoints(t *testing.T) {
	const healthyLag = 30 * time.Second
	const (
		sickFor = 20 * time.Second // at least; until the healthy one has every event
	)
	total := scaled(2000)
	// Retries spanning longer than the endpoints are sick (about 37 s in all).
	s := setupCluster(t, store.EngineSQLite, 1, 2, "BILLING_WEBHOOK_RETRY_SCHEDULE=200ms,500ms,1s,2s,3s,5s,5s,5s,5s,5s,5s")
	good := startHookReceiver(t)
	hanging := startSickReceiver(t, sickHang)
	failing := startSickReceiver(t, sickFail)
	for _, h := range []*hookReceiver{good, hanging, failing} {
		h.register(t, s)
	}
	orders := newOrders(total)

	ctx, cancel := context.WithTimeout(t.Context(), time.Duration(scaled(4))*time.Minute)
	defer cancel()
	l := s.submit(ctx, orders, clusterClients)
	accepted := l.finish(t)
	ids, charges := s.settleAndCheck(t, orders, l, accepted)
	var lastSettled time.Time
	for _, c := range charges {
		if c.UpdatedAt.After(lastSettled) {
			lastSettled = c.UpdatedAt
		}
	}

	// The healthy endpoint has every charge's event, the others none yet.
	got := good.await(ctx, ids)
	require.Len(t, got, len(ids), "the healthy endpoint is missing events while the others fail")
	good.mu.Lock()
	goodDone := good.lastNew.Sub(l.start)
	good.mu.Unlock()
	for _, h := range []*hookReceiver{hanging, failing} {
		h.mu.Lock()
		require.Empty(t, h.delivered, "a sick endpoint took a delivery")
		h.mu.Unlock()
	}
	t.Logf("the healthy endpoint had all %d events %s after the first request, %s after the last charge settled",
		len(got), goodDone.Round(time.Millisecond), l.start.Add(goodDone).Sub(lastSettled).Round(time.Millisecond))
	s.logMetrics(t)
	// Not held up: its last event came soon after the last charge settled. (At 1× it
	// comes about 5 s after; make chaos, at 10×, found it 4 minutes behind.)
	require.Less(t, l.start.Add(goodDone).Sub(lastSettled), healthyLag,
		"the sick endpoints held the healthy one's deliveries up")

	if wait := sickFor - time.Since(l.start); wait > 0 {
		time.Sleep(wait) // sick for sickFor at least, as an outage of minutes would be
	}
	hanging.heal()
	failing.heal()
	sick := time.Since(l.start)
	t.Logf("the sick endpoints healed %s after the first request", sick.Round(time.Millisecond))
	// The parked tasks are released once a probe succeeds (a tenth of the outage at most
	// after it healed), and the backlog of each healed endpoint (every event) then drains
	// at the pace of deliveries: give it about 10 ms a task on top.
	healCtx, cancelHeal := context.WithTimeout(t.Context(), 2*time.Minute+sick/4+time.Duration(2*total)*10*time.Millisecond)
	defer cancelHeal()
	for _, h := range []*hookReceiver{hanging, failing} {
		delivered := h.await(healCtx, ids)
		require.Len(t, delivered, len(ids), "events lost to an endpoint that was sick")
	}
	t.Logf("the healed endpoints had every event %s after the first request, %s after they healed",
		time.Since(l.start).Round(time.Millisecond), (time.Since(l.start) - sick).Round(time.Millisecond))
	for _, h := range []*hookReceiver{good, hanging, failing} {
		h.mu.Lock()
		require.Zero(t, h.badSig, "deliveries with a bad signature or body")
		h.mu.Unlock()
	}
	s.requireReconciled(t)
}

package webhook_test

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/stretchr/testify/require"

	"github.com/billing/billing/internal/webhook"
)

// memStore is the part of webhook.Store a delivery uses, in memory.
type memStore struct {
	webhook.Store // the rest: not called
	endpoint      webhook.Endpoint
	mu            sync.Mutex
	deliveries    chan webhook.Delivery
	runs          map[string]int // attempts made, by task key
}

func (s *memStore) Run(_ context.Context, key string) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.runs[key], nil
}
func (s *memStore) Endpoint(context.Context, string) (webhook.Endpoint, error) {
	return s.endpoint, nil
}

func (s *memStore) SetEndpointHealth(context.Context, string, *time.Time, string) error {
	return nil
}
func (s *memStore) SaveRun(_ context.Context, key string, attempts int) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.runs == nil {
		s.runs = map[string]int{}
	}
	s.runs[key] = attempts
	return nil
}
func (s *memStore) InsertDelivery(_ context.Context, d webhook.Delivery) error {
	s.deliveries <- d
	return nil
}

type plainSealer struct{}

func (plainSealer) Seal(p []byte) ([]byte, error) { return p, nil }
func (plainSealer) Open(p []byte) ([]byte, error) { return p, nil }

type taskMsg struct{ data []byte }

func (m *taskMsg) Data() []byte                                       { return m.data }
func (m *taskMsg) Subject() string                                    { return "webhooks.we_1" }
func (m *taskMsg) ID() string                                         { return "webhooks.we_1#1" }
func (m *taskMsg) Header(string) string                               { return "" }
func (m *taskMsg) Headers() map[string]string                         { return nil }
func (m *taskMsg) NumDelivered() uint64                               { return 1 }
func (m *taskMsg) Attempt() uint64                                    { return 1 }
func (m *taskMsg) Ack(context.Context) error                          { return nil }
func (m *taskMsg) NakWithDelay(time.Duration) error                   { return nil }
func (m *taskMsg) Later(context.Context, time.Duration, uint64) error { return nil }
func (m *taskMsg) Term() error                                        { return nil }
func (m *taskMsg) InProgress() error                                  { return nil }

// A delivery refused by the address guard at connection (a host that resolves to a
// forbidden address: here "localhost", registered while it resolved elsewhere) is recorded
// for the merchant as "forbidden address", without the address it resolved to; the
// worker's log has the address, for the operator.
func TestDeliveryErrorNamesNoAddress(t *testing.T) {
	t.Parallel()
	hit := make(chan struct{}, 1)
	srv := httptest.NewServer(http.HandlerFunc(func(http.ResponseWriter, *http.Request) { hit <- struct{}{} }))
	defer srv.Close()
	url := strings.Replace(srv.URL, "127.0.0.1", "localhost", 1) + "/hooks"

	secret := "whsec_" + base64.StdEncoding.EncodeToString([]byte("0123456789abcdef0123456789abcdef"))
	st := &memStore{
		endpoint: webhook.Endpoint{
			ID: "we_1", Merchant: "merchant_1", URL: url, Status: webhook.StatusEnabled,
			Secrets: []webhook.SealedSecret{{Sealed: []byte(secret)}},
		},
		deliveries: make(chan webhook.Delivery, 1),
	}
	task, err := json.Marshal(webhook.Task{Key: "k1", Merchant: "merchant_1", Endpoint: "we_1", Event: "evt_1", Body: []byte(`{}`)})
	require.NoError(t, err)
	var logs bytes.Buffer
	var logMu sync.Mutex
	logger := slog.New(slog.NewTextHandler(writerFunc(func(p []byte) (int, error) {
		logMu.Lock()
		defer logMu.Unlock()
		return logs.Write(p)
	}), &slog.HandlerOptions{Level: slog.LevelDebug}))

	d := webhook.NewDeliverer(webhook.DelivererConfig{Schedule: []time.Duration{time.Minute}, Timeout: 5 * time.Second},
		st, nil, plainSealer{}, webhook.NewClient(&webhook.Guard{}, 5*time.Second, 4), logger, prometheus.NewRegistry(), time.Now)
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { done <- d.Run(ctx, &manyTasks{msgs: []webhook.Message{&taskMsg{data: task}}}) }()

	var rec webhook.Delivery
	select {
	case rec = <-st.deliveries:
	case <-time.After(30 * time.Second):
		t.Fatal("no delivery attempt recorded")
	}
	cancel()
	require.NoError(t, <-done)

	require.NotNil(t, rec.Error)
	require.Equal(t, "connection refused: forbidden address", *rec.Error)
	require.Nil(t, rec.ResponseStatus)
	require.NotNil(t, rec.NextAttemptAt, "retried later")
	pub, err := json.Marshal(rec.Public())
	require.NoError(t, err)
	require.NotContains(t, string(pub), "127.0.0.1", "what the merchant is shown")
	require.NotContains(t, string(pub), "::1")

	logMu.Lock()
	defer logMu.Unlock()
	require.Contains(t, logs.String(), "level=WARN")
	require.Contains(t, logs.String(), "127.0.0.1", "the operator's log names the address")
	select {
	case <-hit:
		t.Fatal("the loopback server was reached")
	default:
	}
}

type writerFunc func([]byte) (int, error)

func (f writerFunc) Write(p []byte) (int, error) { return f(p) }

// manyTasks hands out its messages in one batch, then nothing.
type manyTasks struct {
	once sync.Once
	msgs []webhook.Message
}

func (s *manyTasks) Fetch(ctx context.Context, _ int, wait time.Duration) ([]webhook.Message, error) {
	var out []webhook.Message
	s.once.Do(func() { out = s.msgs })
	if out != nil {
		return out, nil
	}
	select {
	case <-ctx.Done():
	case <-time.After(wait):
	}
	return nil, nil
}

// settledMsg records how it was settled.
type settledMsg struct {
	taskMsg
	mu      sync.Mutex
	verb    string
	delay   time.Duration
	settled chan struct{}
}

func (m *settledMsg) settle(verb string, d time.Duration) error {
	m.mu.Lock()
	m.verb, m.delay = verb, d
	m.mu.Unlock()
	close(m.settled)
	return nil
}
func (m *settledMsg) Ack(context.Context) error          { return m.settle("ack", 0) }
func (m *settledMsg) NakWithDelay(d time.Duration) error { return m.settle("wait", d) }
func (m *settledMsg) Later(_ context.Context, d time.Duration, _ uint64) error {
	return m.settle("later", d)
}

// An endpoint whose attempts fail has its circuit opened in the worker: one task probes
// it, and the other tasks of its backlog are parked without an attempt, instead of each
// being tried (and failing) on its own schedule, taking the workers from the deliveries
// of healthy endpoints.
func TestFailingEndpointIsProbedNotFlooded(t *testing.T) {
	t.Parallel()
	var hits atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		hits.Add(1)
		w.WriteHeader(http.StatusInternalServerError)
	}))
	defer srv.Close()
	const n = 50
	st, src, msgs := endpointTasks(t, srv.URL, n)
	stop := runUntilSettled(t, webhook.DelivererConfig{Schedule: []time.Duration{time.Minute}, Timeout: 5 * time.Second}, st, nil, src, msgs)
	stop()

	parked, retried, prober := 0, 0, 0
	for _, m := range msgs {
		switch {
		case m.verb != "wait" && m.verb != "later":
			t.Fatalf("a task was %s", m.verb)
		case m.delay >= 30*time.Minute:
			parked++ // without an attempt, until the endpoint answers again
		case m.delay >= 50*time.Second:
			retried++ // the schedule's retry after an attempt
		default:
			prober++ // waits its turn to probe
		}
	}
	require.Equal(t, int(hits.Load()), retried, "each attempt was retried on the schedule")
	// The attempts in flight before the circuit opened (PerEndpoint, 16 by default, and
	// the openAfter failures that open it): not every task of the backlog.
	require.LessOrEqual(t, hits.Load(), int64(16+5), "the failing endpoint was flooded with attempts")
	require.LessOrEqual(t, prober, 1, "one task probes")
	require.Equal(t, n, parked+retried+prober)
	require.Positive(t, parked)
}

// releases records the releases of parked tasks.
type releases struct{ at chan time.Time }

func (r *releases) ReleaseTasks(_ context.Context, _ string) (int, error) {
	r.at <- time.Now()
	return 0, nil
}

// When a probe finds a failing endpoint healed, its parked tasks are released at once,
// and once more a little later, for the tasks parked while the circuit closed.
func TestHealedEndpointIsReleasedTwice(t *testing.T) {
	t.Parallel()
	var healed atomic.Bool
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		if !healed.Load() {
			w.WriteHeader(http.StatusInternalServerError)
		}
	}))
	defer srv.Close()
	st, src, msgs := endpointTasks(t, srv.URL, 10)
	rel := &releases{at: make(chan time.Time, 4)}
	const again = 300 * time.Millisecond
	stop := runUntilSettled(t, webhook.DelivererConfig{Schedule: []time.Duration{time.Minute}, Timeout: 5 * time.Second, ReleaseAgainAfter: again},
		st, rel, src, msgs)
	healed.Store(true) // the next probe succeeds and closes the circuit
	var first, second time.Time
	for i, at := range []*time.Time{&first, &second} {
		select {
		case *at = <-rel.at:
		case <-time.After(30 * time.Second):
			t.Fatalf("release %d did not come", i+1)
		}
	}
	require.GreaterOrEqual(t, second.Sub(first), again, "the second sweep comes ReleaseAgainAfter the first")
	stop()
}

// A probe never ends its task's run: an endpoint that fails for longer than the schedule
// lasts keeps its circuit open and its backlog parked until it answers. (A probe that gave
// up once closed the circuit and released the backlog onto the failing endpoint, each
// task spending an attempt; make test's e2e lost an event to that.)
func TestProbeOfAnEndpointStillFailingReleasesNothing(t *testing.T) {
	t.Parallel()
	var healed atomic.Bool
	var hits atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		hits.Add(1)
		if !healed.Load() {
			w.WriteHeader(http.StatusInternalServerError)
		}
	}))
	defer srv.Close()
	st, src, msgs := endpointTasks(t, srv.URL, 10)
	rel := &releases{at: make(chan time.Time, 4)}
	// One retry: a task's run ends at its second failed attempt.
	stop := runUntilSettled(t, webhook.DelivererConfig{Schedule: []time.Duration{time.Minute}, Timeout: 5 * time.Second},
		st, rel, src, msgs)
	defer stop()
	// Three probes (a second apart) fail, more than the probing task's run allows, and
	// nothing is released meanwhile.
	settled := hits.Load()
	deadline := time.After(30 * time.Second)
	for hits.Load() < settled+3 {
		select {
		case <-rel.at:
			t.Fatalf("the backlog was released while its endpoint still failed (after %d probes)", hits.Load()-settled)
		case <-deadline:
			t.Fatal("three probes did not come in 30s")
		case <-time.After(10 * time.Millisecond):
		}
	}
	healed.Store(true)
	select {
	case <-rel.at:
	case <-time.After(30 * time.Second):
		t.Fatal("the healed endpoint's backlog was not released")
	}
}

// runUntilSettled runs a Deliverer of cfg on st and src (rel releases parked tasks, when
// not nil) until every one of msgs is settled; stop ends the run and checks it ended well.
func runUntilSettled(t *testing.T, cfg webhook.DelivererConfig, st *memStore, rel webhook.Releaser, src *manyTasks, msgs []*settledMsg) (stop func()) {
	t.Helper()
	d := webhook.NewDeliverer(cfg, st, rel, plainSealer{}, webhook.NewClient(&webhook.Guard{AllowPrivate: true}, 5*time.Second, 16),
		slog.New(slog.NewTextHandler(io.Discard, nil)), prometheus.NewRegistry(), time.Now)
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { done <- d.Run(ctx, src) }()
	for _, m := range msgs {
		select {
		case <-m.settled:
		case <-time.After(30 * time.Second):
			cancel()
			t.Fatal("a task was not settled")
		}
	}
	return func() {
		t.Helper()
		cancel()
		require.NoError(t, <-done)
	}
}

// endpointTasks is an enabled endpoint at url in a memStore, and n tasks of it, in a
// source that hands them all out in its first fetch.
func endpointTasks(t *testing.T, url string, n int) (*memStore, *manyTasks, []*settledMsg) {
	t.Helper()
	secret := "whsec_" + base64.StdEncoding.EncodeToString([]byte("0123456789abcdef0123456789abcdef"))
	st := &memStore{
		endpoint: webhook.Endpoint{
			ID: "we_1", Merchant: "merchant_1", URL: url, Status: webhook.StatusEnabled,
			Secrets: []webhook.SealedSecret{{Sealed: []byte(secret)}},
		},
		deliveries: make(chan webhook.Delivery, 100),
	}
	src := &manyTasks{}
	var msgs []*settledMsg
	for i := range n {
		task, err := json.Marshal(webhook.Task{Key: fmt.Sprint("k", i), Merchant: "merchant_1", Endpoint: "we_1", Event: fmt.Sprint("evt_", i), Body: []byte(`{}`)})
		require.NoError(t, err)
		m := &settledMsg{taskMsg: taskMsg{data: task}, settled: make(chan struct{})}
		msgs = append(msgs, m)
		src.msgs = append(src.msgs, m)
	}
	return st, src, msgs
}

// An endpoint the deliverer disables is counted by reason: answering 410, or failing for
// the whole disable period. Both reasons are exported from zero.
func TestDisabledEndpointsAreCounted(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		reason  string
		status  int
		failing time.Duration // how long the endpoint has been failing before the attempt
	}{
		{reason: "gone", status: http.StatusGone},
		{reason: "failing", status: http.StatusInternalServerError, failing: 2 * time.Hour},
	} {
		t.Run(tc.reason, func(t *testing.T) {
			t.Parallel()
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(tc.status) }))
			defer srv.Close()
			st, src, msgs := endpointTasks(t, srv.URL, 1)
			if tc.failing > 0 {
				st.endpoint.FailingSince = new(time.Now().Add(-tc.failing))
			}
			reg := prometheus.NewRegistry()
			d := webhook.NewDeliverer(webhook.DelivererConfig{Schedule: []time.Duration{time.Minute}, DisableAfter: time.Hour},
				st, nil, plainSealer{}, webhook.NewClient(&webhook.Guard{AllowPrivate: true}, 5*time.Second, 4),
				slog.New(slog.NewTextHandler(io.Discard, nil)), reg, time.Now)
			disabled := func() map[string]float64 {
				families, err := reg.Gather()
				require.NoError(t, err)
				out := map[string]float64{}
				for _, f := range families {
					if f.GetName() == "billing_webhook_endpoints_disabled_total" {
						for _, m := range f.GetMetric() {
							out[m.GetLabel()[0].GetValue()] = m.GetCounter().GetValue()
						}
					}
				}
				return out
			}
			require.Equal(t, map[string]float64{"gone": 0, "failing": 0}, disabled())

			ctx, cancel := context.WithCancel(t.Context())
			done := make(chan error, 1)
			go func() { done <- d.Run(ctx, src) }()
			select {
			case <-msgs[0].settled:
			case <-time.After(30 * time.Second):
				t.Fatal("the task was not settled")
			}
			cancel()
			require.NoError(t, <-done)

			want := map[string]float64{"gone": 0, "failing": 0}
			want[tc.reason] = 1
			require.Equal(t, want, disabled())
		})
	}
}

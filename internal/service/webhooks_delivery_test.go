package service_test

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/stretchr/testify/require"

	"github.com/billing/billing/internal/config"
	"github.com/billing/billing/internal/queue"
)

// delivery is one request a receiver got.
type delivery struct {
	at     time.Time
	header http.Header
	body   []byte
}

// receiver is a webhook subscriber: it records every request and answers with status(n)
// for the n-th request (from 1), after hold if set.
type receiver struct {
	*httptest.Server
	mu     sync.Mutex
	got    []delivery
	status func(n int) int
	hold   time.Duration
}

func newReceiver(t *testing.T, status func(n int) int) *receiver {
	t.Helper()
	r := &receiver{status: status}
	r.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		body, _ := io.ReadAll(req.Body)
		r.mu.Lock()
		r.got = append(r.got, delivery{at: time.Now(), header: req.Header.Clone(), body: body})
		n, hold := len(r.got), r.hold
		r.mu.Unlock()
		if hold > 0 {
			select {
			case <-time.After(hold):
			case <-req.Context().Done():
			}
		}
		w.WriteHeader(r.status(n))
	}))
	t.Cleanup(r.Close)
	return r
}

func (r *receiver) deliveries() []delivery {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.got)
}

func always(code int) func(int) int { return func(int) int { return code } }

// verifySignature checks a delivery the way the Standard Webhooks specification says,
// written here independently of the package that signs: HMAC-SHA256 over
// "{id}.{timestamp}.{body}" with the base64-decoded secret after "whsec_", base64, "v1,".
func verifySignature(t *testing.T, d delivery, secret string) bool {
	t.Helper()
	key, err := base64.StdEncoding.DecodeString(strings.TrimPrefix(secret, "whsec_"))
	require.NoError(t, err)
	id, ts := d.header.Get("webhook-id"), d.header.Get("webhook-timestamp")
	mac := hmac.New(sha256.New, key)
	mac.Write([]byte(id + "." + ts + "." + string(d.body)))
	want := base64.StdEncoding.EncodeToString(mac.Sum(nil))
	for _, sig := range strings.Fields(d.header.Get("webhook-signature")) {
		if v, ok := strings.CutPrefix(sig, "v1,"); ok && hmac.Equal([]byte(v), []byte(want)) {
			return true
		}
	}
	return false
}

// webhookSystem is a system whose guard lets deliveries reach test receivers on loopback,
// with a short retry schedule and timeout.
func webhookSystem(t *testing.T, edit func(*config.Config)) *system {
	return startSystem(t, func(c *config.Config) {
		c.WebhookAllowPrivate = true
		c.WebhookRetrySchedule = []time.Duration{300 * time.Millisecond, 600 * time.Millisecond, 900 * time.Millisecond}
		c.WebhookTimeout = 2 * time.Second
		c.RateBurst = 10_000
		c.RateLimit = 10_000
		if edit != nil {
			edit(c)
		}
	})
}

// endpoint registers url for the merchant of tok and returns its id and secret.
func (s *system) endpoint(tok, url string, events ...string) (string, string) {
	s.t.Helper()
	if len(events) == 0 {
		events = []string{"*"}
	}
	ev, _ := json.Marshal(events)
	r := s.do("POST", "/v1/webhook_endpoints", tok, `{"url": "`+url+`", "enabled_events": `+string(ev)+`}`, "Idempotency-Key", newKey())
	require.Equal(s.t, http.StatusCreated, r.status, "%s", r.body)
	e := r.json(s.t)
	return e["id"].(string), e["secret"].(string)
}

func waitFor(t *testing.T, what string, timeout time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		require.True(t, time.Now().Before(deadline), "timed out waiting for %s", what)
		time.Sleep(20 * time.Millisecond)
	}
}

// A failing endpoint is retried on the schedule with the same webhook-id, every attempt
// signed, every attempt recorded; the event arrives once the endpoint answers 2xx.
func TestWebhookRetriesOnScheduleUntilDelivered(t *testing.T) {
	t.Parallel()
	s := webhookSystem(t, nil)
	tok := s.token("merchant_hooks_retry")
	rcv := newReceiver(t, func(n int) int {
		if n <= 2 {
			return http.StatusInternalServerError
		}
		return http.StatusNoContent
	})
	endpointID, secret := s.endpoint(tok, rcv.URL+"/hooks")
	ch := s.settle(tok, s.create(tok, chargeBody(1999, "pm_card_visa"))["id"].(string))

	waitFor(t, "three attempts", 20*time.Second, func() bool { return len(rcv.deliveries()) >= 3 })
	got := rcv.deliveries()
	require.Len(t, got, 3, "no attempt after the successful one")
	var ev map[string]any
	require.NoError(t, json.Unmarshal(got[0].body, &ev))
	require.Equal(t, "charge.succeeded", ev["type"])
	require.Equal(t, ch["id"], ev["data"].(map[string]any)["object"].(map[string]any)["id"])
	for i, d := range got {
		require.Equal(t, ev["id"], d.header.Get("webhook-id"), "attempt %d: same id on every attempt", i+1)
		require.Equal(t, got[0].body, d.body, "attempt %d: same body", i+1)
		require.True(t, verifySignature(t, d, secret), "attempt %d: signature", i+1)
		ts, err := strconv.ParseInt(d.header.Get("webhook-timestamp"), 10, 64)
		require.NoError(t, err)
		require.InDelta(t, d.at.Unix(), ts, 2, "the timestamp is the attempt's")
	}
	// The schedule, with its ±10% jitter: 300 ms after the first failure, 600 ms after
	// the second.
	require.GreaterOrEqual(t, got[1].at.Sub(got[0].at), 270*time.Millisecond)
	require.GreaterOrEqual(t, got[2].at.Sub(got[1].at), 540*time.Millisecond)

	waitFor(t, "three recorded attempts", 10*time.Second, func() bool {
		r := s.do("GET", "/v1/webhook_endpoints/"+endpointID+"/deliveries", tok, "")
		return r.status == http.StatusOK && len(r.json(t)["data"].([]any)) == 3
	})
	r := s.do("GET", "/v1/webhook_endpoints/"+endpointID+"/deliveries", tok, "")
	data := r.json(t)["data"].([]any)
	newest, oldest := data[0].(map[string]any), data[2].(map[string]any)
	require.Equal(t, "webhook_delivery", newest["object"])
	require.EqualValues(t, 3, newest["attempt"])
	require.EqualValues(t, 204, newest["response_status"])
	require.Nil(t, newest["next_attempt_at"])
	require.Nil(t, newest["error"])
	require.EqualValues(t, 1, oldest["attempt"])
	require.EqualValues(t, 500, oldest["response_status"])
	require.Contains(t, oldest, "error")
	require.Nil(t, oldest["error"], "an answer came: error is null, response_status says what it was")
	require.NotNil(t, oldest["next_attempt_at"])
	require.Equal(t, ev["id"], oldest["event"])
	require.Equal(t, endpointID, oldest["endpoint"])
}

// The tasks of an endpoint that is down wait for their next attempt, or for its circuit to
// close, without holding the task consumer's places for unacknowledged messages: were they
// nak'd with their delay, enough of them (a busy merchant's endpoint down for a day) would
// fill every place, and no endpoint of any merchant would receive anything until they
// drained.
func TestFailingEndpointHoldsNoConsumerPlaces(t *testing.T) {
	t.Parallel()
	s := webhookSystem(t, func(c *config.Config) { c.WebhookRetrySchedule = []time.Duration{time.Minute} })
	down := newReceiver(t, always(http.StatusServiceUnavailable))
	tok := s.token("merchant_hooks_down")
	s.endpoint(tok, down.URL)
	for i := range 20 {
		s.create(tok, chargeBody(100+i, "pm_card_visa"))
	}
	waitFor(t, "a first attempt", 30*time.Second, func() bool { return len(down.deliveries()) > 0 })

	nc, err := nats.Connect(s.cfg.NATSURL)
	require.NoError(t, err)
	defer nc.Close()
	js, err := jetstream.New(nc)
	require.NoError(t, err)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	cons, err := js.Consumer(ctx, queue.StreamWebhooks, queue.TaskConsumerName)
	require.NoError(t, err)
	stream, err := js.Stream(ctx, queue.StreamWebhooks)
	require.NoError(t, err)
	// Each task waits in the stream for its next attempt, or for the endpoint to answer
	// again, and none holds a place.
	waitFor(t, "all 20 tasks to be handed back", 30*time.Second, func() bool {
		info, err := cons.Info(ctx)
		require.NoError(t, err)
		sinfo, err := stream.Info(ctx)
		require.NoError(t, err)
		return info.NumAckPending == 0 && info.NumPending == 0 && sinfo.State.Msgs == 20
	})
	// Each task was tried at most once (its retry is a minute away), but the one the
	// worker probes the endpoint with once its circuit opened.
	events := map[string]int{}
	for _, d := range down.deliveries() {
		events[d.header.Get("webhook-id")]++
	}
	probed := 0
	for _, n := range events {
		if n > 1 {
			probed++
		}
	}
	require.LessOrEqual(t, probed, 1, "events tried again before their time: %v", events)
}

// After the last scheduled retry the delivery is given up; an endpoint that answers 410
// Gone is disabled at once; one that has failed for the configured period is disabled.
func TestWebhookGivesUpAndDisables(t *testing.T) {
	t.Parallel()
	s := webhookSystem(t, func(c *config.Config) { c.WebhookDisableAfter = time.Hour })
	tok := s.token("merchant_hooks_fail")
	failing := newReceiver(t, always(http.StatusBadGateway))
	gone := newReceiver(t, always(http.StatusGone))
	failingID, _ := s.endpoint(tok, failing.URL)
	goneID, _ := s.endpoint(tok, gone.URL)
	s.settle(tok, s.create(tok, chargeBody(500, "pm_card_visa"))["id"].(string))

	waitFor(t, "the schedule to be used up", 20*time.Second, func() bool { return len(failing.deliveries()) >= 4 })
	waitFor(t, "410 to disable", 10*time.Second, func() bool {
		return s.do("GET", "/v1/webhook_endpoints/"+goneID, tok, "").json(t)["status"] == "disabled"
	})
	// The fourth attempt's record says no retry is due: the run is over, deterministically
	// (no waiting to see whether a fifth comes).
	lastAttempt := func(s *system, tok, endpoint string, attempts int) map[string]any {
		var newest map[string]any
		waitFor(t, "the attempts to be recorded", 10*time.Second, func() bool {
			data := s.do("GET", "/v1/webhook_endpoints/"+endpoint+"/deliveries?limit=100", tok, "").json(t)["data"].([]any)
			if len(data) < attempts {
				return false
			}
			newest = data[0].(map[string]any)
			return true
		})
		return newest
	}
	last := lastAttempt(s, tok, failingID, 4)
	require.EqualValues(t, 4, last["attempt"])
	require.EqualValues(t, 502, last["response_status"])
	require.Nil(t, last["next_attempt_at"], "given up after the schedule")
	require.Len(t, failing.deliveries(), 4, "one attempt and three retries")
	last = lastAttempt(s, tok, goneID, 1)
	require.EqualValues(t, 410, last["response_status"])
	require.Nil(t, last["next_attempt_at"], "nothing more after 410")
	require.Len(t, gone.deliveries(), 1)
	require.Equal(t, "enabled", s.do("GET", "/v1/webhook_endpoints/"+failingID, tok, "").json(t)["status"], "an hour has not passed")

	// A second system whose endpoints are disabled after failing for 500 ms.
	s2 := webhookSystem(t, func(c *config.Config) {
		c.WebhookDisableAfter = 500 * time.Millisecond
		c.WebhookRetrySchedule = []time.Duration{200 * time.Millisecond, 200 * time.Millisecond, 200 * time.Millisecond, 200 * time.Millisecond, 200 * time.Millisecond, 200 * time.Millisecond}
	})
	tok2 := s2.token("merchant_hooks_dead")
	dead := newReceiver(t, always(http.StatusServiceUnavailable))
	deadID, _ := s2.endpoint(tok2, dead.URL)
	s2.settle(tok2, s2.create(tok2, chargeBody(500, "pm_card_visa"))["id"].(string))
	waitFor(t, "long failure to disable", 15*time.Second, func() bool {
		return s2.do("GET", "/v1/webhook_endpoints/"+deadID, tok2, "").json(t)["status"] == "disabled"
	})
	// The attempt that found the endpoint failing too long gave the run up (its record is
	// written just after the endpoint is disabled).
	var data []any
	waitFor(t, "the giving-up attempt to be recorded", 10*time.Second, func() bool {
		data = s2.do("GET", "/v1/webhook_endpoints/"+deadID+"/deliveries?limit=100", tok2, "").json(t)["data"].([]any)
		return len(data) > 0 && data[0].(map[string]any)["next_attempt_at"] == nil
	})
	require.Less(t, len(data), 7, "disabled before the schedule was used up")
	require.Len(t, dead.deliveries(), len(data), "no attempt after the last recorded one")
}

// During a rotation both the old and the new secret sign; redeliver sends an event again
// with the same webhook-id.
func TestWebhookRotationAndRedeliver(t *testing.T) {
	t.Parallel()
	s := webhookSystem(t, nil)
	tok := s.token("merchant_hooks_rotate")
	rcv := newReceiver(t, always(http.StatusOK))
	endpointID, oldSecret := s.endpoint(tok, rcv.URL)
	r := s.do("POST", "/v1/webhook_endpoints/"+endpointID+"/rotate_secret", tok, "", "Idempotency-Key", newKey())
	require.Equal(t, http.StatusOK, r.status, "%s", r.body)
	newSecret := r.json(t)["secret"].(string)
	require.NotEqual(t, oldSecret, newSecret)

	s.settle(tok, s.create(tok, chargeBody(700, "pm_card_visa"))["id"].(string))
	waitFor(t, "the delivery", 10*time.Second, func() bool { return len(rcv.deliveries()) >= 1 })
	d := rcv.deliveries()[0]
	require.Len(t, strings.Fields(d.header.Get("webhook-signature")), 2)
	require.True(t, verifySignature(t, d, oldSecret), "the old secret still signs")
	require.True(t, verifySignature(t, d, newSecret), "the new secret signs")

	eventID := d.header.Get("webhook-id")
	r = s.do("POST", "/v1/events/"+eventID+"/redeliver", tok, `{"endpoint": "`+endpointID+`"}`, "Idempotency-Key", newKey())
	require.Equal(t, http.StatusAccepted, r.status, "%s", r.body)
	waitFor(t, "the redelivery", 10*time.Second, func() bool { return len(rcv.deliveries()) >= 2 })
	again := rcv.deliveries()[1]
	require.Equal(t, eventID, again.header.Get("webhook-id"))
	require.Equal(t, d.body, again.body)
	require.True(t, verifySignature(t, again, newSecret))
}

// One endpoint that hangs until the timeout must not hold back another merchant's
// deliveries. The healthy endpoint receives 1,000 events twice: once alone (the baseline
// of this machine, this run), once while a hanging endpoint has 200 events of its own
// pending, every attempt of which times out. Its p99 delay must not grow by anything
// like a timeout.
//
// It is not parallel: its figures mean something only without the package's other tests
// competing for the two cores.
func TestSlowEndpointDoesNotHoldOthersBack(t *testing.T) {
	// The default timeout: were the healthy endpoint's deliveries queued behind the
	// hanging endpoint's attempts, they would wait in multiples of it.
	const timeout = 15 * time.Second
	s := webhookSystem(t, func(c *config.Config) {
		c.WebhookTimeout = timeout
		c.WebhookRetrySchedule = []time.Duration{time.Minute}
	})
	fast := newReceiver(t, always(http.StatusOK))
	burst := func(tok string, n int) {
		var wg sync.WaitGroup
		for w := range 8 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i := w; i < n; i += 8 {
					s.create(tok, chargeBody(100+i, "pm_card_visa"))
				}
			}()
		}
		wg.Wait()
	}
	// delays sends 1,000 events to the healthy endpoint and returns the delay of each
	// delivery, from the event's creation to its arrival, sorted.
	delays := func(merchant string) []time.Duration {
		before := len(fast.deliveries())
		burst(s.token(merchant), 1000)
		waitFor(t, "1,000 deliveries to the healthy endpoint", 3*time.Minute, func() bool { return len(fast.deliveries()) >= before+1000 })
		var out []time.Duration
		for _, d := range fast.deliveries()[before:] {
			var ev struct {
				CreatedAt time.Time `json:"created_at"`
			}
			require.NoError(t, json.Unmarshal(d.body, &ev))
			out = append(out, d.at.Sub(ev.CreatedAt))
		}
		sort.Slice(out, func(i, j int) bool { return out[i] < out[j] })
		return out
	}
	stats := func(d []time.Duration) (p50, p90, p99 time.Duration) {
		return d[len(d)/2], d[len(d)*90/100], d[len(d)*99/100]
	}

	s.endpoint(s.token("merchant_hooks_fast_a"), fast.URL)
	alone := delays("merchant_hooks_fast_a")

	slow := newReceiver(t, always(http.StatusOK))
	slow.hold = time.Minute // longer than the timeout: every attempt times out
	slowTok := s.token("merchant_hooks_slow")
	s.endpoint(slowTok, slow.URL)
	burst(slowTok, 200)
	waitFor(t, "the hanging endpoint to be busy", time.Minute, func() bool { return len(slow.deliveries()) >= 1 })
	start := time.Now()
	s.endpoint(s.token("merchant_hooks_fast_b"), fast.URL)
	beside := delays("merchant_hooks_fast_b")
	elapsed := time.Since(start)

	p50a, p90a, p99a := stats(alone)
	p50b, p90b, p99b := stats(beside)
	ms := func(d time.Duration) time.Duration { return d.Round(time.Millisecond) }
	t.Logf("healthy endpoint, 1,000 events: alone p50 %s p90 %s p99 %s; beside a hanging endpoint p50 %s p90 %s p99 %s (it got %d attempts in %s)",
		ms(p50a), ms(p90a), ms(p99a), ms(p50b), ms(p90b), ms(p99b), len(slow.deliveries()), ms(elapsed))
	// Held back, the healthy endpoint's deliveries would queue behind attempts that each
	// take a whole timeout: the 64 delivery slots freed once per timeout, 1,000 events
	// would take minutes and most of them wait several timeouts. Its p90 may move with the
	// machine's load, not by a timeout. (Not p99: on two cores under -race the last
	// deliveries of a phase were seen 9 s to 27 s after their events, whatever the other
	// endpoint did.)
	require.Less(t, p90b-p90a, timeout, "the healthy endpoint waited for the hanging one's timeouts")
	// The hanging endpoint gets no more than its concurrency per timeout window.
	windows := int(elapsed/timeout) + 2
	require.LessOrEqual(t, len(slow.deliveries()), s.cfg.WebhookEndpointConcurrency*windows)
}

// An endpoint that fails and then answers again gets its whole backlog at once: the tasks
// parked while its circuit was open, and those waiting out their retry (a minute here),
// are released when a probe succeeds, not left to come back when their waits end.
func TestHealedEndpointGetsItsBacklogAtOnce(t *testing.T) {
	t.Parallel()
	// One attempt at a time, so that the failures come strictly before the circuit opens
	// (an attempt in flight when it closes is retried on its schedule, a minute here).
	s := webhookSystem(t, func(c *config.Config) {
		c.WebhookRetrySchedule = []time.Duration{time.Minute, time.Minute}
		c.WebhookEndpointConcurrency = 1
	})
	const failures = 5 // in a row: enough to open the endpoint's circuit
	flaky := newReceiver(t, func(n int) int {
		if n <= failures {
			return http.StatusServiceUnavailable
		}
		return http.StatusOK
	})
	tok := s.token("merchant_hooks_heal")
	s.endpoint(tok, flaky.URL)
	for i := range 20 {
		s.create(tok, chargeBody(100+i, "pm_card_visa"))
	}
	waitFor(t, "every event delivered once the endpoint answers", 30*time.Second, func() bool {
		ok := map[string]bool{}
		for i, d := range flaky.deliveries() {
			if i >= failures {
				ok[d.header.Get("webhook-id")] = true
			}
		}
		return len(ok) == 20
	})
}

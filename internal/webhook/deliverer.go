package webhook

import (
	"bytes"
	"cmp"
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.opentelemetry.io/otel/trace"

	"github.com/billing/billing/internal/charge"
	"github.com/billing/billing/internal/consume"
	"github.com/billing/billing/internal/telemetry"
	"github.com/billing/billing/webhooksig"
)

// DelivererConfig configures a Deliverer.
type DelivererConfig struct {
	// Concurrency bounds deliveries in flight. Defaults to 64.
	Concurrency int
	// PerEndpoint bounds deliveries in flight to one endpoint. Defaults to 16.
	PerEndpoint int
	// HeldPerEndpoint bounds the tasks of one endpoint held waiting for a slot; more are
	// put back for later, so that a slow endpoint's backlog cannot fill the worker.
	// Defaults to 4 × PerEndpoint.
	HeldPerEndpoint int
	// ReleaseAgainAfter is how long after releasing a healed endpoint's parked tasks the
	// worker sweeps them once more, for those parked while its circuit closed. Default
	// 10 s.
	ReleaseAgainAfter time.Duration
	// Timeout is how long an endpoint has to answer. Defaults to 15s.
	Timeout time.Duration
	// Schedule is the delay after each failed attempt. Required.
	Schedule []time.Duration
	// DisableAfter disables an endpoint whose deliveries have all failed this long.
	// Defaults to 5 days.
	DisableAfter time.Duration
	// AckWait is the task consumer's ack wait; held tasks are marked in progress every
	// third of it. Defaults to 60s.
	AckWait time.Duration
	// TracerProvider traces each attempt (trace.go). Defaults to none.
	TracerProvider trace.TracerProvider
}

// Deliverer sends delivery tasks to endpoints: signed, once per attempt, retried on the
// schedule, with the endpoint's health kept up to date.
type Deliverer struct {
	cfg     DelivererConfig
	store   Store
	sealer  Sealer
	client  *http.Client
	logger  *slog.Logger
	now     charge.TimeNow
	metrics *delivererMetrics

	loop   *consume.Loop
	global chan struct{}
	cache  endpointCache
	mu     sync.Mutex
	ends   map[string]*endpointSlots
	// circuits of the endpoints whose last attempt from this worker failed (circuit.go),
	// and what releases their parked tasks once they answer again (nil: none is).
	circuits circuits
	release  Releaser
	runCtx   context.Context // Run's: the probes stop with it
	tracer   telemetry.Tracer
}

type endpointSlots struct {
	slots chan struct{}
	held  int
}

// NewDeliverer returns a Deliverer; client should come from NewClient. release brings
// back the tasks parked while an endpoint was failing, once it answers again; if nil, they
// come back when their wait ends.
func NewDeliverer(cfg DelivererConfig, store Store, release Releaser, sealer Sealer, client *http.Client, logger *slog.Logger, reg prometheus.Registerer, now charge.TimeNow) *Deliverer {
	cfg.Concurrency = cmp.Or(cfg.Concurrency, 64)
	cfg.PerEndpoint = cmp.Or(cfg.PerEndpoint, 16)
	cfg.HeldPerEndpoint = cmp.Or(cfg.HeldPerEndpoint, 4*cfg.PerEndpoint)
	cfg.ReleaseAgainAfter = cmp.Or(cfg.ReleaseAgainAfter, 10*time.Second)
	cfg.Timeout = cmp.Or(cfg.Timeout, 15*time.Second)
	cfg.DisableAfter = cmp.Or(cfg.DisableAfter, 5*24*time.Hour)
	cfg.AckWait = cmp.Or(cfg.AckWait, 60*time.Second)
	// A worker holds at most 4 × Concurrency tasks at once, waiting for a slot or in
	// flight; the loop keeps them in progress meanwhile.
	loop := consume.New(consume.Config{
		Name: "webhook deliveries", Metric: "billing_webhook_tasks_total",
		Help:  "Webhook delivery tasks settled, by result (acked, retried, waiting, dead_lettered).",
		Batch: 4 * cfg.Concurrency, AckWait: cfg.AckWait,
	}, store, logger, reg, now)
	return &Deliverer{
		cfg: cfg, store: store, sealer: sealer, client: client, logger: logger, now: now,
		metrics: newDelivererMetrics(reg), loop: loop, release: release, runCtx: context.Background(),
		tracer: telemetry.NewTracer(cfg.TracerProvider, "github.com/billing/billing/internal/webhook"),
		global: make(chan struct{}, cfg.Concurrency),
		ends:   map[string]*endpointSlots{},
	}
}

// parkDelay is how long a task parks while its endpoint's circuit is open: parkFor, and a
// little more at random so that a backlog not released does not come back at once.
func parkDelay() time.Duration { return parkFor + rand.N(parkFor/10) }

// Run delivers tasks from src until ctx ends, then finishes the deliveries in hand.
func (d *Deliverer) Run(ctx context.Context, src Source) error {
	d.runCtx = ctx
	return d.loop.Run(ctx, src, func(ctx context.Context, msgs []Message) {
		// Those put back at once are settled together, not one round trip after another
		// while the batch's other tasks wait to start.
		var back []Message
		var outs []consume.Outcome
		for _, m := range msgs {
			if o, started := d.dispatch(ctx, m); !started {
				back, outs = append(back, m), append(outs, o)
			}
		}
		d.loop.Settle(ctx, back, outs)
	})
}

// deferDelay is how long a task waits when its endpoint already has as many held as it
// may: a few seconds at first, longer each time it is deferred again. An endpoint that
// hangs or fails holds a backlog of tasks; were they all to come back every second or
// two, they would fill every fetch, and the tasks of healthy endpoints behind them would
// wait minutes for theirs.
func deferDelay(n uint64) time.Duration {
	return min(time.Duration(n)*2*time.Second, time.Minute) + rand.N(time.Second)
}

// dispatch starts the delivery of one task, or puts it back: parked while its endpoint's
// circuit is open (circuit.go), or for a few seconds if its endpoint already has as many
// held as it may. When it starts the delivery, that settles the task; otherwise dispatch
// returns what becomes of it, for the caller to settle.
func (d *Deliverer) dispatch(ctx context.Context, m Message) (consume.Outcome, bool) {
	var t Task
	if err := json.Unmarshal(m.Data(), &t); err != nil || t.Endpoint == "" || t.Key == "" {
		reason := "undecodable webhook task"
		if err != nil {
			reason += ": " + err.Error()
		}
		return consume.Refuse(reason), false
	}
	if d.circuits.isOpen(t.Endpoint) {
		d.metrics.deferred.Inc()
		return consume.Wait(parkDelay()), false
	}
	d.mu.Lock()
	e := d.ends[t.Endpoint]
	if e == nil {
		e = &endpointSlots{slots: make(chan struct{}, d.cfg.PerEndpoint)}
		d.ends[t.Endpoint] = e
	}
	if e.held >= d.cfg.HeldPerEndpoint {
		d.mu.Unlock()
		// A wait, not an attempt: the run's attempt count is kept in the store.
		d.metrics.deferred.Inc()
		return consume.Wait(deferDelay(m.NumDelivered())), false
	}
	e.held++
	d.mu.Unlock()

	go func() {
		defer func() {
			d.mu.Lock()
			e.held--
			if e.held == 0 {
				delete(d.ends, t.Endpoint)
			}
			d.mu.Unlock()
		}()
		e.slots <- struct{}{}
		defer func() { <-e.slots }()
		if d.circuits.isOpen(t.Endpoint) {
			// Its endpoint's circuit opened since this task was dispatched.
			d.metrics.deferred.Inc()
			d.loop.SettleOne(ctx, m, consume.Wait(parkDelay()))
			return
		}
		d.global <- struct{}{}
		defer func() { <-d.global }()
		d.loop.SettleOne(ctx, m, d.deliver(telemetry.FromMessage(ctx, m), t, m.NumDelivered() > 1, false))
	}()
	return consume.Outcome{}, true
}

// deliver makes one attempt of task t and says what becomes of it: done when delivered,
// given up, or the endpoint is gone or disabled; otherwise a retry at the schedule's next
// delay, which hands it back for later rather than hold one of the task consumer's places
// (MaxAckPending) for hours while an endpoint is down.
//
// redelivered says whether t's message was delivered before (a retry, a deferral, a
// crashed worker, a probe): then the store knows how many attempts were made. probe says
// the attempt is the worker's probe of a failing endpoint (probe): then a failure never
// ends t's run.
func (d *Deliverer) deliver(ctx context.Context, t Task, redelivered, probe bool) consume.Outcome {
	ctx, cancel := context.WithTimeout(ctx, d.cfg.Timeout+30*time.Second)
	defer cancel()
	attempt := 1
	if redelivered {
		made, err := d.store.Run(ctx, t.Key)
		if err != nil {
			return d.requeue(ctx, err)
		}
		attempt = made + 1
	}
	e, err := d.cache.get(ctx, d.store, t.Endpoint, d.now())
	if errors.Is(err, charge.ErrNotFound) {
		d.noteHealth(t, true) // nothing to probe: release what is parked
		return consume.Done() // deleted: nothing to deliver to
	}
	if err != nil {
		return d.requeue(ctx, err)
	}
	if e.Status != StatusEnabled {
		d.noteHealth(t, true) // nothing to probe: release what is parked
		return consume.Done()
	}
	keys, err := d.keys(e)
	if err != nil {
		return d.requeue(ctx, err)
	}

	now := d.now()
	span := d.startAttempt(ctx, t, attempt)
	status, resp, sendErr := d.send(ctx, e.URL, t, keys, now)
	d.endAttempt(span, status, sendErr)
	elapsed := d.now().Sub(now)
	rec := Delivery{
		ID: charge.NewID(charge.PrefixWebhookDelivery), Merchant: e.Merchant, Endpoint: e.ID,
		Event: t.Event, Attempt: attempt, DurationMS: elapsed.Milliseconds(),
		CreatedAt: now.UTC().Truncate(time.Millisecond), Key: t.Key,
	}
	if status != 0 {
		rec.ResponseStatus = &status
	}
	d.metrics.duration.Observe(elapsed.Seconds())
	ok := sendErr == nil && status >= 200 && status <= 299
	d.noteHealth(t, ok)
	if sendErr != nil {
		// No answer came: the merchant sees why, on the delivery (an answer that came,
		// whatever its status, has error null); the operator's log has the whole error,
		// addresses included.
		why := deliveryError(sendErr, d.cfg.Timeout)
		rec.Error = &why
		if errors.Is(sendErr, ErrURLForbidden) {
			d.logger.WarnContext(ctx, "webhook endpoint resolves to a forbidden address; not delivered",
				"endpoint", e.ID, "error", sendErr)
		} else {
			d.logger.DebugContext(ctx, "webhook delivery failed", "endpoint", e.ID, "error", sendErr)
		}
	}

	var out consume.Outcome
	if !ok || e.FailingSince != nil {
		d.cache.forget(e.ID) // its health is about to change
	}
	switch {
	case ok:
		d.metrics.outcomes.WithLabelValues("delivered").Inc()
		if e.FailingSince != nil {
			_ = d.store.SetEndpointHealth(ctx, e.ID, nil, "")
		}
		out = consume.Done()
	case status == http.StatusGone:
		d.metrics.outcomes.WithLabelValues("gone").Inc()
		d.logger.InfoContext(ctx, "endpoint answered 410 Gone; disabled", "endpoint", e.ID)
		if err := d.store.SetEndpointHealth(ctx, e.ID, e.FailingSince, "gone"); err != nil {
			return d.requeue(ctx, err)
		}
		d.metrics.disabled.WithLabelValues("gone").Inc()
		out = consume.Done()
	default:
		since := e.FailingSince
		if since == nil {
			since = &now
		}
		reason := ""
		if now.Sub(*since) >= d.cfg.DisableAfter {
			reason = "failing"
			d.logger.InfoContext(ctx, "endpoint failing too long; disabled", "endpoint", e.ID, "since", *since)
		}
		if e.FailingSince == nil || reason != "" {
			if err := d.store.SetEndpointHealth(ctx, e.ID, since, reason); err != nil {
				return d.requeue(ctx, err)
			}
			if reason != "" {
				d.metrics.disabled.WithLabelValues(reason).Inc()
			}
		}
		delay, again := nextDelay(d.cfg.Schedule, attempt, resp, now)
		if probe && reason == "" {
			// The worker's probe, made while t itself is parked: it never ends t's run
			// (were it to give up, the circuit would close and release the whole backlog
			// onto an endpoint still failing, each task spending an attempt). t's own
			// message carries the run on once the endpoint answers.
			d.metrics.outcomes.WithLabelValues("failed").Inc()
			if again {
				next := now.Add(delay).UTC().Truncate(time.Millisecond)
				rec.NextAttemptAt = &next
			}
			out = consume.Retry(delay)
			break
		}
		if !again || reason != "" {
			d.metrics.outcomes.WithLabelValues("gave_up").Inc()
			out = consume.Done()
			break
		}
		d.metrics.outcomes.WithLabelValues("failed").Inc()
		next := now.Add(delay).UTC().Truncate(time.Millisecond)
		rec.NextAttemptAt = &next
		if err := d.store.SaveRun(ctx, t.Key, attempt); err != nil {
			return d.requeue(ctx, err)
		}
		out = consume.Retry(delay)
	}
	if err := d.store.InsertDelivery(ctx, rec); err != nil {
		d.logger.WarnContext(ctx, "recording delivery attempt", "endpoint", e.ID, "error", err)
	}
	return out
}

// noteHealth records whether an attempt of task t succeeded. When that opens its
// endpoint's circuit, the worker starts probing the endpoint with t; when it closes it,
// the endpoint's parked tasks are released.
func (d *Deliverer) noteHealth(t Task, ok bool) {
	opened, closed := d.circuits.note(t.Endpoint, ok)
	switch {
	case opened:
		d.logger.InfoContext(d.runCtx, "endpoint failing; its tasks are parked while it is probed", "endpoint", t.Endpoint)
		go d.probe(t)
	case closed && d.release != nil:
		go func() {
			ctx, cancel := context.WithTimeout(context.WithoutCancel(d.runCtx), releaseTimeout)
			defer cancel()
			if !d.releaseParked(ctx, t.Endpoint, false) {
				return
			}
			// A task parked while the circuit closed (its hand-back still on its way,
			// or parked by another worker whose circuit is still open) lands after
			// that sweep and would wait out parkFor: sweep once more.
			select {
			case <-ctx.Done():
				return
			case <-time.After(d.cfg.ReleaseAgainAfter):
			}
			if !d.circuits.isOpen(t.Endpoint) {
				d.releaseParked(ctx, t.Endpoint, true)
			}
		}()
	}
}

// releaseParked releases the parked tasks of endpoint (again: the second sweep) and logs
// it, and reports whether it could: what a failed release leaves comes back when its wait
// ends.
func (d *Deliverer) releaseParked(ctx context.Context, endpoint string, again bool) bool {
	n, err := d.release.ReleaseTasks(ctx, endpoint)
	switch {
	case err != nil:
		d.logger.WarnContext(ctx, "releasing the parked tasks of an endpoint that answers again; they come back when their wait ends",
			"endpoint", endpoint, "released", n, "error", err)
		return false
	case !again:
		d.logger.InfoContext(ctx, "endpoint answers again; its parked tasks released", "endpoint", endpoint, "released", n)
	case n > 0:
		d.logger.InfoContext(ctx, "parked tasks released again: parked while the circuit closed", "endpoint", endpoint, "released", n)
	}
	return true
}

// releaseTimeout bounds the release of an endpoint's parked tasks: tens of thousands
// take a minute or two on a small cluster.
const releaseTimeout = 10 * time.Minute

// probe makes an attempt of t every probeInterval until the endpoint answers (or is
// disabled or deleted, which leaves nothing to wait for) or the worker stops; then it
// closes the circuit, which releases the parked tasks. A probe is listed among the
// endpoint's deliveries and keeps the endpoint's health (410 and five days of failures
// disable it), but a failed one never ends t's run: that would close the circuit while
// the endpoint still fails. Its event may come again with t's own task: delivery is at
// least once.
func (d *Deliverer) probe(t Task) {
	since := d.now()
	for {
		select {
		case <-d.runCtx.Done():
			return
		case <-time.After(probeInterval(d.now().Sub(since))):
		}
		if !d.circuits.isOpen(t.Endpoint) {
			return // closed by a task's attempt
		}
		d.metrics.probes.Inc()
		if d.deliver(d.runCtx, t, true, true).Kind == consume.KindDone {
			d.noteHealth(t, true)
			return
		}
	}
}

// requeue is the outcome of a failure of ours (not the endpoint's): a wait, no attempt
// made; if the endpoint was deleted meanwhile, there is nothing left to do.
func (d *Deliverer) requeue(ctx context.Context, err error) consume.Outcome {
	if errors.Is(err, charge.ErrNotFound) {
		return consume.Done()
	}
	d.logger.WarnContext(ctx, "webhook task deferred after an internal error", "error", err)
	return consume.Wait(5 * time.Second)
}

// keys opens the endpoint's active secrets.
func (d *Deliverer) keys(e Endpoint) ([][]byte, error) {
	var keys [][]byte
	for _, sealed := range e.ActiveSecrets(d.now()) {
		plain, err := d.sealer.Open(sealed)
		if err != nil {
			return nil, fmt.Errorf("opening secret of %s: %w", e.ID, err)
		}
		k, err := webhooksig.DecodeSecret(string(plain))
		if err != nil {
			return nil, err
		}
		keys = append(keys, k)
	}
	if len(keys) == 0 {
		return nil, fmt.Errorf("endpoint %s has no active secret", e.ID)
	}
	return keys, nil
}

// send posts the task's body, signed by keys at now; it returns the status (0 when no
// answer came), the response (body drained and closed), and the transport error.
func (d *Deliverer) send(ctx context.Context, url string, t Task, keys [][]byte, now time.Time) (int, *http.Response, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(t.Body))
	if err != nil {
		return 0, nil, err
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", "billing-webhooks/1")
	req.Header.Set(webhooksig.HeaderID, t.Event)
	req.Header.Set(webhooksig.HeaderTimestamp, strconv.FormatInt(now.Unix(), 10))
	req.Header.Set(webhooksig.HeaderSignature, webhooksig.SignatureHeader(keys, t.Event, now, t.Body))
	resp, err := d.client.Do(req)
	if err != nil {
		return 0, nil, err
	}
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	_ = resp.Body.Close()
	return resp.StatusCode, resp, nil
}

// deliveryError is what a merchant is shown of a failed attempt's transport error (the
// delivery's error): what went wrong, never an address. The error itself names the
// addresses the endpoint's host resolved to (the dialer's "dial tcp 10.1.2.3:443: …") and
// a DNS error names our resolver; a refused address is only "forbidden address".
func deliveryError(err error, timeout time.Duration) string {
	var (
		dnsErr  *net.DNSError
		certErr *tls.CertificateVerificationError
		alert   tls.AlertError
		record  tls.RecordHeaderError
		netErr  net.Error
		urlErr  *url.Error
		opErr   *net.OpError
	)
	switch {
	case errors.Is(err, ErrURLForbidden):
		return "connection refused: forbidden address"
	case errors.As(err, &dnsErr):
		switch {
		case dnsErr.IsNotFound:
			return "host not found"
		case dnsErr.IsTimeout:
			return "host name lookup timed out"
		}
		return "host name lookup failed"
	case errors.Is(err, context.DeadlineExceeded), errors.As(err, &netErr) && netErr.Timeout():
		return fmt.Sprintf("timed out (no answer within %s)", timeout)
	case errors.Is(err, syscall.ECONNREFUSED):
		return "connection refused"
	case errors.Is(err, syscall.ECONNRESET):
		return "connection reset"
	case errors.Is(err, syscall.EHOSTUNREACH), errors.Is(err, syscall.ENETUNREACH):
		return "host unreachable"
	case errors.As(err, &certErr):
		return "TLS certificate verification failed: " + withoutAddresses(certErr.Err.Error(), "invalid certificate")
	case errors.As(err, &alert):
		return "TLS handshake failed: " + strings.TrimPrefix(alert.Error(), "tls: ")
	case errors.As(err, &record):
		return "TLS handshake failed: the endpoint did not answer in TLS"
	case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF):
		return "connection closed without a response"
	case errors.As(err, &opErr):
		// Its text is "<op> <net> <addresses>: <cause>": keep the operation only.
		return "connection failed (" + opErr.Op + ")"
	case errors.As(err, &urlErr):
		// "Post \"<url>\": <cause>": the cause, an HTTP-level one here (a malformed
		// response, a protocol error), not the URL.
		return withoutAddresses(urlErr.Err.Error(), "request failed")
	}
	return withoutAddresses(err.Error(), "request failed")
}

// withoutAddresses returns text, at most 200 bytes of it, or instead if any word of it
// is an IP address (with or without a port).
func withoutAddresses(text, instead string) string {
	for _, w := range strings.FieldsFunc(text, func(r rune) bool {
		return r == ' ' || r == ',' || r == '"' || r == '(' || r == ')' || r == '\''
	}) {
		for _, c := range []string{w, strings.TrimRight(w, ".:;"), strings.Trim(w, "[]:.;")} {
			if _, err := netip.ParseAddr(c); err == nil {
				return instead
			}
			if _, err := netip.ParseAddrPort(c); err == nil {
				return instead
			}
		}
	}
	if len(text) > 200 {
		text = strings.ToValidUTF8(text[:200], "") + "…"
	}
	return text
}

type delivererMetrics struct {
	outcomes *prometheus.CounterVec
	disabled *prometheus.CounterVec
	deferred prometheus.Counter
	probes   prometheus.Counter
	duration prometheus.Histogram
}

func newDelivererMetrics(reg prometheus.Registerer) *delivererMetrics {
	m := &delivererMetrics{
		outcomes: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "billing_webhook_attempts_total", Help: "Webhook delivery attempts by outcome (delivered, failed, gave_up, gone).",
		}, []string{"outcome"}),
		disabled: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "billing_webhook_endpoints_disabled_total", Help: "Endpoints disabled by the deliverer, by reason (gone: answered 410; failing: every delivery failed for the disable period).",
		}, []string{"reason"}),
		deferred: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "billing_webhook_deferred_total", Help: "Tasks put back without an attempt: their endpoint failing (parked), or holding as many as it may.",
		}),
		probes: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "billing_webhook_probes_total", Help: "Probes of endpoints whose circuit is open (a failing endpoint's tasks parked).",
		}),
		duration: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "billing_webhook_attempt_duration_seconds", Help: "Time from sending a webhook to its answer or failure.",
			Buckets: prometheus.ExponentialBuckets(0.005, 2, 13),
		}),
	}
	// Every label from zero, so that rates and alerts see the first one.
	for _, o := range []string{"delivered", "failed", "gave_up", "gone"} {
		m.outcomes.WithLabelValues(o)
	}
	for _, r := range []string{"gone", "failing"} {
		m.disabled.WithLabelValues(r)
	}
	reg.MustRegister(m.outcomes, m.disabled, m.deferred, m.probes, m.duration)
	return m
}

// endpointTTL is how long a delivery may use an endpoint read by another: a rotation, an
// edit or a deletion takes effect within it.
const endpointTTL = time.Second

// endpointCache keeps endpoints read for deliveries for endpointTTL, so that a burst of
// deliveries to one endpoint does not read it from the store for each.
type endpointCache struct {
	mu      sync.Mutex
	entries map[string]cachedEndpoint
}

type cachedEndpoint struct {
	e    Endpoint
	read time.Time
}

func (c *endpointCache) get(ctx context.Context, store Store, id string, now time.Time) (Endpoint, error) {
	c.mu.Lock()
	hit, ok := c.entries[id]
	c.mu.Unlock()
	if ok && now.Sub(hit.read) < endpointTTL {
		return hit.e, nil
	}
	e, err := store.Endpoint(ctx, id)
	if err != nil {
		return Endpoint{}, err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.entries == nil || len(c.entries) > 10_000 {
		c.entries = map[string]cachedEndpoint{}
	}
	c.entries[id] = cachedEndpoint{e: e, read: now}
	return e, nil
}

func (c *endpointCache) forget(id string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	delete(c.entries, id)
}

package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/billing/billing/client"
)

// order is one charge the merchant submits, and what became of it.
type order struct {
	index   int
	key     string
	amount  int64
	method  string
	capture bool
	id      string // from the 202
}

func (o *order) body() []byte {
	return fmt.Appendf(nil, `{"amount": %d, "currency": "usd", "payment_method": %q, "capture": %t}`, o.amount, o.method, o.capture)
}

func (o *order) params() client.ChargeParams {
	return client.ChargeParams{Amount: o.amount, Currency: "usd", PaymentMethod: o.method, Capture: &o.capture}
}

// settledStatus is the status the order's charge settles in.
func (o *order) settledStatus() string {
	switch {
	case o.method == declinedMethod:
		return "failed"
	case !o.capture:
		return "requires_capture"
	}
	return "succeeded"
}

// chargeObject is the charge object of docs/api.md, as the test reads it.
type chargeObject struct {
	ID             string    `json:"id"`
	Object         string    `json:"object"`
	Amount         int64     `json:"amount"`
	Currency       string    `json:"currency"`
	PaymentMethod  string    `json:"payment_method"`
	Capture        bool      `json:"capture"`
	Status         string    `json:"status"`
	AmountCaptured int64     `json:"amount_captured"`
	AmountRefunded int64     `json:"amount_refunded"`
	FailureCode    *string   `json:"failure_code"`
	CreatedAt      time.Time `json:"created_at"`
	UpdatedAt      time.Time `json:"updated_at"`
}

// newOrders plans n charges: distinct amounts, every 10th declined, every 4th of the
// others authorized only (capture false).
func newOrders(n int) []*order {
	run := time.Now().UnixNano()
	orders := make([]*order, n)
	for i := range orders {
		o := &order{index: i, key: fmt.Sprintf("e2e-%d-%04d", run, i), amount: int64(1000 + i), method: "pm_card_visa", capture: true}
		switch {
		case i%10 == 9:
			o.method = declinedMethod
		case i%4 == 0:
			o.capture = false
		}
		orders[i] = o
	}
	return orders
}

// load submits orders with concurrent clients, as merchants would: a transport error or
// a 409, 429 or 5xx is retried with the same idempotency key until it is a 202.
type load struct {
	accepted atomic.Int64
	retried  atomic.Int64 // requests repeated after a transport error or a retryable status
	replayed atomic.Int64 // 202s with Idempotent-Replayed
	retryWhy sync.Map     // reason → *atomic.Int64
	marks    map[int64]chan struct{}
	done     chan struct{}
	start    time.Time
	end      time.Time // the last 202
	mu       sync.Mutex
	errs     []error
	// latencies are those of the requests answered 202, for acceptedPercentile.
	latencies []time.Duration
}

// acceptedPercentile is the p-th percentile of the latencies of the requests answered 202.
func (l *load) acceptedPercentile(p float64) time.Duration {
	l.mu.Lock()
	defer l.mu.Unlock()
	if len(l.latencies) == 0 {
		return 0
	}
	sorted := slices.Clone(l.latencies)
	slices.Sort(sorted)
	return sorted[min(len(sorted)-1, int(float64(len(sorted))*p/100))]
}

// submit starts submitting orders with clients concurrent clients and returns at once;
// load.done closes when all are accepted or have failed. marks are counts of accepted
// charges whose channel (load.reached) closes when that many are accepted.
func (s *system) submit(ctx context.Context, orders []*order, clients int, marks ...int64) *load {
	l := &load{marks: map[int64]chan struct{}{}, done: make(chan struct{}), start: time.Now()}
	for _, m := range marks {
		l.marks[m] = make(chan struct{})
	}
	next := make(chan *order)
	var wg sync.WaitGroup
	for range clients {
		wg.Go(func() {
			for o := range next {
				if err := s.create(ctx, l, o); err != nil {
					l.fail(err)
					continue
				}
				n := l.accepted.Add(1)
				if ch, ok := l.marks[n]; ok {
					close(ch)
				}
			}
		})
	}
	go func() {
		for _, o := range orders {
			next <- o
		}
		close(next)
		wg.Wait()
		l.end = time.Now()
		close(l.done)
	}()
	return l
}

// finish waits until every order is accepted, fails the test if any could not be, logs
// how it went and returns how long after the start the wait ended.
func (l *load) finish(t *testing.T) time.Duration {
	t.Helper()
	<-l.done
	require.Empty(t, l.errors(), "submitting charges")
	n := l.accepted.Load()
	t.Logf("accepted %d charges in %s: %.0f/s (%d requests retried: %s; %d replayed 202s)",
		n, l.end.Sub(l.start).Round(time.Millisecond), float64(n)/l.end.Sub(l.start).Seconds(),
		l.retried.Load(), l.retryReasons(), l.replayed.Load())
	return time.Since(l.start)
}

// reached returns a channel closed once mark charges are accepted or the load is over.
func (l *load) reached(mark int64) <-chan struct{} {
	ch := make(chan struct{})
	go func() {
		select {
		case <-l.marks[mark]:
		case <-l.done:
		}
		close(ch)
	}()
	return ch
}

func (l *load) fail(err error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.errs = append(l.errs, err)
}

func (l *load) errors() []error {
	l.mu.Lock()
	defer l.mu.Unlock()
	return slices.Clone(l.errs)
}

func (l *load) countRetry(why string) {
	l.retried.Add(1)
	n, _ := l.retryWhy.LoadOrStore(why, new(atomic.Int64))
	n.(*atomic.Int64).Add(1)
}

func (l *load) retryReasons() string {
	var parts []string
	l.retryWhy.Range(func(k, v any) bool {
		parts = append(parts, fmt.Sprintf("%s=%d", k, v.(*atomic.Int64).Load()))
		return true
	})
	slices.Sort(parts)
	return strings.Join(parts, " ")
}

// create posts o until it is accepted and records its charge id. Each call is sent once
// (the client's retries off), so that every retry is counted here with its reason.
func (s *system) create(ctx context.Context, l *load, o *order) error {
	backoff := 20 * time.Millisecond
	for {
		api, err := s.api()
		if err != nil {
			return err
		}
		begin := time.Now()
		var resp client.Response
		c, err := api.CreateCharge(ctx, o.params(), client.WithIdempotencyKey(o.key), client.WithResponse(&resp))
		took := time.Since(begin)
		var apiErr *client.Error
		var why string
		switch {
		case ctx.Err() != nil:
			return fmt.Errorf("charge %s never accepted: %w (last: %d %v)", o.key, ctx.Err(), resp.StatusCode, err)
		case err == nil:
			if resp.StatusCode != http.StatusAccepted || !strings.HasPrefix(c.ID, "ch_") {
				return fmt.Errorf("charge %s: %d with charge %+v", o.key, resp.StatusCode, c)
			}
			if c.Status != client.StatusPending || c.Amount != o.amount || c.PaymentMethod != o.method {
				return fmt.Errorf("charge %s: 202 with unexpected charge %+v", o.key, c)
			}
			if loc := resp.Header.Get("Location"); loc != "/v1/charges/"+c.ID {
				return fmt.Errorf("charge %s: 202 with Location %q", o.key, loc)
			}
			if resp.Replayed {
				l.replayed.Add(1)
			}
			l.mu.Lock()
			l.latencies = append(l.latencies, took)
			l.mu.Unlock()
			o.id = c.ID
			return nil
		case errors.As(err, &apiErr) && (apiErr.Status == http.StatusConflict || apiErr.Status == http.StatusTooManyRequests || apiErr.Status >= 500):
			why = fmt.Sprint(apiErr.Status)
		case apiErr != nil, resp.StatusCode != 0: // refused, or an answer that is no charge
			return fmt.Errorf("charge %s: %d: %w", o.key, resp.StatusCode, err)
		default:
			why = "transport"
		}
		l.countRetry(why)
		select {
		case <-ctx.Done():
		case <-time.After(backoff):
		}
		backoff = min(2*backoff, 500*time.Millisecond)
	}
}

// errStalled ends the wait for charges to settle when none has settled for a while: the
// system is stuck, and waiting out the whole deadline would only hide where.
var errStalled = errors.New("no charge settled for a while")

// settle waits with GET /v1/charges/{id}?wait=10s until every order's charge has left
// pending, using clients concurrent clients, and returns the charges by id. It gives up
// when ctx ends or when no charge has settled for stall; the charges still pending then
// are returned as they were last seen, with an error each.
func (s *system) settle(ctx context.Context, orders []*order, clients int, stall time.Duration) (map[string]chargeObject, []error) {
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	var (
		mu       sync.Mutex
		charges  = make(map[string]chargeObject, len(orders))
		errs     []error
		wg       sync.WaitGroup
		next     = make(chan *order)
		progress atomic.Int64 // unix nanoseconds of the last settled charge
		finished = make(chan struct{})
	)
	progress.Store(time.Now().UnixNano())
	go func() {
		tick := time.NewTicker(time.Second)
		defer tick.Stop()
		for {
			select {
			case <-finished:
				return
			case <-tick.C:
				if idle := time.Since(time.Unix(0, progress.Load())); idle > stall {
					cancel(fmt.Errorf("%w (%s)", errStalled, idle.Round(time.Second)))
					return
				}
			}
		}
	}()
	for range clients {
		wg.Go(func() {
			for o := range next {
				c, err := s.awaitTerminal(ctx, o.id)
				if err == nil {
					progress.Store(time.Now().UnixNano())
				}
				mu.Lock()
				charges[o.id] = c
				if err != nil {
					errs = append(errs, err)
				}
				mu.Unlock()
			}
		})
	}
	for _, o := range orders {
		next <- o
	}
	close(next)
	wg.Wait()
	close(finished)
	return charges, errs
}

// awaitTerminal waits with GET /v1/charges/{id}?wait= until the charge is no longer
// pending. Like a merchant, it asks again after a transport error or a 503.
func (s *system) awaitTerminal(ctx context.Context, id string) (chargeObject, error) {
	var (
		c    chargeObject
		last string
	)
	for {
		api, err := s.api()
		if err != nil {
			return c, err
		}
		var resp client.Response
		ch, err := api.WaitCharge(ctx, id, 10*time.Second, client.WithResponse(&resp))
		if err != nil {
			last = err.Error()
		}
		var apiErr *client.Error
		switch {
		case ctx.Err() != nil:
			return c, fmt.Errorf("charge %s: %w; last seen %q, last answer: %s", id, context.Cause(ctx), c.Status, last)
		case errors.As(err, &apiErr) && apiErr.Status == http.StatusServiceUnavailable:
			select {
			case <-ctx.Done():
			case <-time.After(100 * time.Millisecond):
			}
			continue
		case apiErr != nil, err != nil && resp.StatusCode != 0: // refused, or an answer that is no charge
			return c, fmt.Errorf("GET charge %s: %w", id, err)
		case err != nil: // transport
			continue
		}
		last = fmt.Sprintf("%d, status %s", resp.StatusCode, ch.Status)
		c = chargeFrom(ch)
		if c.Status != "pending" {
			return c, nil
		}
	}
}

// chargeFrom is the charge as the test reads it.
func chargeFrom(ch *client.Charge) chargeObject {
	c := chargeObject{
		ID: ch.ID, Amount: ch.Amount, Currency: ch.Currency, PaymentMethod: ch.PaymentMethod,
		Capture: ch.Capture, Status: string(ch.Status), AmountCaptured: ch.AmountCaptured,
		AmountRefunded: ch.AmountRefunded, CreatedAt: ch.CreatedAt, UpdatedAt: ch.UpdatedAt,
	}
	if ch.FailureCode != "" {
		c.FailureCode = &ch.FailureCode
	}
	return c
}

// listAll pages through GET /v1/charges?limit=100 and returns every charge listed, in
// order.
func (s *system) listAll(ctx context.Context) ([]chargeObject, error) {
	return listPages(ctx, s, "/v1/charges", func(c chargeObject) string { return c.ID })
}

// listPages pages through the list at path 100 at a time and returns every object
// listed, in order; id names an object for starting_after.
func listPages[T any](ctx context.Context, s *system, path string, id func(T) string) ([]T, error) {
	var all []T
	after := ""
	for page := 0; ; page++ {
		if page > 1000 {
			return all, errors.New("listing never ends")
		}
		url := path + "?limit=100"
		if after != "" {
			url += "&starting_after=" + after
		}
		status, body, _, err := s.do(ctx, http.MethodGet, url, nil)
		if err != nil {
			return all, err
		}
		if status != http.StatusOK {
			return all, fmt.Errorf("GET %s: %d %s", url, status, body)
		}
		var l struct {
			Object  string `json:"object"`
			HasMore bool   `json:"has_more"`
			Data    []T    `json:"data"`
		}
		if err := json.Unmarshal(body, &l); err != nil {
			return all, fmt.Errorf("GET %s: %w", url, err)
		}
		if l.Object != "list" || len(l.Data) > 100 {
			return all, fmt.Errorf("GET %s: not a list of at most 100: %.300s", url, body)
		}
		all = append(all, l.Data...)
		if !l.HasMore {
			return all, nil
		}
		if len(l.Data) == 0 {
			return all, fmt.Errorf("GET %s: has_more with an empty page", url)
		}
		after = id(l.Data[len(l.Data)-1])
	}
}

// apiURL picks the API of an ingest in rotation at random.
func (s *system) apiURL() string {
	s.rotationMu.Lock()
	defer s.rotationMu.Unlock()
	in := make([]string, 0, len(s.apiURLs))
	for i, u := range s.apiURLs {
		if !s.outOfRotation[i] {
			in = append(in, u)
		}
	}
	return in[rand.IntN(len(in))]
}

// rotate takes ingest i out of the rotation, or puts it back.
func (s *system) rotate(i int, in bool) {
	s.rotationMu.Lock()
	defer s.rotationMu.Unlock()
	if s.outOfRotation == nil {
		s.outOfRotation = map[int]bool{}
	}
	s.outOfRotation[i] = !in
}

// api is the merchant's client of an ingest in rotation (apiURL) that sends each call
// once: its callers count and pace their retries themselves.
func (s *system) api() (*client.Client, error) {
	return client.New(s.apiURL(), s.token, &client.Config{HTTPClient: s.client, MaxAttempts: 1})
}

// do sends a request with the merchant's token; headers are name, value pairs.
func (s *system) do(ctx context.Context, method, path string, body []byte, headers ...string) (int, []byte, http.Header, error) {
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, method, s.apiURL()+path, rd)
	if err != nil {
		return 0, nil, nil, err
	}
	req.Header.Set("Authorization", "Bearer "+s.token)
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	for i := 0; i+1 < len(headers); i += 2 {
		req.Header.Set(headers[i], headers[i+1])
	}
	resp, err := s.client.Do(req)
	if err != nil {
		return 0, nil, nil, err
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(resp.Body)
	if err != nil {
		return resp.StatusCode, data, resp.Header, err
	}
	return resp.StatusCode, data, resp.Header, nil
}

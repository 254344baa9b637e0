package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"time"
)

// requestTimeout bounds one POST of the load generator.
const requestTimeout = 30 * time.Second

// loadGen POSTs charges (or, with body, other requests) to one URL from a fixed number of workers, each on its own
// keep-alive connection, as fast as the answers come back (a closed loop). Every request
// carries a new Idempotency-Key.
type loadGen struct {
	url         string
	token       string
	concurrency int
	client      *http.Client
	// keyPrefix makes the keys of this generator differ from any other's.
	keyPrefix string
	seq       atomic.Int64
	// body is the JSON of request n (from 1); nil sends charges.
	body func(n int64) string
	// keepIDs makes post remember the id of each object a 202 returns (see ids).
	keepIDs bool
	mu      sync.Mutex
	kept    []string
}

// ids returns the ids of the objects accepted so far, when keepIDs is set.
func (g *loadGen) ids() []string {
	g.mu.Lock()
	defer g.mu.Unlock()
	return slices.Clone(g.kept)
}

func newLoadGen(url, token string, concurrency int, keyPrefix string) *loadGen {
	transport := &http.Transport{
		MaxIdleConns:        concurrency,
		MaxIdleConnsPerHost: concurrency,
		MaxConnsPerHost:     concurrency,
		IdleConnTimeout:     time.Minute,
		DisableCompression:  true,
	}
	return &loadGen{
		url: url, token: token, concurrency: concurrency, keyPrefix: keyPrefix,
		client: &http.Client{Transport: transport, Timeout: requestTimeout},
	}
}

// close releases the idle connections.
func (g *loadGen) close() { g.client.CloseIdleConnections() }

// loadResult is what a run of the load generator saw.
type loadResult struct {
	elapsed   time.Duration
	accepted  int         // 202 answers
	statuses  map[int]int // every other status
	errors    int         // transport errors and timeouts
	lastError string      // one of them, for the report
	latencies latencies   // of the 202 answers
}

func (r loadResult) rate() float64 { return perSecond(r.accepted, r.elapsed) }

// merge adds o's counts and latencies to r's.
func (r *loadResult) merge(o loadResult) {
	r.accepted += o.accepted
	r.errors += o.errors
	if o.lastError != "" {
		r.lastError = o.lastError
	}
	for s, n := range o.statuses {
		if r.statuses == nil {
			r.statuses = map[int]int{}
		}
		r.statuses[s] += n
	}
	r.latencies = append(r.latencies, o.latencies...)
}

// failures describes the answers that were not 202, or is empty.
func (r loadResult) failures() string {
	var b bytes.Buffer
	for s, n := range r.statuses {
		fmt.Fprintf(&b, " %d×%d", n, s)
	}
	if r.errors > 0 {
		fmt.Fprintf(&b, " %d×error (%s)", r.errors, r.lastError)
	}
	return b.String()
}

// runFor sends for warmup, then measures for d: only requests that both start and end
// inside the measured window count.
func (g *loadGen) runFor(ctx context.Context, warmup, d time.Duration) loadResult {
	begin := time.Now()
	from, until := begin.Add(warmup), begin.Add(warmup+d)
	res := g.run(ctx, func() bool { return time.Now().Before(until) }, func(start, end time.Time) bool {
		return !start.Before(from) && !end.After(until)
	})
	res.elapsed = d
	return res
}

// runCount sends n requests and measures from the first start to the last answer.
func (g *loadGen) runCount(ctx context.Context, n int) loadResult {
	var sent atomic.Int64
	start := time.Now()
	res := g.run(ctx, func() bool { return sent.Add(1) <= int64(n) }, func(time.Time, time.Time) bool { return true })
	res.elapsed = time.Since(start)
	return res
}

// run has every worker send while more() says so and ctx lasts, recording the requests
// that count() keeps.
func (g *loadGen) run(ctx context.Context, more func() bool, count func(start, end time.Time) bool) loadResult {
	results := make([]loadResult, g.concurrency)
	var wg sync.WaitGroup
	for i := range results {
		wg.Go(func() {
			r := &results[i]
			for ctx.Err() == nil && more() {
				start := time.Now()
				status, err := g.post(ctx)
				end := time.Now()
				if !count(start, end) {
					continue
				}
				switch {
				case err != nil:
					r.errors++
					r.lastError = err.Error()
				case status == http.StatusAccepted:
					r.accepted++
					r.latencies = append(r.latencies, end.Sub(start))
				default:
					if r.statuses == nil {
						r.statuses = map[int]int{}
					}
					r.statuses[status]++
				}
			}
		})
	}
	wg.Wait()
	var total loadResult
	for _, r := range results {
		total.merge(r)
	}
	total.latencies.sort()
	return total
}

// chargeBody is charge n: an amount that varies, an approved card.
func chargeBody(n int64) string {
	return `{"amount":` + strconv.FormatInt(100+n%99_900, 10) +
		`,"currency":"usd","payment_method":"pm_card_visa","description":"bench charge","metadata":{"order_id":"` +
		strconv.FormatInt(n, 10) + `"}}`
}

// post sends one request with a new key.
func (g *loadGen) post(ctx context.Context) (int, error) {
	n := g.seq.Add(1)
	build := g.body
	if build == nil {
		build = chargeBody
	}
	body := build(n)
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, g.url, bytes.NewBufferString(body))
	if err != nil {
		return 0, err
	}
	req.Header.Set("Authorization", "Bearer "+g.token)
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Idempotency-Key", g.keyPrefix+strconv.FormatInt(n, 10))
	resp, err := g.client.Do(req)
	if err != nil {
		return 0, err
	}
	// Reading to the end lets the connection be reused.
	defer resp.Body.Close()
	if !g.keepIDs || resp.StatusCode != http.StatusAccepted {
		_, err = io.Copy(io.Discard, resp.Body)
		return resp.StatusCode, err
	}
	var obj struct {
		ID string `json:"id"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&obj); err != nil {
		return resp.StatusCode, err
	}
	g.mu.Lock()
	g.kept = append(g.kept, obj.ID)
	g.mu.Unlock()
	return resp.StatusCode, nil
}

func perSecond(n int, d time.Duration) float64 {
	if d <= 0 {
		return 0
	}
	return float64(n) / d.Seconds()
}

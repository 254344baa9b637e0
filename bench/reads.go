package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"

	"github.com/billing/billing/internal/dashboard"
	"github.com/billing/billing/internal/store"
)

// readScopes are the scopes of the tokens of the reads.
const readScopes = "charges:read events:read webhooks:manage ops:read"

// readSpec is one read of the API whose latency is timed, for one merchant.
type readSpec struct {
	name string
	// path is the path and query of request n (from 0).
	path func(m *merchantSample, n int) string
	// list says the answer is a list, whose data must not be empty. A path under
	// /dashboard is a page of the dashboard, signed in by its session cookie.
	list bool
}

// readSpecs are the reads timed on the empty store and after growth.
var readSpecs = []readSpec{
	{"GET /v1/charges/{id}", func(m *merchantSample, n int) string {
		return "/v1/charges/" + m.chargeIDs[n%len(m.chargeIDs)]
	}, false},
	{"GET /v1/charges?limit=10", func(*merchantSample, int) string { return "/v1/charges?limit=10" }, true},
	{"  … starting_after the middle one", func(m *merchantSample, _ int) string {
		return "/v1/charges?limit=10&starting_after=" + m.middle
	}, true},
	{"  … status=failed", func(*merchantSample, int) string { return "/v1/charges?limit=10&status=failed" }, true},
	{"GET /v1/events?limit=10", func(*merchantSample, int) string { return "/v1/events?limit=10" }, true},
	{"GET /v1/refunds?charge={id}", func(m *merchantSample, n int) string {
		return "/v1/refunds?charge=" + m.refunded[n%len(m.refunded)]
	}, true},
	{"GET …/webhook_endpoints/{id}/deliveries", func(m *merchantSample, _ int) string {
		return "/v1/webhook_endpoints/" + m.endpoint + "/deliveries"
	}, true},
	{"GET /v1/balance", func(*merchantSample, int) string { return "/v1/balance" }, false},
	// The dashboard's pages, which make the same reads, and render them.
	{"page /dashboard/charges", func(*merchantSample, int) string { return "/dashboard/charges" }, false},
	{"  … status=failed", func(*merchantSample, int) string { return "/dashboard/charges?status=failed" }, false},
	{"  … customer=", func(_ *merchantSample, n int) string { return "/dashboard/charges?customer=" + benchCustomer(n) }, false},
	{"page /dashboard/charges/{id}", func(m *merchantSample, n int) string {
		return "/dashboard/charges/" + m.refunded[n%len(m.refunded)]
	}, false},
	{"page /dashboard/balance", func(*merchantSample, int) string { return "/dashboard/balance" }, false},
	{"page /dashboard/events", func(*merchantSample, int) string { return "/dashboard/events" }, false},
	{"page /dashboard/webhooks/{id}", func(m *merchantSample, _ int) string {
		return "/dashboard/webhooks/" + m.endpoint
	}, false},
	{"page /dashboard/ops", func(*merchantSample, int) string { return "/dashboard/ops" }, false},
}

// readResult is the latencies of one read.
type readResult struct {
	latencies latencies // of the 200 answers
	// others counts the answers other than 200, and errors; lastOther describes one.
	others    int
	lastOther string
}

// cell is "p50 / p99" in milliseconds, with the number of requests when fewer than
// asked, and the failures if any.
func (r readResult) cell(asked int) string {
	s := fmt.Sprintf("%s / %s", ms(r.latencies.percentile(50)), ms(r.latencies.percentile(99)))
	if len(r.latencies) < asked {
		s += fmt.Sprintf(" (n=%d)", len(r.latencies))
	}
	if r.others > 0 {
		s += fmt.Sprintf(" (%d failed)", r.others)
	}
	return s
}

// merchantReads are the reads timed for one merchant.
type merchantReads struct {
	merchant string
	charges  int
	results  []readResult // in the order of readSpecs
	elapsed  time.Duration
}

// readTarget is a merchant whose reads are timed, and the API that serves it.
type readTarget struct {
	apiURL, token string
	sample        *merchantSample
}

// measureReads times each read of readSpecs for every target: one request per target not
// counted (its answer checked: 200, and a list not empty), then n rounds of one request
// per target, or as many rounds as budget allows. A round goes through the targets in
// turn, starting with a different one each time, so that whatever disturbs the machine
// falls on all of them alike: their figures compare within one run. Each target has its
// own keep-alive connection.
func measureReads(ctx context.Context, targets []readTarget, n int, budget time.Duration) ([]merchantReads, error) {
	out := make([]merchantReads, len(targets))
	gets := make([]func(path string) (int, []byte, error), len(targets))
	for i, tg := range targets {
		m := tg.sample
		out[i] = merchantReads{merchant: m.name, charges: m.charges}
		if len(m.chargeIDs) == 0 || len(m.refunded) == 0 || m.middle == "" || m.endpoint == "" {
			return out, fmt.Errorf("merchant %s: the seeding left no ids to read (charges %d, refunded %d, endpoint %q)",
				m.name, len(m.chargeIDs), len(m.refunded), m.endpoint)
		}
		client := &http.Client{
			Transport: &http.Transport{MaxIdleConnsPerHost: 1, MaxConnsPerHost: 1, DisableCompression: true},
			Timeout:   requestTimeout,
		}
		defer client.CloseIdleConnections()
		gets[i] = func(path string) (int, []byte, error) {
			req, err := http.NewRequestWithContext(ctx, http.MethodGet, tg.apiURL+path, nil)
			if err != nil {
				return 0, nil, err
			}
			if strings.HasPrefix(path, dashboard.Prefix+"/") {
				req.AddCookie(&http.Cookie{Name: dashboard.CookieName, Value: tg.token})
			} else {
				req.Header.Set("Authorization", "Bearer "+tg.token)
			}
			resp, err := client.Do(req)
			if err != nil {
				return 0, nil, err
			}
			defer resp.Body.Close()
			body, err := io.ReadAll(resp.Body)
			return resp.StatusCode, body, err
		}
	}
	start := time.Now()
	for _, spec := range readSpecs {
		for i, tg := range targets {
			status, body, err := gets[i](spec.path(tg.sample, 0))
			if err == nil {
				err = checkRead(status, body, spec.list)
			}
			if err != nil {
				return out, fmt.Errorf("merchant %s: %s (%s): %w", tg.sample.name, spec.name, spec.path(tg.sample, 0), err)
			}
		}
		rs := make([]readResult, len(targets))
		deadline := time.Now().Add(budget)
		for round := 0; round < n && time.Now().Before(deadline) && ctx.Err() == nil; round++ {
			for k := range targets {
				i := (round + k) % len(targets)
				begin := time.Now()
				status, body, err := gets[i](spec.path(targets[i].sample, round))
				took := time.Since(begin)
				r := &rs[i]
				switch {
				case err != nil:
					r.others++
					r.lastOther = err.Error()
				case status != http.StatusOK:
					r.others++
					r.lastOther = fmt.Sprintf("%d %s", status, bytes.TrimSpace(body))
				default:
					r.latencies = append(r.latencies, took)
				}
			}
		}
		if err := ctx.Err(); err != nil {
			return out, err
		}
		for i := range rs {
			rs[i].latencies.sort()
			out[i].results = append(out[i].results, rs[i])
		}
	}
	for i := range out {
		out[i].elapsed = time.Since(start)
	}
	return out, nil
}

// checkRead checks the first answer of a read: 200 and, for a list, some data.
func checkRead(status int, body []byte, list bool) error {
	if status != http.StatusOK {
		return fmt.Errorf("answered %d: %s", status, bytes.TrimSpace(body))
	}
	if !list {
		return nil
	}
	var l struct {
		Data []json.RawMessage `json:"data"`
	}
	if err := json.Unmarshal(body, &l); err != nil {
		return fmt.Errorf("decoding the list: %w", err)
	}
	if len(l.Data) == 0 {
		return errors.New("the list is empty: the seeded records are not what the API reads")
	}
	return nil
}

// seedFresh seeds a fresh merchant of freshCharges charges, with an endpoint and
// smallDeliveries deliveries, into the store cfg locates, and returns what its reads need.
func seedFresh(ctx context.Context, st *stack, cfg store.Config) (*merchantSample, error) {
	sd, err := newSeeder(ctx, st, cfg, map[string]int{freshMerchant: freshCharges})
	if err != nil {
		return nil, err
	}
	m := sd.samples[freshMerchant]
	err = sd.seed(ctx, merchantPlan(freshMerchant, freshCharges), freshCharges)
	if err == nil {
		err = sd.endpoint(ctx, m, smallDeliveries)
	}
	if err = errors.Join(err, sd.close(ctx)); err != nil {
		return nil, fmt.Errorf("seeding merchant %s: %w", freshMerchant, err)
	}
	return m, nil
}

// measureEmptyReads seeds a fresh merchant into the stack's store (nothing else in it
// yet), and times its reads through the running ingest.
func measureEmptyReads(ctx context.Context, opts config, st *stack) (merchantReads, error) {
	m, err := seedFresh(ctx, st, st.storeConfig())
	if err != nil {
		return merchantReads{}, err
	}
	token, err := st.mintToken(ctx, freshMerchant, readScopes)
	if err != nil {
		return merchantReads{}, err
	}
	reads, err := measureReads(ctx, []readTarget{{st.apiURL(), token, m}}, opts.reads, opts.readBudget)
	if err != nil {
		return merchantReads{}, err
	}
	return reads[0], nil
}

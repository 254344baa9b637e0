package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/billing/billing/bench/internal/pgtemp"
	"github.com/billing/billing/internal/auth"
	"github.com/billing/billing/internal/charge"
	"github.com/billing/billing/internal/processor"
)

// TestPeerAcceptsReplaysAndSettles runs the peer against a real PostgreSQL: 20 charges
// are accepted, a repeat is replayed, a reused key is refused, and every charge settles
// with the rows our worker would write. It is skipped where PostgreSQL cannot be had.
func TestPeerAcceptsReplaysAndSettles(t *testing.T) {
	if testing.Short() {
		t.Skip("starts PostgreSQL")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	pg := startPostgres(ctx, t, true)
	for range 2 { // the second run finds nothing to do
		if _, err := migrateDSN(ctx, pg.DSN()); err != nil {
			t.Fatal(err)
		}
	}
	key, token := devToken(t, "charges:write")
	readOnly, err := key.Sign(issuer, audience, merchant, []string{"charges:read"}, time.Hour, time.Now())
	if err != nil {
		t.Fatal(err)
	}

	logger := slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelWarn}))
	p, err := newPeer(ctx, config{dsn: pg.DSN(), jwks: key.JWKSPath(), issuer: issuer, audience: audience, workers: 10}, logger)
	if err != nil {
		t.Fatal(err)
	}
	if err := p.start(ctx); err != nil {
		p.close()
		t.Fatal(err)
	}
	srv := httptest.NewServer(p.handler())
	t.Cleanup(func() {
		srv.Close()
		stopCtx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		if err := p.stop(stopCtx); err != nil {
			t.Error(err)
		}
	})

	post := func(token, key, body string) (*http.Response, []byte) {
		t.Helper()
		return postCharge(ctx, t, srv.URL, token, key, body)
	}

	const n = 20
	first := map[string][]byte{}
	for i := range n {
		k := fmt.Sprintf("peer-test-%d", i)
		resp, data := post(token, k, body(i))
		if resp.StatusCode != http.StatusAccepted {
			t.Fatalf("charge %d: status %d, want 202: %s", i, resp.StatusCode, data)
		}
		var c charge.Charge
		if err := json.Unmarshal(data, &c); err != nil {
			t.Fatalf("charge %d: %v: %s", i, err, data)
		}
		if !charge.ValidID(charge.PrefixCharge, c.ID) || c.Status != charge.StatusPending || c.Amount != int64(100+i) {
			t.Fatalf("charge %d: unexpected body %s", i, data)
		}
		first[k] = data
	}

	// The same request again: the same body, marked replayed, and no second job.
	resp, data := post(token, "peer-test-3", body(3))
	if resp.StatusCode != http.StatusAccepted || !bytes.Equal(data, first["peer-test-3"]) || resp.Header.Get("Idempotent-Replayed") != "true" {
		t.Errorf("replay: status %d, Idempotent-Replayed %q, body %s; want 202, true, %s",
			resp.StatusCode, resp.Header.Get("Idempotent-Replayed"), data, first["peer-test-3"])
	}
	// Another request under a used key.
	if resp, data := post(token, "peer-test-3", body(4)); resp.StatusCode != http.StatusUnprocessableEntity {
		t.Errorf("reused key: status %d, want 422: %s", resp.StatusCode, data)
	}
	// What is refused before the transaction.
	for _, c := range []struct {
		name, token, key, body string
		status                 int
	}{
		{"no token", "", "peer-test-x", body(1), http.StatusUnauthorized},
		{"bad token", token + "x", "peer-test-x", body(1), http.StatusUnauthorized},
		{"no charges:write", readOnly, "peer-test-x", body(1), http.StatusForbidden},
		{"no key", token, "", body(1), http.StatusBadRequest},
		{"key too long", token, strings.Repeat("k", 256), body(1), http.StatusBadRequest},
		{"unknown field", token, "peer-test-x", `{"amount":100,"currency":"usd","payment_method":"pm_card_visa","tip":1}`, http.StatusBadRequest},
		{"invalid amount", token, "peer-test-x", `{"amount":0,"currency":"usd","payment_method":"pm_card_visa"}`, http.StatusBadRequest},
		{"trailing data", token, "peer-test-x", body(1) + `{}`, http.StatusBadRequest},
	} {
		if resp, data := post(c.token, c.key, c.body); resp.StatusCode != c.status {
			t.Errorf("%s: status %d, want %d: %s", c.name, resp.StatusCode, c.status, data)
		}
	}

	// Every charge settles.
	st := waitSettled(t, srv.URL, n)
	if st.Accepted != n || st.Settled != n {
		t.Fatalf("stats: accepted %d, settled %d; want %d and %d", st.Accepted, st.Settled, n, n)
	}

	// The rows our worker writes: each charge decided, one event each, two ledger entries
	// for each approved charge and none for the declined one; every job completed.
	pool, err := pgxpool.New(ctx, pg.DSN())
	if err != nil {
		t.Fatal(err)
	}
	defer pool.Close()
	for _, c := range []struct {
		query string
		want  int64
	}{
		{`SELECT count(*) FROM charges WHERE status = 'succeeded'`, n - 1},
		{`SELECT count(*) FROM charges WHERE status = 'failed' AND doc->>'failure_code' = 'card_declined'`, 1},
		{`SELECT count(*) FROM events WHERE type = 'charge.succeeded'`, n - 1},
		{`SELECT count(*) FROM events WHERE type = 'charge.failed'`, 1},
		{`SELECT count(*) FROM ledger_entries`, 2 * (n - 1)},
		{`SELECT coalesce(sum(amount), 0) FROM ledger_entries`, 0},
		{`SELECT count(*) FROM idempotency_keys`, n},
		{`SELECT count(*) FROM river_job WHERE kind = 'charge' AND state = 'completed'`, n},
	} {
		var got int64
		if err := pool.QueryRow(ctx, c.query).Scan(&got); err != nil {
			t.Fatalf("%s: %v", c.query, err)
		}
		if got != c.want {
			t.Errorf("%s = %d, want %d", c.query, got, c.want)
		}
	}
}

// TestPeerCommand runs the built command as the bench does: -migrate, an insert-only
// process (-workers 0) that accepts charges and settles none, stopped with SIGTERM, then
// one with workers that settles what the first left.
func TestPeerCommand(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the command and starts PostgreSQL")
	}
	goTool, err := exec.LookPath("go")
	if err != nil {
		t.Skip("no go command to build the peer with")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	pg := startPostgres(ctx, t, false)
	bin := filepath.Join(t.TempDir(), "peer")
	if out, err := exec.CommandContext(ctx, goTool, "build", "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	if out, err := exec.CommandContext(ctx, bin, "-migrate", "-dsn", pg.DSN()).CombinedOutput(); err != nil {
		t.Fatalf("peer -migrate: %v\n%s", err, out)
	}
	key, token := devToken(t, "charges:write")

	// run starts the peer with workers, waits until it serves, and returns its URL and
	// its stop: SIGTERM, and a clean exit expected.
	run := func(workers int) (string, func()) {
		t.Helper()
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		addr := ln.Addr().String()
		ln.Close()
		var out bytes.Buffer
		cmd := exec.Command(bin, "-addr", addr, "-dsn", pg.DSN(), "-jwks", key.JWKSPath(), "-workers", strconv.Itoa(workers))
		cmd.Stdout, cmd.Stderr = &out, &out
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		done := make(chan error, 1)
		go func() { done <- cmd.Wait() }()
		url := "http://" + addr
		for deadline := time.Now().Add(30 * time.Second); ; {
			resp, err := http.Get(url + "/stats")
			if err == nil {
				resp.Body.Close()
				break
			}
			select {
			case err := <-done:
				t.Fatalf("peer exited at start: %v\n%s", err, out.String())
			default:
			}
			if time.Now().After(deadline) {
				_ = cmd.Process.Kill()
				t.Fatalf("peer not serving after 30s: %v\n%s", err, out.String())
			}
			time.Sleep(20 * time.Millisecond)
		}
		return url, func() {
			t.Helper()
			if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
				t.Fatal(err)
			}
			select {
			case err := <-done:
				if err != nil {
					t.Fatalf("peer: %v\n%s", err, out.String())
				}
				t.Logf("peer -workers %d:\n%s", workers, out.String())
			case <-time.After(time.Minute):
				_ = cmd.Process.Kill()
				t.Fatalf("peer did not stop within a minute of SIGTERM\n%s", out.String())
			}
		}
	}

	const n = 5
	url, stop := run(0)
	for i := range n {
		if resp, data := postCharge(ctx, t, url, token, fmt.Sprintf("cmd-%d", i), body(i+1)); resp.StatusCode != http.StatusAccepted {
			t.Fatalf("charge %d: status %d: %s", i, resp.StatusCode, data)
		}
	}
	if st := stats(t, url); st.Accepted != n || st.Settled != 0 {
		t.Errorf("insert-only peer: accepted %d, settled %d; want %d and 0", st.Accepted, st.Settled, n)
	}
	stop()

	url, stop = run(4)
	defer stop()
	if st := waitSettled(t, url, n); st.Settled != n || st.Accepted != 0 {
		t.Errorf("working peer: accepted %d, settled %d; want 0 and %d", st.Accepted, st.Settled, n)
	}
}

const issuer, audience, merchant = "billing-dev", "billing-api", "acct_peer_test"

// startPostgres starts a throwaway server for the test, stopped at its end, or skips the
// test when PostgreSQL cannot be had here.
func startPostgres(ctx context.Context, t *testing.T, syncCommit bool) *pgtemp.Server {
	t.Helper()
	pg, err := pgtemp.Start(ctx, t.TempDir(), pgtemp.Options{SyncCommit: syncCommit})
	if errors.Is(err, pgtemp.ErrUnavailable) {
		t.Skip(err)
	}
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := pg.Stop(); err != nil {
			t.Error(err)
		}
	})
	return pg
}

// devToken makes a dev signing key, whose JWKS file the peer verifies with, and a token
// of merchant with scopes.
func devToken(t *testing.T, scopes ...string) (*auth.DevKey, string) {
	t.Helper()
	key, err := auth.LoadOrCreateDevKey(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	token, err := key.Sign(issuer, audience, merchant, scopes, time.Hour, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	return key, token
}

// body is the request body of the i-th test charge: declined for 0, approved otherwise.
func body(i int) string {
	method := "pm_card_visa"
	if i == 0 {
		method = processor.MethodDeclined
	}
	return fmt.Sprintf(`{"amount":%d,"currency":"usd","payment_method":%q,"metadata":{"order_id":"%d"}}`, 100+i, method, i)
}

// postCharge sends POST /v1/charges and returns the answer and its body.
func postCharge(ctx context.Context, t *testing.T, url, token, key, body string) (*http.Response, []byte) {
	t.Helper()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url+"/v1/charges", bytes.NewBufferString(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+token)
	req.Header.Set("Content-Type", "application/json")
	if key != "" {
		req.Header.Set("Idempotency-Key", key)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp, data
}

// peerStats is the body of GET /stats.
type peerStats struct {
	Accepted int64 `json:"accepted"`
	Settled  int64 `json:"settled"`
}

func stats(t *testing.T, url string) peerStats {
	t.Helper()
	resp, err := http.Get(url + "/stats")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var st peerStats
	if err := json.NewDecoder(resp.Body).Decode(&st); err != nil {
		t.Fatal(err)
	}
	return st
}

// waitSettled polls GET /stats until n charges are settled or a minute has passed, and
// returns the last stats.
func waitSettled(t *testing.T, url string, n int64) peerStats {
	t.Helper()
	deadline := time.Now().Add(time.Minute)
	for {
		st := stats(t, url)
		if st.Settled >= n || time.Now().After(deadline) {
			return st
		}
		time.Sleep(20 * time.Millisecond)
	}
}

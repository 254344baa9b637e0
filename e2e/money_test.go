package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"net/http"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// settledEvent is the event a charge's settlement writes, by the status it settles in.
var settledEvent = map[string]string{
	"succeeded": "charge.succeeded", "failed": "charge.failed", "requires_capture": "charge.authorized",
}

// operation is one capture, cancel or refund the merchant asks for, and its answer.
type operation struct {
	o      *order
	kind   string // "capture", "cancel" or "refund"
	amount int64  // the amount sent; 0 sends none
	key    string
	// mayBeRefused marks a request that can meet 400 amount_too_large (or, for a refund
	// accepted in the meantime, fail with it) depending on which of its racers goes first.
	mayBeRefused bool

	refundID string // from the 202 of a refund
	refused  string // the code of a 400
}

func (op *operation) request() (string, []byte) {
	amount := ""
	if op.amount > 0 {
		amount = fmt.Sprintf(`"amount": %d`, op.amount)
	}
	switch op.kind {
	case "capture":
		return "/v1/charges/" + op.o.id + "/capture", []byte("{" + amount + "}")
	case "cancel":
		return "/v1/charges/" + op.o.id + "/cancel", nil
	}
	if amount != "" {
		amount = ", " + amount
	}
	return "/v1/refunds", fmt.Appendf(nil, `{"charge": %q%s}`, op.o.id, amount)
}

// expectation is where a charge must end after the operations.
type expectation struct {
	status             string
	captured, refunded int64
}

// planOperations plans the money movements of the approved orders, shuffled so that
// refunds can arrive before the capture they depend on:
//   - authorized only: a full capture and a refund of 50, a half capture and a refund of
//     50, or a cancel and a refund of 10 (which must fail: nothing was captured);
//   - captured: a refund of everything (no amount), two partial refunds, or two refunds
//     of 60% racing each other (exactly one must succeed), or nothing.
func planOperations(orders []*order) ([]*operation, map[string]expectation) {
	var ops []*operation
	want := map[string]expectation{}
	add := func(o *order, kind string, amount int64, mayBeRefused bool) {
		ops = append(ops, &operation{o: o, kind: kind, amount: amount, key: fmt.Sprintf("%s-%s-%d", o.key, kind, len(ops)), mayBeRefused: mayBeRefused})
	}
	for _, o := range orders {
		switch {
		case o.method == declinedMethod:
			want[o.id] = expectation{status: "failed"}
		case !o.capture && (o.index/4)%3 == 0:
			add(o, "capture", 0, false)
			add(o, "refund", 50, false)
			want[o.id] = expectation{"succeeded", o.amount, 50}
		case !o.capture && (o.index/4)%3 == 1:
			add(o, "capture", o.amount/2, false)
			add(o, "refund", 50, false)
			want[o.id] = expectation{"succeeded", o.amount / 2, 50}
		case !o.capture:
			add(o, "cancel", 0, false)
			add(o, "refund", 10, true)
			want[o.id] = expectation{"canceled", 0, 0}
		case o.index%5 == 0:
			add(o, "refund", 0, false)
			want[o.id] = expectation{"succeeded", o.amount, o.amount}
		case o.index%5 == 1:
			add(o, "refund", 100, false)
			add(o, "refund", 200, false)
			want[o.id] = expectation{"succeeded", o.amount, 300}
		case o.index%5 == 2:
			add(o, "refund", o.amount*6/10, true)
			add(o, "refund", o.amount*6/10, true)
			want[o.id] = expectation{"succeeded", o.amount, o.amount * 6 / 10}
		default:
			want[o.id] = expectation{"succeeded", o.amount, 0}
		}
	}
	rand.Shuffle(len(ops), func(i, j int) { ops[i], ops[j] = ops[j], ops[i] })
	return ops, want
}

// operate sends ops with clients concurrent clients, each until it is answered 202 or
// 400 (retrying transport errors, 409, 429 and 5xx with the same key), and calls
// between(n) after the n-th answer for each n in marks. It returns the failures.
func (s *system) operate(ctx context.Context, ops []*operation, clients int, marks map[int64]func()) []error {
	var (
		answered atomic.Int64
		mu       sync.Mutex
		errs     []error
		wg       sync.WaitGroup
		next     = make(chan *operation)
	)
	for range clients {
		wg.Go(func() {
			for op := range next {
				if err := s.send(ctx, op); err != nil {
					mu.Lock()
					errs = append(errs, err)
					mu.Unlock()
				}
				if f := marks[answered.Add(1)]; f != nil {
					f()
				}
			}
		})
	}
	for _, op := range ops {
		next <- op
	}
	close(next)
	wg.Wait()
	return errs
}

func (s *system) send(ctx context.Context, op *operation) error {
	path, body := op.request()
	backoff := 20 * time.Millisecond
	for {
		status, resp, _, err := s.do(ctx, http.MethodPost, path, body, "Idempotency-Key", op.key)
		switch {
		case ctx.Err() != nil:
			return fmt.Errorf("%s of %s never answered: %w (last: %d %s %v)", op.kind, op.o.id, ctx.Err(), status, resp, err)
		case err == nil && status == http.StatusAccepted:
			if op.kind == "refund" {
				var r refundObject
				if err := json.Unmarshal(resp, &r); err != nil || !strings.HasPrefix(r.ID, "re_") || r.Status != "pending" || r.Charge != op.o.id {
					return fmt.Errorf("refund of %s: 202 with %s", op.o.id, resp)
				}
				op.refundID = r.ID
			}
			return nil
		case err == nil && status == http.StatusBadRequest:
			var p struct {
				Code string `json:"code"`
			}
			_ = json.Unmarshal(resp, &p)
			if !op.mayBeRefused || p.Code != "amount_too_large" {
				return fmt.Errorf("%s of %s (%s): 400 %s", op.kind, op.o.id, body, resp)
			}
			op.refused = p.Code
			return nil
		case err != nil, status == http.StatusConflict, status == http.StatusTooManyRequests, status >= 500:
		default:
			return fmt.Errorf("%s of %s: %d %s", op.kind, op.o.id, status, resp)
		}
		select {
		case <-ctx.Done():
		case <-time.After(backoff):
		}
		backoff = min(2*backoff, 500*time.Millisecond)
	}
}

// refundObject is the refund object of docs/api.md, as the test reads it.
type refundObject struct {
	ID          string  `json:"id"`
	Object      string  `json:"object"`
	Charge      string  `json:"charge"`
	Amount      int64   `json:"amount"`
	Currency    string  `json:"currency"`
	Status      string  `json:"status"`
	FailureCode *string `json:"failure_code"`
}

// awaitExpected polls every charge until it is as want says, and every accepted refund
// until it is no longer pending; it returns the charges and refunds as last seen and what
// never got there.
func (s *system) awaitExpected(ctx context.Context, want map[string]expectation, ops []*operation) (map[string]chargeObject, map[string]refundObject, []string) {
	var (
		mu       sync.Mutex
		charges  = map[string]chargeObject{}
		refunds  = map[string]refundObject{}
		problems []string
		wg       sync.WaitGroup
		sem      = make(chan struct{}, 4)
	)
	poll := func(path string, done func([]byte) bool) {
		defer wg.Done()
		sem <- struct{}{}
		defer func() { <-sem }()
		var last []byte
		for ctx.Err() == nil {
			status, body, _, err := s.do(ctx, http.MethodGet, path, nil)
			if err == nil && status == http.StatusOK {
				last = body
				if done(body) {
					return
				}
			}
			select {
			case <-ctx.Done():
			case <-time.After(200 * time.Millisecond):
			}
		}
		mu.Lock()
		problems = append(problems, fmt.Sprintf("%s: last seen %.300s", path, last))
		mu.Unlock()
	}
	for id, w := range want {
		wg.Add(1)
		go poll("/v1/charges/"+id, func(body []byte) bool {
			var c chargeObject
			if json.Unmarshal(body, &c) != nil {
				return false
			}
			mu.Lock()
			charges[id] = c
			mu.Unlock()
			return c.Status == w.status && c.AmountCaptured == w.captured && c.AmountRefunded == w.refunded
		})
	}
	for _, op := range ops {
		if op.refundID == "" {
			continue
		}
		wg.Add(1)
		go poll("/v1/refunds/"+op.refundID, func(body []byte) bool {
			var r refundObject
			if json.Unmarshal(body, &r) != nil {
				return false
			}
			mu.Lock()
			refunds[r.ID] = r
			mu.Unlock()
			return r.Status != "pending"
		})
	}
	wg.Wait()
	return charges, refunds, problems
}

// moveMoney is the second half of the end-to-end test (issue 4): captures, cancels and
// refunds of the settled charges, some racing each other, while worker-2 is killed and
// replaced. Afterwards every charge holds exactly the amounts its operations call for,
// each capture, void and succeeded refund reached the processor once and nothing else
// did, the balance is the sum of the charges, every event reached the webhook endpoint,
// and `worker reconcile` finds nothing to report.
func (s *system) moveMoney(t *testing.T, orders []*order, hooks *hookReceiver) {
	ops, want := planOperations(orders)
	third := int64(len(ops) / 3)
	victim := s.workers[1]
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	defer cancel()
	start := time.Now()
	errs := s.operate(ctx, ops, 16, map[int64]func(){
		third: func() {
			victim.kill(t)
			t.Logf("killed %s after %d of %d operations", victim.name, third, len(ops))
		},
		2 * third: func() {
			s.workers = append(s.workers, s.restartWorker(t, victim, "worker-2-restarted"))
			t.Logf("restarted it after %d operations", 2*third)
		},
	})
	require.Empty(t, errs, "sending operations")
	t.Logf("sent %d captures, cancels and refunds in %s", len(ops), time.Since(start).Round(time.Millisecond))

	charges, refunds, stuck := s.awaitExpected(ctx, want, ops)
	require.Empty(t, stuck, "charges or refunds that never reached their expected state")
	t.Logf("all settled %s after the first operation", time.Since(start).Round(time.Millisecond))

	// Refunds: each as its race allows; exactly one of each 60% pair succeeds.
	var (
		succeededRefunds, failedRefunds int
		wonRace                         = map[string]int{}
		kinds                           = map[string]int{}
	)
	ps := s.processor.stats()
	require.Empty(t, ps.problems, "processor protocol violations")
	for _, op := range ops {
		kinds[op.kind]++
		switch op.kind {
		case "capture":
			d, ok := ps.ops[op.o.id+":capture"]
			require.True(t, ok, "capture of %s never reached the processor", op.o.id)
			require.Equal(t, want[op.o.id].captured, d.req.Amount, op.o.id)
		case "cancel":
			require.Contains(t, ps.ops, op.o.id+":void")
		case "refund":
			if op.refused != "" {
				continue
			}
			r := refunds[op.refundID]
			require.Equal(t, op.o.id, r.Charge)
			_, reached := ps.ops[op.refundID]
			switch r.Status {
			case "succeeded":
				succeededRefunds++
				wonRace[op.o.id]++
				require.True(t, reached, "refund %s succeeded without the processor", r.ID)
				require.Equal(t, r.Amount, ps.ops[op.refundID].req.Amount)
			case "failed":
				failedRefunds++
				require.True(t, op.mayBeRefused, "refund %s of %s failed: %v", r.ID, op.o.id, r.FailureCode)
				require.Equal(t, "amount_too_large", *r.FailureCode)
				require.False(t, reached, "refund %s failed but reached the processor", r.ID)
			}
		}
	}
	for _, o := range orders {
		if o.capture && o.method != declinedMethod && o.index%5 == 2 {
			require.Equal(t, 1, wonRace[o.id], "refunds of 60%% of %s that succeeded", o.id)
		}
	}
	require.Len(t, ps.ops, kinds["capture"]+kinds["cancel"]+succeededRefunds, "processor calls other than those asked for")
	t.Logf("operations: %v; refunds: %d succeeded, %d failed, %d refused at once", kinds, succeededRefunds, failedRefunds,
		kinds["refund"]-succeededRefunds-failedRefunds)

	// The balance is what the charges hold.
	var available int64
	for id, c := range charges {
		require.Equal(t, want[id].captured-want[id].refunded, c.AmountCaptured-c.AmountRefunded)
		available += c.AmountCaptured - c.AmountRefunded
	}
	status, body, _, err := s.do(ctx, http.MethodGet, "/v1/balance", nil)
	require.NoError(t, err)
	require.Equal(t, http.StatusOK, status, "%s", body)
	require.JSONEq(t, fmt.Sprintf(`{"object": "balance", "available": [{"amount": %d, "currency": "usd"}], "pending": [{"amount": 0, "currency": "usd"}]}`, available), string(body))

	// Every event reached the endpoint, and there is one per movement.
	events, err := listPages(ctx, s, "/v1/events", func(e deliveredEvent) string { return e.ID })
	require.NoError(t, err)
	byType := map[string]int{}
	ids := make([]string, len(events))
	for i, e := range events {
		byType[e.Type]++
		ids[i] = e.ID
	}
	require.Equal(t, kinds["capture"], byType["charge.captured"])
	require.Equal(t, kinds["cancel"], byType["charge.canceled"])
	require.Equal(t, succeededRefunds, byType["charge.refunded"])
	require.Equal(t, failedRefunds, byType["refund.failed"])
	require.Empty(t, hooks.awaitEvents(ctx, ids), "events that never reached the endpoint")
	t.Logf("events: %v, all delivered", byType)

	s.requireReconciled(t)
}

// requireReconciled runs `worker reconcile` as an operator would, and requires it to
// find nothing: every view agrees with its log, the ledger sums to zero, the balances
// equal the ledger.
func (s *system) requireReconciled(t *testing.T) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	defer cancel()
	var out, stderr bytes.Buffer
	cmd := exec.CommandContext(ctx, filepath.Join(binDir, "worker"), "reconcile")
	cmd.Env, cmd.Stdout, cmd.Stderr = s.workers[0].env, &out, &stderr
	require.NoError(t, cmd.Run(), "worker reconcile:\n%s\n%s", out.String(), stderr.String())
	require.Equal(t, 1, strings.Count(out.String(), "\n"), "worker reconcile printed more than its summary:\n%s", out.String())
	require.Contains(t, out.String(), " 0 disagreements")
	t.Logf("worker reconcile: %s", strings.TrimSpace(out.String()))
}

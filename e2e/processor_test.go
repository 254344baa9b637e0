package e2e

import (
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"
)

// declinedMethod is the payment method the processor declines with card_declined.
const declinedMethod = "pm_card_chargeDeclined"

// authRequest is the body of POST /authorizations (docs/api.md, "Payment processor boundary").
type authRequest struct {
	ChargeID      string `json:"charge_id"`
	Amount        int64  `json:"amount"`
	Currency      string `json:"currency"`
	PaymentMethod string `json:"payment_method"`
	Capture       bool   `json:"capture"`
}

// authAnswer is the processor's 200 answer.
type authAnswer struct {
	ID          string `json:"id"`
	Status      string `json:"status"`
	DeclineCode string `json:"decline_code,omitempty"`
}

// authorization is one decision the processor made: the request that made it and the
// answer given to it and to every repeat of its key.
type authorization struct {
	key    string
	req    authRequest
	answer authAnswer
}

// processor is the `http` payment processor of docs/api.md, served by the test. It honours
// Idempotency-Key: the first call with a key decides (approved, or declined for
// pm_card_chargeDeclined) and later calls with that key get the same answer. Each call
// takes 0-5 ms, and about 2% of first calls fail with a 503 before anything is decided,
// a transient error the worker has to retry.
type processor struct {
	srv *httptest.Server

	mu        sync.Mutex
	byKey     map[string]*authorization
	byCharge  map[string][]*authorization // decisions per charge_id: more than one is a double charge
	ops       map[string]*decision        // captures, voids and refunds decided, by key
	calls     int                         // every POST
	repeats   int                         // calls with a key already decided
	failed503 int                         // first calls answered 503 on purpose
	problems  []string                    // protocol violations by the caller
	// loseAnswers is the share of first authorization calls whose answer is lost: the
	// processor decides (the card is charged), then drops the connection unanswered.
	loseAnswers float64
	lost        int // answers lost on purpose
	// hold, when set, is taken by the next authorization call, which closes arrived and
	// waits for release before it goes on (holdNext).
	hold *heldCall
	// held is the last held call, whose again closes when its key is asked for again.
	held *heldCall
}

// heldCall is a call the test holds: arrived closes when it comes, and it waits for
// release; once released, it is decided and answered (never lost, never a 503), and
// again closes when a later call asks for the same key.
type heldCall struct {
	arrived, release, again chan struct{}
	key                     string
}

// processorStats is a snapshot of what the processor saw.
type processorStats struct {
	byCharge  map[string][]authorization
	ops       map[string]decision
	calls     int
	repeats   int
	failed503 int
	lost      int
	problems  []string
}

func startProcessor(t *testing.T) *processor {
	t.Helper()
	p := &processor{byKey: map[string]*authorization{}, byCharge: map[string][]*authorization{}, ops: map[string]*decision{}}
	mux := http.NewServeMux()
	mux.HandleFunc("POST /authorizations", p.authorize)
	mux.HandleFunc("POST /captures", p.operation("capture", func(r opRequest) string { return r.ChargeID + ":capture" }))
	mux.HandleFunc("POST /voids", p.operation("void", func(r opRequest) string { return r.ChargeID + ":void" }))
	mux.HandleFunc("POST /refunds", p.operation("refund", func(r opRequest) string { return r.RefundID }))
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		p.problem("unexpected call %s %s", r.Method, r.URL.Path)
		http.NotFound(w, r)
	})
	p.srv = httptest.NewServer(mux)
	t.Cleanup(p.srv.Close)
	return p
}

// loseAnswersOf makes the processor lose the answer of share of its first authorization
// calls (loseAnswers).
func (p *processor) loseAnswersOf(share float64) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.loseAnswers = share
}

// URL is the base URL the workers call.
func (p *processor) URL() string { return p.srv.URL }

func (p *processor) problem(format string, args ...any) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if len(p.problems) < 100 {
		p.problems = append(p.problems, fmt.Sprintf(format, args...))
	}
}

// readCall takes the processor's own time, then decodes the body of a call of kind
// strictly into req and returns its Idempotency-Key; when it cannot, it has answered 400
// and recorded why.
func readCall[T any](p *processor, w http.ResponseWriter, r *http.Request, kind string, req *T) (string, bool) {
	// Network and processing time. Not a synchronization: the latency is the point.
	time.Sleep(rand.N(5 * time.Millisecond))
	key := r.Header.Get("Idempotency-Key")
	dec := json.NewDecoder(r.Body)
	dec.DisallowUnknownFields()
	if err := dec.Decode(req); err != nil {
		p.problem("%s with an unreadable body (key %q): %v", kind, key, err)
		http.Error(w, "bad request", http.StatusBadRequest)
		return key, false
	}
	return key, true
}

// repeated counts a call with a key already decided, whose request must be the first's;
// p.mu is held.
func (p *processor) repeated(key string, first, now any) {
	p.repeats++
	if first != now {
		p.problems = append(p.problems, fmt.Sprintf("key %s repeated with another request: first %+v, now %+v", key, first, now))
	}
}

// unavailable answers about 2% of first calls with a 503 before deciding anything, and
// then unlocks p.mu (held on entry) and reports true.
func (p *processor) unavailable(w http.ResponseWriter) bool {
	if rand.Float64() >= 0.02 {
		return false
	}
	p.failed503++
	p.mu.Unlock()
	http.Error(w, "try again", http.StatusServiceUnavailable)
	return true
}

// answer writes a 200 answer.
func answer(w http.ResponseWriter, a authAnswer) {
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(a)
}

// holdNext holds the next authorization call: arrived closes when it comes, with the
// worker that made it waiting for its answer, and release lets it go on. again closes
// when its key is asked for again, by whoever asks.
func (p *processor) holdNext() (arrived <-chan struct{}, release func(), again <-chan struct{}) {
	h := &heldCall{arrived: make(chan struct{}), release: make(chan struct{}), again: make(chan struct{})}
	p.mu.Lock()
	p.hold = h
	p.mu.Unlock()
	return h.arrived, sync.OnceFunc(func() { close(h.release) }), h.again
}

func (p *processor) authorize(w http.ResponseWriter, r *http.Request) {
	var req authRequest
	key, ok := readCall(p, w, r, "authorization", &req)
	if !ok {
		return
	}
	p.mu.Lock()
	h := p.hold
	p.hold = nil
	p.mu.Unlock()
	if h != nil {
		p.mu.Lock()
		h.key, p.held = key, h
		p.mu.Unlock()
		close(h.arrived)
		<-h.release
	}
	if key == "" {
		p.problem("authorization of %s without Idempotency-Key", req.ChargeID)
		http.Error(w, "Idempotency-Key required", http.StatusBadRequest)
		return
	}
	if key != req.ChargeID {
		p.problem("authorization of %s with Idempotency-Key %q, want the charge id", req.ChargeID, key)
	}

	p.mu.Lock()
	p.calls++
	a, seen := p.byKey[key]
	switch {
	case seen:
		p.repeated(key, a.req, req)
		if p.held != nil && p.held.key == key {
			close(p.held.again)
			p.held = nil
		}
	case h == nil && p.unavailable(w):
		return
	default:
		a = &authorization{key: key, req: req, answer: authAnswer{
			ID: fmt.Sprintf("auth_%06d", len(p.byKey)+1), Status: "approved",
		}}
		if req.PaymentMethod == declinedMethod {
			a.answer.Status, a.answer.DeclineCode = "declined", "card_declined"
		}
		p.byKey[key] = a
		p.byCharge[req.ChargeID] = append(p.byCharge[req.ChargeID], a)
		if h == nil && rand.Float64() < p.loseAnswers {
			p.lost++
			p.mu.Unlock()
			dropUnanswered(w)
			return
		}
	}
	decided := a.answer
	p.mu.Unlock()
	answer(w, decided)
}

// dropUnanswered closes the connection of w without an answer: the caller sees it end
// and cannot know whether anything was decided.
func dropUnanswered(w http.ResponseWriter) {
	conn, _, err := http.NewResponseController(w).Hijack()
	if err != nil {
		panic(http.ErrAbortHandler) // the server drops the connection
	}
	_ = conn.Close()
}

// stats returns a copy of what the processor saw so far.
func (p *processor) stats() processorStats {
	p.mu.Lock()
	defer p.mu.Unlock()
	s := processorStats{
		byCharge: make(map[string][]authorization, len(p.byCharge)),
		calls:    p.calls, repeats: p.repeats, failed503: p.failed503, lost: p.lost,
		problems: append([]string(nil), p.problems...),
	}
	for id, as := range p.byCharge {
		for _, a := range as {
			s.byCharge[id] = append(s.byCharge[id], *a)
		}
	}
	s.ops = make(map[string]decision, len(p.ops))
	for k, d := range p.ops {
		s.ops[k] = *d
	}
	return s
}

// opRequest is the body of POST /captures, /voids and /refunds; each sends its fields.
type opRequest struct {
	ChargeID        string `json:"charge_id"`
	AuthorizationID string `json:"authorization_id"`
	Amount          int64  `json:"amount"`
	RefundID        string `json:"refund_id"`
}

// decision is a capture, void or refund the processor decided (always approved).
type decision struct {
	kind   string
	req    opRequest
	answer authAnswer
}

// operation serves POST /captures, /voids or /refunds like authorize: the key wantKey
// names decides once, repeats get the same answer, ~2% of first calls get a 503. The
// authorization id must be the one this processor gave the charge.
func (p *processor) operation(kind string, wantKey func(opRequest) string) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		var req opRequest
		key, ok := readCall(p, w, r, kind, &req)
		if !ok {
			return
		}
		if want := wantKey(req); key != want {
			p.problem("%s of %s with Idempotency-Key %q, want %q", kind, req.ChargeID, key, want)
			http.Error(w, "Idempotency-Key", http.StatusBadRequest)
			return
		}
		p.mu.Lock()
		p.calls++
		if as := p.byCharge[req.ChargeID]; len(as) != 1 || as[0].answer.ID != req.AuthorizationID || as[0].answer.Status != "approved" {
			p.problems = append(p.problems, fmt.Sprintf("%s of %s under authorization %q, which this processor did not approve", kind, req.ChargeID, req.AuthorizationID))
		}
		d, seen := p.ops[key]
		switch {
		case seen:
			p.repeated(key, d.req, req)
		case p.unavailable(w):
			return
		default:
			d = &decision{kind: kind, req: req, answer: authAnswer{ID: fmt.Sprintf("%s_%06d", kind, len(p.ops)+1), Status: "approved"}}
			p.ops[key] = d
		}
		decided := d.answer
		p.mu.Unlock()
		answer(w, decided)
	}
}

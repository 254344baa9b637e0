package ingest

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"reflect"
	"slices"
	"time"

	"github.com/billing/billing/internal/charge"
)

// KeyValue is the atomic key-value store idempotency records live in (a JetStream KV
// bucket whose TTL is the retention). Create fails with charge.ErrConflict when the key
// exists; Update and Delete when the revision is not the current one; Get returns
// charge.ErrNotFound for a missing key.
type KeyValue interface {
	Create(ctx context.Context, key string, value []byte) (uint64, error)
	Get(ctx context.Context, key string) ([]byte, uint64, error)
	Update(ctx context.Context, key string, value []byte, revision uint64) (uint64, error)
	Delete(ctx context.Context, key string, revision uint64) error
}

// Action is what an accepted POST does once its key is claimed: put a command on the
// queue, or write a record. It is stored with the claim, so that a repeat of the request
// that finds the first execution stalled can do the very same action again. Every action
// is idempotent by an id decided before it is stored.
type Action struct {
	Kind    string          `json:"kind"`
	Payload json.RawMessage `json:"payload"`
	// value is the payload as given to NewAction, which Decode hands out rather than
	// decode Payload again; nil in an action read back from a stored claim.
	value any
}

// NewAction returns the action of kind with payload encoded as JSON.
func NewAction(kind string, payload any) Action {
	return Action{Kind: kind, Payload: mustJSON(payload), value: payload}
}

// Decode sets *dst to the action's payload: the value given to NewAction when it is of
// dst's type (the payload is encoded once, decoded never, on a first execution), else
// Payload decoded.
func (a Action) Decode(dst any) error {
	if a.value != nil {
		d := reflect.ValueOf(dst)
		if v := reflect.ValueOf(a.value); d.Kind() == reflect.Pointer && v.Type() == d.Type().Elem() {
			d.Elem().Set(v)
			return nil
		}
	}
	return json.Unmarshal(a.Payload, dst)
}

// Executor does actions. An error that wraps ErrOutcomeUnknown means the action may have
// taken effect; any other error means it certainly did not.
type Executor interface {
	Execute(ctx context.Context, a Action) error
}

// Actions is an Executor that dispatches by kind.
type Actions map[string]func(ctx context.Context, a Action) error

// PayloadAction is the executor that does f with an action's encoded payload, for
// actions off the hot path that decode it themselves.
func PayloadAction(f func(ctx context.Context, payload json.RawMessage) error) func(ctx context.Context, a Action) error {
	return func(ctx context.Context, a Action) error { return f(ctx, a.Payload) }
}

// Execute does a with the function registered for its kind.
func (m Actions) Execute(ctx context.Context, a Action) error {
	f, ok := m[a.Kind]
	if !ok {
		return fmt.Errorf("no executor for action %q", a.Kind)
	}
	return f(ctx, a)
}

// Witness tells whether an action of its kind has taken effect, from what the action
// leaves behind: a charge's create command, for one, on the queue until a worker has
// stored the charge, then the charge in the store.
type Witness func(ctx context.Context, payload json.RawMessage) (bool, error)

// ErrOutcomeUnknown marks an action error after which the action may have taken effect.
var ErrOutcomeUnknown = errors.New("outcome unknown")

// Sealer encrypts stored responses that hold secrets (a webhook endpoint's secret).
type Sealer interface {
	Seal(plaintext []byte) ([]byte, error)
	Open(sealed []byte) ([]byte, error)
}

// Idempotency errors, mapped to 409 and 422 by the API.
var (
	ErrKeyInUse = errors.New("idempotency key in use")
)

// KeyReusedError is a key sent again with a different request: Fields names what differs.
type KeyReusedError struct{ Fields []string }

func (e *KeyReusedError) Error() string {
	return fmt.Sprintf("idempotency key reused with a different request (%v differ)", e.Fields)
}

// Request identifies a POST for idempotency: its merchant and key, and what it asks for.
// Body is the canonical JSON of the parsed body (sorted keys, no white space), so that key
// order and spacing do not make two requests differ.
type Request struct {
	Merchant string
	Key      string
	Method   string
	Path     string
	Body     []byte
}

// Response is what a POST answered, stored once execution starts and replayed byte for
// byte to a repeat of the same request. A Sensitive body is stored sealed.
type Response struct {
	Status    int
	Body      []byte
	Sensitive bool
	Replayed  bool
}

// record is the value stored under an idempotency key.
type record struct {
	State     string          `json:"state"` // stateStarted or stateDone
	Method    string          `json:"method"`
	Path      string          `json:"path"`
	Request   json.RawMessage `json:"request"`
	Status    int             `json:"status"`
	Body      []byte          `json:"body"`
	Sealed    bool            `json:"sealed,omitempty"`
	Action    Action          `json:"action"`
	StartedAt time.Time       `json:"started_at"`
}

const (
	stateStarted = "started"
	stateDone    = "done"
)

// Idempotency runs accepted requests at most once per merchant and key (docs/api.md,
// "Idempotency"). The first request claims the key with an atomic create that already
// holds its response and the action it does; once the action is done the record is marked
// done. A claim left "started" by an ingest that died (or met an action of unknown
// outcome) is taken over after TakeoverAfter by a repeat of the same request, which does
// the same action again: actions are idempotent by ids decided before the claim (the
// queue and the worker dedupe a command by charge id), so nothing is lost and nothing is
// doubled.
//
// An action whose kind has a witness (Witnesses) is never marked done: what it leaves
// behind says whether it was, so the claim is the request's one write to the bucket. A
// repeat that finds such a claim started asks the witness: done, it is answered with the
// stored response; not yet, it takes the claim over at once and does the action again
// (the first, if still in flight, stores the same command, which the queue keeps once).
type Idempotency struct {
	KV            KeyValue
	Executor      Executor
	Witnesses     map[string]Witness
	Sealer        Sealer
	Logger        *slog.Logger
	NowFunc       charge.TimeNow
	TakeoverAfter time.Duration
}

// Submit does action for req unless req's key was seen before. resp is the response to
// store and return; it is returned as is on first execution.
func (s *Idempotency) Submit(ctx context.Context, req Request, resp Response, action Action) (Response, error) {
	key := kvKey(req.Merchant, req.Key)
	rec := record{
		State: stateStarted, Method: req.Method, Path: req.Path, Request: req.Body,
		Status: resp.Status, Body: resp.Body, Action: action, StartedAt: s.NowFunc(),
	}
	if resp.Sensitive {
		sealed, err := s.Sealer.Seal(resp.Body)
		if err != nil {
			return Response{}, fmt.Errorf("sealing response: %w", err)
		}
		rec.Body, rec.Sealed = sealed, true
	}
	value := mustJSON(rec)
	lost := false // a create whose answer was lost may have stored value
	for attempt := 0; attempt < claimAttempts; attempt++ {
		rev, err := s.KV.Create(ctx, key, value)
		switch {
		case err == nil:
			return s.execute(ctx, key, rev, rec)
		case errors.Is(err, charge.ErrUnavailable) && attempt+1 < claimAttempts:
			// Its answer lost (the bucket's leader died, the connection moved): maybe
			// stored. The next create tells, meeting our own claim.
			lost = true
			select {
			case <-ctx.Done():
				return Response{}, fmt.Errorf("claiming idempotency key: %w", err)
			case <-time.After(time.Duration(attempt+1) * reclaimWait):
			}
			continue
		case !errors.Is(err, charge.ErrConflict):
			return Response{}, fmt.Errorf("claiming idempotency key: %w", err)
		}
		if lost {
			// The claim there may be ours, from a create whose answer was lost: the
			// record holds this attempt's own start time, so it is ours if equal.
			raw, rev, err := s.KV.Get(ctx, key)
			if err == nil && bytes.Equal(raw, value) {
				return s.execute(ctx, key, rev, rec)
			}
		}
		resp, found, err := s.repeat(ctx, key, rec)
		if found || err != nil {
			return resp, err
		}
		// Expired or released between our create and get: claim again.
	}
	return Response{}, fmt.Errorf("claiming idempotency key: %w", charge.ErrUnavailable)
}

// claimAttempts bounds the creates of one claim; reclaimWait is the pause after the
// first whose answer was lost, each further one waiting that much longer.
const (
	claimAttempts = 4
	reclaimWait   = 100 * time.Millisecond
)

// SubmitChecked is Submit for a request whose response and action depend on state that
// the request itself changes, such as a capture, which is valid only until the charge is
// captured: a repeat of an accepted request must replay its stored response rather than
// be checked again. So the key is looked up first, and a request seen before is answered
// as Submit answers it. Only for a new key is build called, to check the request and
// make its response and action; an error of build (a *charge.InvalidRequestError,
// charge.ErrNotFound) is returned as is and nothing is stored, so the key stays free.
//
// A request racing with the first of its key passes the lookup, then meets the first's
// claim in Submit, which answers it as a repeat.
func (s *Idempotency) SubmitChecked(ctx context.Context, req Request, build func(ctx context.Context) (Response, Action, error)) (Response, error) {
	resp, found, err := s.repeat(ctx, kvKey(req.Merchant, req.Key), record{Method: req.Method, Path: req.Path, Request: req.Body})
	if found || err != nil {
		return resp, err
	}
	resp, action, err := build(ctx)
	if err != nil {
		return Response{}, err
	}
	return s.Submit(ctx, req, resp, action)
}

// repeat answers rec, a request whose key may already hold a record: found is false when
// it holds none. A record of a different request is a KeyReusedError; a done one is
// replayed; a started one is in use until TakeoverAfter, and then taken over and
// finished with its own action.
func (s *Idempotency) repeat(ctx context.Context, key string, rec record) (resp Response, found bool, err error) {
	prior, rev, err := s.get(ctx, key)
	if errors.Is(err, charge.ErrNotFound) {
		return Response{}, false, nil
	}
	if err != nil {
		return Response{}, false, err
	}
	if fields := differences(prior, rec); len(fields) > 0 {
		return Response{}, true, &KeyReusedError{Fields: fields}
	}
	witness, witnessed := s.Witnesses[prior.Action.Kind]
	switch {
	case prior.State == stateDone:
		resp, err := s.response(prior, true)
		return resp, true, err
	case witnessed:
		done, err := witness(ctx, prior.Action.Payload)
		if err != nil {
			return Response{}, true, fmt.Errorf("looking for the effect of %s: %w", prior.Action.Kind, err)
		}
		if done {
			resp, err := s.response(prior, true)
			return resp, true, err
		}
		// Not there (yet): the first execution is in flight, stalled or failed. Take
		// it over now, so that a first that fails for certain cannot release the key
		// from under this one, and do the same action again.
	case s.NowFunc().Sub(prior.StartedAt) < s.TakeoverAfter:
		return Response{}, true, ErrKeyInUse
	}
	// The first execution stalled: take it over and finish it with its own action.
	prior.StartedAt = s.NowFunc()
	rev, err = s.KV.Update(ctx, key, mustJSON(prior), rev)
	if errors.Is(err, charge.ErrConflict) {
		return Response{}, true, ErrKeyInUse
	}
	if err != nil {
		return Response{}, true, fmt.Errorf("taking over idempotency key: %w", err)
	}
	resp, err = s.execute(ctx, key, rev, prior)
	resp.Replayed = err == nil
	return resp, true, err
}

// response returns the stored response of rec.
func (s *Idempotency) response(rec record, replayed bool) (Response, error) {
	body := rec.Body
	if rec.Sealed {
		var err error
		if body, err = s.Sealer.Open(rec.Body); err != nil {
			return Response{}, fmt.Errorf("opening stored response: %w", err)
		}
	}
	return Response{Status: rec.Status, Body: body, Sensitive: rec.Sealed, Replayed: replayed}, nil
}

// execute does rec's action, then marks the record done unless a witness of its kind
// tells that instead. If the action certainly failed,
// the claim is released so the key stays free; if its outcome is unknown, the claim stays
// for a retry to take over.
func (s *Idempotency) execute(ctx context.Context, key string, rev uint64, rec record) (Response, error) {
	if err := s.Executor.Execute(ctx, rec.Action); err != nil {
		if !errors.Is(err, ErrOutcomeUnknown) {
			// Use a fresh context: the request's may be what failed.
			dctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
			defer cancel()
			if derr := s.KV.Delete(dctx, key, rev); derr != nil {
				s.Logger.WarnContext(ctx, "releasing idempotency key after failed action", "error", derr)
			}
		}
		return Response{}, fmt.Errorf("doing %s: %w", rec.Action.Kind, err)
	}
	if _, witnessed := s.Witnesses[rec.Action.Kind]; witnessed {
		return s.response(rec, false)
	}
	rec.State = stateDone
	if _, err := s.KV.Update(ctx, key, mustJSON(rec), rev); err != nil {
		// The command is durable, so the 202 stands. A repeat of the request sees the
		// claim as started and, after TakeoverAfter, publishes the same command again,
		// which the queue and the worker dedupe.
		s.Logger.WarnContext(ctx, "marking idempotency key done", "error", err)
	}
	return s.response(rec, false)
}

func (s *Idempotency) get(ctx context.Context, key string) (record, uint64, error) {
	raw, rev, err := s.KV.Get(ctx, key)
	if err != nil {
		return record{}, 0, fmt.Errorf("reading idempotency key: %w", err)
	}
	var rec record
	if err := json.Unmarshal(raw, &rec); err != nil {
		return record{}, 0, fmt.Errorf("decoding idempotency record: %w", err)
	}
	return rec, rev, nil
}

// differences names what differs between two requests with the same key: the method or
// path, or the top-level body fields.
func differences(a, b record) []string {
	var fields []string
	if a.Method != b.Method {
		fields = append(fields, "method")
	}
	if a.Path != b.Path {
		fields = append(fields, "path")
	}
	if bytes.Equal(a.Request, b.Request) {
		return fields
	}
	var am, bm map[string]json.RawMessage
	if json.Unmarshal(a.Request, &am) != nil || json.Unmarshal(b.Request, &bm) != nil {
		return append(fields, "body")
	}
	for k, av := range am {
		if bv, ok := bm[k]; !ok || !bytes.Equal(av, bv) {
			fields = append(fields, k)
		}
	}
	for k := range bm {
		if _, ok := am[k]; !ok {
			fields = append(fields, k)
		}
	}
	slices.Sort(fields)
	return slices.Compact(fields)
}

// kvKey is the bucket key for a merchant's idempotency key: a hash, so that any merchant
// id and any printable key map to a valid, fixed-length key and neither appears in the
// bucket in clear.
func kvKey(merchant, key string) string {
	h := sha256.New()
	h.Write([]byte(merchant))
	h.Write([]byte{0})
	h.Write([]byte(key))
	return hex.EncodeToString(h.Sum(nil))
}

func mustJSON(v any) []byte {
	b, err := json.Marshal(v)
	if err != nil {
		panic(fmt.Sprintf("ingest: encoding %T: %v", v, err))
	}
	return b
}

// ValidKey reports whether k is a valid Idempotency-Key: 1 to 255 printable ASCII
// characters.
func ValidKey(k string) bool {
	if len(k) == 0 || len(k) > 255 {
		return false
	}
	for i := 0; i < len(k); i++ {
		if k[i] < 0x20 || k[i] > 0x7e {
			return false
		}
	}
	return true
}

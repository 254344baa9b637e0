package ingest_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/stretchr/testify/require"

	"github.com/billing/billing/internal/charge"
	"github.com/billing/billing/internal/ingest"
	"github.com/billing/billing/internal/natstest"
	"github.com/billing/billing/internal/queue"
)

// publisher is a double of our own Publisher interface in front of the real queue: it
// can fail the next publishes, and it records what was published.
type publisher struct {
	q         *queue.Conn
	url       string // the NATS server's
	mu        sync.Mutex
	failNext  error
	published []string
	commands  []charge.Command
	withdrawn []uint64
	onPublish func(charge.Command) // called once an operation is stored, when set
}

func (p *publisher) PublishCommand(ctx context.Context, cmd charge.Command, data []byte) error {
	p.mu.Lock()
	fail := p.failNext
	p.failNext = nil
	p.mu.Unlock()
	if fail != nil {
		return fail
	}
	if err := p.q.PublishEncodedCommand(ctx, cmd, data); err != nil {
		return err
	}
	p.mu.Lock()
	p.published = append(p.published, cmd.ChargeID)
	p.commands = append(p.commands, cmd)
	p.mu.Unlock()
	return nil
}

func (p *publisher) PublishOperation(ctx context.Context, cmd charge.Command) (uint64, error) {
	seq, err := p.q.PublishOperation(ctx, cmd)
	if err != nil {
		return 0, err
	}
	p.mu.Lock()
	p.published = append(p.published, cmd.ChargeID)
	p.commands = append(p.commands, cmd)
	onPublish := p.onPublish
	p.mu.Unlock()
	if onPublish != nil {
		onPublish(cmd)
	}
	return seq, nil
}

func (p *publisher) WithdrawCommand(ctx context.Context, seq uint64) error {
	p.mu.Lock()
	p.withdrawn = append(p.withdrawn, seq)
	p.mu.Unlock()
	return p.q.WithdrawCommand(ctx, seq)
}

type clock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *clock) Now() time.Time         { c.mu.Lock(); defer c.mu.Unlock(); return c.now }
func (c *clock) Add(d time.Duration)    { c.mu.Lock(); defer c.mu.Unlock(); c.now = c.now.Add(d) }
func (p *publisher) failWith(err error) { p.mu.Lock(); defer p.mu.Unlock(); p.failNext = err }

func setup(t *testing.T) (*ingest.Idempotency, *publisher, *clock) {
	t.Helper()
	logger := slog.New(slog.NewTextHandler(io.Discard, nil))
	url := natstest.New(t)
	q, err := queue.Connect(context.Background(), queue.Config{URL: url}, logger)
	require.NoError(t, err)
	t.Cleanup(q.Close)
	pub := &publisher{q: q, url: url}
	clk := &clock{now: time.Now()}
	return &ingest.Idempotency{
		KV: q.Idempotency(), Executor: ingest.Actions{ingest.KindCommand: ingest.PublishAction(pub)},
		Logger: logger, NowFunc: clk.Now, TakeoverAfter: 30 * time.Second,
	}, pub, clk
}

func request(key, body string) ingest.Request {
	return ingest.Request{Merchant: "m", Key: key, Method: "POST", Path: "/v1/charges", Body: []byte(body)}
}

func cmd(id string) charge.Command {
	c := charge.Charge{ID: id, Status: charge.StatusPending}
	return charge.Command{Type: charge.CommandCreate, Merchant: "m", ChargeID: id, Charge: &c}
}

func TestCertainPublishFailureReleasesTheKey(t *testing.T) {
	t.Parallel()
	idem, pub, _ := setup(t)
	ctx := context.Background()
	pub.failWith(charge.ErrUnavailable)
	_, err := idem.Submit(ctx, request("k1", `{"a":1}`), ingest.Response{Status: 202, Body: []byte("first")}, ingest.NewAction(ingest.KindCommand, cmd(charge.NewID("ch"))))
	require.ErrorIs(t, err, charge.ErrUnavailable)

	id := charge.NewID("ch")
	resp, err := idem.Submit(ctx, request("k1", `{"a":1}`), ingest.Response{Status: 202, Body: []byte("second")}, ingest.NewAction(ingest.KindCommand, cmd(id)))
	require.NoError(t, err)
	require.False(t, resp.Replayed)
	require.Equal(t, "second", string(resp.Body))
	require.Equal(t, []string{id}, pub.published)
}

// A publish whose outcome is unknown keeps the claim: the same request is "in use" at
// first, then takes the claim over and publishes the first command again (the queue and
// worker dedupe by charge id), so the merchant gets the first charge, not a second one.
func TestUncertainPublishIsTakenOverWithTheSameCommand(t *testing.T) {
	t.Parallel()
	idem, pub, clk := setup(t)
	ctx := context.Background()
	first := charge.NewID("ch")
	pub.failWith(errors.Join(ingest.ErrOutcomeUnknown, charge.ErrUnavailable))
	_, err := idem.Submit(ctx, request("k2", `{"a":1}`), ingest.Response{Status: 202, Body: []byte("first")}, ingest.NewAction(ingest.KindCommand, cmd(first)))
	require.ErrorIs(t, err, charge.ErrUnavailable)

	_, err = idem.Submit(ctx, request("k2", `{"a":1}`), ingest.Response{Status: 202, Body: []byte("second")}, ingest.NewAction(ingest.KindCommand, cmd(charge.NewID("ch"))))
	require.ErrorIs(t, err, ingest.ErrKeyInUse)

	clk.Add(31 * time.Second)
	resp, err := idem.Submit(ctx, request("k2", `{"a":1}`), ingest.Response{Status: 202, Body: []byte("third")}, ingest.NewAction(ingest.KindCommand, cmd(charge.NewID("ch"))))
	require.NoError(t, err)
	require.Equal(t, "first", string(resp.Body))
	require.True(t, resp.Replayed)
	require.Equal(t, []string{first}, pub.published)

	resp, err = idem.Submit(ctx, request("k2", `{"a":1}`), ingest.Response{Status: 202, Body: []byte("fourth")}, ingest.NewAction(ingest.KindCommand, cmd(charge.NewID("ch"))))
	require.NoError(t, err)
	require.Equal(t, "first", string(resp.Body))
	require.Equal(t, []string{first}, pub.published, "a done key never publishes again")
}

func TestReuseNamesTheDifferingFields(t *testing.T) {
	t.Parallel()
	idem, _, _ := setup(t)
	ctx := context.Background()
	_, err := idem.Submit(ctx, request("k3", `{"amount":1,"currency":"usd"}`), ingest.Response{Status: 202}, ingest.NewAction(ingest.KindCommand, cmd(charge.NewID("ch"))))
	require.NoError(t, err)
	other := request("k3", `{"amount":2,"currency":"usd","description":"x"}`)
	other.Path = "/v1/refunds"
	_, err = idem.Submit(ctx, other, ingest.Response{Status: 202}, ingest.NewAction(ingest.KindCommand, cmd(charge.NewID("ch"))))
	var reused *ingest.KeyReusedError
	require.ErrorAs(t, err, &reused)
	require.Equal(t, []string{"amount", "description", "path"}, reused.Fields)
}

func TestValidKey(t *testing.T) {
	t.Parallel()
	require.True(t, ingest.ValidKey("order-6735"))
	require.True(t, ingest.ValidKey("~ !"))
	require.False(t, ingest.ValidKey(""))
	require.False(t, ingest.ValidKey("tab\there"))
	require.False(t, ingest.ValidKey("é"))
	long := make([]byte, 256)
	for i := range long {
		long[i] = 'k'
	}
	require.False(t, ingest.ValidKey(string(long)))
	require.True(t, ingest.ValidKey(string(long[:255])))
}

// checked returns a build func for SubmitChecked that counts its calls and, unless fail
// is set, answers body with the command of id.
func checked(calls *int, body string, id string, fail error) func(context.Context) (ingest.Response, ingest.Action, error) {
	return func(context.Context) (ingest.Response, ingest.Action, error) {
		*calls++
		if fail != nil {
			return ingest.Response{}, ingest.Action{}, fail
		}
		return ingest.Response{Status: 202, Body: []byte(body)}, ingest.NewAction(ingest.KindCommand, cmd(id)), nil
	}
}

// A repeat of an accepted request replays its answer without checking it again: the
// check would now fail, the state it looked at having moved on.
func TestSubmitCheckedReplaysWithoutChecking(t *testing.T) {
	t.Parallel()
	idem, pub, _ := setup(t)
	ctx := context.Background()
	calls := 0
	first := charge.NewID("ch")
	resp, err := idem.SubmitChecked(ctx, request("c1", `{"amount":1}`), checked(&calls, "first", first, nil))
	require.NoError(t, err)
	require.False(t, resp.Replayed)
	require.Equal(t, "first", string(resp.Body))

	notCapturable := charge.Invalid(charge.CodeChargeNotCapturable, "", "captured already")
	resp, err = idem.SubmitChecked(ctx, request("c1", ` { "amount" : 1 } `), checked(&calls, "second", charge.NewID("ch"), notCapturable))
	require.NoError(t, err)
	require.True(t, resp.Replayed)
	require.Equal(t, 202, resp.Status)
	require.Equal(t, "first", string(resp.Body))
	require.Equal(t, 1, calls, "the repeat was not checked")
	require.Equal(t, []string{first}, pub.published)

	// Another request under the same key is refused before any check.
	_, err = idem.SubmitChecked(ctx, request("c1", `{"amount":2}`), checked(&calls, "third", charge.NewID("ch"), nil))
	var reused *ingest.KeyReusedError
	require.ErrorAs(t, err, &reused)
	require.Equal(t, []string{"amount"}, reused.Fields)
	require.Equal(t, 1, calls)
}

// A request that fails its check stores nothing: the key stays free.
func TestSubmitCheckedFailureKeepsTheKeyFree(t *testing.T) {
	t.Parallel()
	idem, pub, _ := setup(t)
	ctx := context.Background()
	calls := 0
	_, err := idem.SubmitChecked(ctx, request("c2", `{}`), checked(&calls, "", "", charge.ErrNotFound))
	require.ErrorIs(t, err, charge.ErrNotFound)
	invalid := charge.Invalid(charge.CodeChargeNotCancelable, "", "not yet")
	_, err = idem.SubmitChecked(ctx, request("c2", `{}`), checked(&calls, "", "", invalid))
	var got *charge.InvalidRequestError
	require.ErrorAs(t, err, &got)
	require.Equal(t, charge.CodeChargeNotCancelable, got.Code)

	id := charge.NewID("ch")
	resp, err := idem.SubmitChecked(ctx, request("c2", `{}`), checked(&calls, "accepted", id, nil))
	require.NoError(t, err)
	require.False(t, resp.Replayed)
	require.Equal(t, "accepted", string(resp.Body))
	require.Equal(t, 3, calls)
	require.Equal(t, []string{id}, pub.published)
}

// A repeat that finds the first execution stalled takes it over with the first's action,
// without checking again, as Submit does.
func TestSubmitCheckedTakesOverAStalledClaim(t *testing.T) {
	t.Parallel()
	idem, pub, clk := setup(t)
	ctx := context.Background()
	calls := 0
	first := charge.NewID("ch")
	pub.failWith(errors.Join(ingest.ErrOutcomeUnknown, charge.ErrUnavailable))
	_, err := idem.SubmitChecked(ctx, request("c3", `{}`), checked(&calls, "first", first, nil))
	require.ErrorIs(t, err, charge.ErrUnavailable)

	_, err = idem.SubmitChecked(ctx, request("c3", `{}`), checked(&calls, "second", charge.NewID("ch"), nil))
	require.ErrorIs(t, err, ingest.ErrKeyInUse)

	clk.Add(31 * time.Second)
	resp, err := idem.SubmitChecked(ctx, request("c3", `{}`), checked(&calls, "third", charge.NewID("ch"), nil))
	require.NoError(t, err)
	require.True(t, resp.Replayed)
	require.Equal(t, "first", string(resp.Body))
	require.Equal(t, 1, calls)
	require.Equal(t, []string{first}, pub.published)
}

// lostAnswerKV is the real bucket, except that its next Create stores the record and then
// answers as if the bucket's leader had died before acknowledging it.
type lostAnswerKV struct {
	ingest.KeyValue
	mu   sync.Mutex
	lose int
}

func (k *lostAnswerKV) Create(ctx context.Context, key string, value []byte) (uint64, error) {
	rev, err := k.KeyValue.Create(ctx, key, value)
	k.mu.Lock()
	defer k.mu.Unlock()
	if err == nil && k.lose > 0 {
		k.lose--
		return 0, fmt.Errorf("creating idempotency record: answer lost: %w", charge.ErrUnavailable)
	}
	return rev, err
}

// A claim whose create was stored but whose answer was lost is the request's own: the
// request creates again, meets its own record and goes on, where it used to answer 503
// and leave its client 409 (key in use) for takeoverAfter. Another request of the key
// meeting that claim is still told it is in use.
func TestClaimWhoseAnswerWasLostIsOwn(t *testing.T) {
	t.Parallel()
	idem, pub, _ := setup(t)
	kv := &lostAnswerKV{KeyValue: idem.KV, lose: 1}
	idem.KV = kv
	ctx := context.Background()
	id := charge.NewID("ch")
	resp, err := idem.Submit(ctx, request("k9", `{"a":1}`), ingest.Response{Status: 202, Body: []byte("first")}, ingest.NewAction(ingest.KindCommand, cmd(id)))
	require.NoError(t, err)
	require.False(t, resp.Replayed)
	require.Equal(t, "first", string(resp.Body))
	require.Equal(t, []string{id}, pub.published)

	resp, err = idem.Submit(ctx, request("k9", `{"a":1}`), ingest.Response{Status: 202, Body: []byte("second")}, ingest.NewAction(ingest.KindCommand, cmd(charge.NewID("ch"))))
	require.NoError(t, err)
	require.True(t, resp.Replayed)
	require.Equal(t, "first", string(resp.Body))
	require.Equal(t, []string{id}, pub.published, "published once")
}

// witnessed is setup with the queue as witness of KindCommand: a create command has taken
// effect once CHARGES holds it.
func witnessed(t *testing.T) (*ingest.Idempotency, *publisher, *clock) {
	t.Helper()
	idem, pub, clk := setup(t)
	idem.Witnesses = map[string]ingest.Witness{ingest.KindCommand: func(ctx context.Context, payload json.RawMessage) (bool, error) {
		var c charge.Command
		if err := json.Unmarshal(payload, &c); err != nil {
			return false, err
		}
		_, err := pub.q.LookupCommand(ctx, c.ChargeID)
		if errors.Is(err, charge.ErrNotFound) {
			return false, nil
		}
		return err == nil, err
	}}
	return idem, pub, clk
}

// A witnessed action leaves its claim as the request's only write to the bucket, and a
// repeat finds it done by its witness: replayed, nothing published again.
func TestWitnessedActionIsOneWrite(t *testing.T) {
	t.Parallel()
	idem, pub, _ := witnessed(t)
	ctx := context.Background()
	first := charge.NewID("ch")
	resp, err := idem.Submit(ctx, request("w1", `{"a":1}`), ingest.Response{Status: 202, Body: []byte("first")}, ingest.NewAction(ingest.KindCommand, cmd(first)))
	require.NoError(t, err)
	require.False(t, resp.Replayed)

	require.Equal(t, uint64(1), bucketRevisions(t, pub.url), "the claim is the only write of the request")

	resp, err = idem.Submit(ctx, request("w1", `{"a":1}`), ingest.Response{Status: 202, Body: []byte("second")}, ingest.NewAction(ingest.KindCommand, cmd(charge.NewID("ch"))))
	require.NoError(t, err)
	require.True(t, resp.Replayed)
	require.Equal(t, "first", string(resp.Body))
	require.Equal(t, []string{first}, pub.published)
	require.Equal(t, uint64(1), bucketRevisions(t, pub.url), "a repeat of a done request writes nothing")
}

// A witnessed action whose outcome is unknown is not "in use" for TakeoverAfter: a repeat
// finds its command missing, takes the claim over at once and publishes the very same
// command, and a later repeat finds it there.
func TestWitnessedRepeatDoesTheActionAtOnce(t *testing.T) {
	t.Parallel()
	idem, pub, _ := witnessed(t)
	ctx := context.Background()
	first := charge.NewID("ch")
	pub.failWith(errors.Join(ingest.ErrOutcomeUnknown, charge.ErrUnavailable))
	_, err := idem.Submit(ctx, request("w2", `{"a":1}`), ingest.Response{Status: 202, Body: []byte("first")}, ingest.NewAction(ingest.KindCommand, cmd(first)))
	require.ErrorIs(t, err, charge.ErrUnavailable)

	resp, err := idem.Submit(ctx, request("w2", `{"a":1}`), ingest.Response{Status: 202, Body: []byte("second")}, ingest.NewAction(ingest.KindCommand, cmd(charge.NewID("ch"))))
	require.NoError(t, err, "no 409 while the first's outcome is unknown")
	require.True(t, resp.Replayed)
	require.Equal(t, "first", string(resp.Body))
	require.Equal(t, []string{first}, pub.published)

	resp, err = idem.Submit(ctx, request("w2", `{"a":1}`), ingest.Response{Status: 202, Body: []byte("third")}, ingest.NewAction(ingest.KindCommand, cmd(charge.NewID("ch"))))
	require.NoError(t, err)
	require.Equal(t, "first", string(resp.Body))
	require.Equal(t, []string{first}, pub.published, "found by its witness, not published again")

	_, err = idem.Submit(ctx, request("w2", `{"a":2}`), ingest.Response{Status: 202, Body: []byte("other")}, ingest.NewAction(ingest.KindCommand, cmd(charge.NewID("ch"))))
	var reused *ingest.KeyReusedError
	require.ErrorAs(t, err, &reused, "another request with the key is still refused")
}

// bucketRevisions is the number of writes the idempotency bucket of the NATS server at
// url has taken: its stream's last sequence.
func bucketRevisions(t *testing.T, url string) uint64 {
	t.Helper()
	nc, err := nats.Connect(url)
	require.NoError(t, err)
	defer nc.Close()
	js, err := jetstream.New(nc)
	require.NoError(t, err)
	st, err := js.Stream(context.Background(), "KV_"+queue.BucketIdempotency)
	require.NoError(t, err)
	info, err := st.Info(context.Background())
	require.NoError(t, err)
	return info.State.LastSeq
}

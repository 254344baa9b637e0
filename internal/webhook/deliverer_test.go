package webhook_test

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/stretchr/testify/require"

	"github.com/billing/billing/internal/webhook"
)

// memStore is the part of webhook.Store a delivery uses, in memory.
type memStore struct {
	webhook.Store // the rest: not called
	endpoint      webhook.Endpoint
	mu            sync.Mutex
	deliveries    chan webhook.Delivery
}

func (s *memStore) Run(context.Context, string) (int, error) { return 0, nil }
func (s *memStore) Endpoint(context.Context, string) (webhook.Endpoint, error) {
	return s.endpoint, nil
}

func (s *memStore) SetEndpointHealth(context.Context, string, *time.Time, string) error {
	return nil
}
func (s *memStore) SaveRun(context.Context, string, int) error { return nil }
func (s *memStore) InsertDelivery(_ context.Context, d webhook.Delivery) error {
	s.deliveries <- d
	return nil
}

type plainSealer struct{}

func (plainSealer) Seal(p []byte) ([]byte, error) { return p, nil }
func (plainSealer) Open(p []byte) ([]byte, error) { return p, nil }

// oneTask hands out one message, then nothing.
type oneTask struct {
	once sync.Once
	msg  *taskMsg
}

func (s *oneTask) Fetch(ctx context.Context, _ int, wait time.Duration) ([]webhook.Message, error) {
	var out []webhook.Message
	s.once.Do(func() { out = []webhook.Message{s.msg} })
	if out != nil {
		return out, nil
	}
	select {
	case <-ctx.Done():
	case <-time.After(wait):
	}
	return nil, nil
}

type taskMsg struct{ data []byte }

func (m *taskMsg) Data() []byte                                       { return m.data }
func (m *taskMsg) Subject() string                                    { return "webhooks.we_1" }
func (m *taskMsg) ID() string                                         { return "webhooks.we_1#1" }
func (m *taskMsg) Header(string) string                               { return "" }
func (m *taskMsg) Headers() map[string]string                         { return nil }
func (m *taskMsg) NumDelivered() uint64                               { return 1 }
func (m *taskMsg) Attempt() uint64                                    { return 1 }
func (m *taskMsg) Ack(context.Context) error                          { return nil }
func (m *taskMsg) NakWithDelay(time.Duration) error                   { return nil }
func (m *taskMsg) Later(context.Context, time.Duration, uint64) error { return nil }
func (m *taskMsg) Term() error                                        { return nil }
func (m *taskMsg) InProgress() error                                  { return nil }

// A delivery refused by the address guard at connection (a host that resolves to a
// forbidden address: here "localhost", registered while it resolved elsewhere) is recorded
// for the merchant as "forbidden address", without the address it resolved to; the
// worker's log has the address, for the operator.
func TestDeliveryErrorNamesNoAddress(t *testing.T) {
	t.Parallel()
	hit := make(chan struct{}, 1)
	srv := httptest.NewServer(http.HandlerFunc(func(http.ResponseWriter, *http.Request) { hit <- struct{}{} }))
	defer srv.Close()
	url := strings.Replace(srv.URL, "127.0.0.1", "localhost", 1) + "/hooks"

	secret := "whsec_" + base64.StdEncoding.EncodeToString([]byte("0123456789abcdef0123456789abcdef"))
	st := &memStore{
		endpoint: webhook.Endpoint{
			ID: "we_1", Merchant: "merchant_1", URL: url, Status: webhook.StatusEnabled,
			Secrets: []webhook.SealedSecret{{Sealed: []byte(secret)}},
		},
		deliveries: make(chan webhook.Delivery, 1),
	}
	task, err := json.Marshal(webhook.Task{Key: "k1", Merchant: "merchant_1", Endpoint: "we_1", Event: "evt_1", Body: []byte(`{}`)})
	require.NoError(t, err)
	var logs bytes.Buffer
	var logMu sync.Mutex
	logger := slog.New(slog.NewTextHandler(writerFunc(func(p []byte) (int, error) {
		logMu.Lock()
		defer logMu.Unlock()
		return logs.Write(p)
	}), &slog.HandlerOptions{Level: slog.LevelDebug}))

	d := webhook.NewDeliverer(webhook.DelivererConfig{Schedule: []time.Duration{time.Minute}, Timeout: 5 * time.Second},
		st, plainSealer{}, webhook.NewClient(&webhook.Guard{}, 5*time.Second, 4), logger, prometheus.NewRegistry(), time.Now)
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { done <- d.Run(ctx, &oneTask{msg: &taskMsg{data: task}}) }()

	var rec webhook.Delivery
	select {
	case rec = <-st.deliveries:
	case <-time.After(30 * time.Second):
		t.Fatal("no delivery attempt recorded")
	}
	cancel()
	require.NoError(t, <-done)

	require.NotNil(t, rec.Error)
	require.Equal(t, "connection refused: forbidden address", *rec.Error)
	require.Nil(t, rec.ResponseStatus)
	require.NotNil(t, rec.NextAttemptAt, "retried later")
	pub, err := json.Marshal(rec.Public())
	require.NoError(t, err)
	require.NotContains(t, string(pub), "127.0.0.1", "what the merchant is shown")
	require.NotContains(t, string(pub), "::1")

	logMu.Lock()
	defer logMu.Unlock()
	require.Contains(t, logs.String(), "level=WARN")
	require.Contains(t, logs.String(), "127.0.0.1", "the operator's log names the address")
	select {
	case <-hit:
		t.Fatal("the loopback server was reached")
	default:
	}
}

type writerFunc func([]byte) (int, error)

func (f writerFunc) Write(p []byte) (int, error) { return f(p) }

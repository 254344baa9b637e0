package queue

import (
	"context"
	"net"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"github.com/billing/billing/internal/charge"
	"github.com/billing/billing/internal/natstest"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

type testBundle struct {
	ctx    context.Context
	server *server.Server
	url    string
	conn   *Conn
}

// setup starts a server for the test and connects to it.
func setup(t *testing.T) *testBundle {
	t.Helper()
	s := natstest.Start(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	b := &testBundle{ctx: ctx, server: s, url: s.ClientURL()}
	b.conn = connect(t, b)
	return b
}

// connect opens one more connection to the bundle's server.
func connect(t *testing.T, b *testBundle) *Conn {
	t.Helper()
	c, err := Connect(b.ctx, Config{URL: b.url, Name: t.Name()}, nil)
	require.NoError(t, err)
	t.Cleanup(c.Close)
	return c
}

func streamMsgs(t *testing.T, b *testBundle, name string) uint64 {
	t.Helper()
	s, err := b.conn.js.Stream(b.ctx, name)
	require.NoError(t, err)
	info, err := s.Info(b.ctx)
	require.NoError(t, err)
	return info.State.Msgs
}

func newCommand(merchant string) charge.Command {
	id := charge.NewID(charge.PrefixCharge)
	now := time.Now().UTC().Truncate(time.Millisecond)
	return charge.Command{
		Type:       charge.CommandCreate,
		Merchant:   merchant,
		ChargeID:   id,
		AcceptedAt: now,
		Charge: &charge.Charge{
			ID:            id,
			Amount:        1000,
			Currency:      "usd",
			PaymentMethod: "pm_card_visa",
			Capture:       true,
			Status:        charge.StatusPending,
			Metadata:      map[string]string{"order": "42"},
			CreatedAt:     now,
			UpdatedAt:     now,
		},
	}
}

func TestConnect(t *testing.T) {
	t.Parallel()

	t.Run("ReadyAndIdempotentStreams", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		require.True(t, b.conn.Ready())
		require.NoError(t, b.conn.EnsureStreams(b.ctx))
		other := connect(t, b) // a second replica ensures the same streams
		require.True(t, other.Ready())

		s, err := b.conn.js.Stream(b.ctx, StreamCharges)
		require.NoError(t, err)
		cfg := s.CachedInfo().Config
		require.Equal(t, []string{"charges.>", "charges_later.>"}, cfg.Subjects)
		require.Equal(t, duplicateWindow, cfg.Duplicates)
		require.True(t, cfg.AllowDirect)
		require.True(t, cfg.AllowMsgSchedules)
	})

	t.Run("ConfigValidation", func(t *testing.T) {
		t.Parallel()
		ctx := context.Background()
		_, err := Connect(ctx, Config{}, nil)
		require.ErrorContains(t, err, "URL is required")
		_, err = Connect(ctx, Config{URL: "nats://127.0.0.1:1", Replicas: 7}, nil)
		require.ErrorContains(t, err, "Replicas")
	})

	t.Run("NoServer", func(t *testing.T) {
		t.Parallel()
		_, err := Connect(context.Background(), Config{URL: "nats://127.0.0.1:1"}, nil)
		require.ErrorIs(t, err, charge.ErrUnavailable)
	})

	t.Run("CloseTwice", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		b.conn.Close()
		require.False(t, b.conn.Ready())
		b.conn.Close()
	})
}

func TestReconnect(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	start := func(port int) *server.Server {
		s, err := natstest.StartServer(natstest.ServerOptions{Port: port, StoreDir: dir})
		require.NoError(t, err)
		t.Cleanup(func() {
			s.Shutdown()
			s.WaitForShutdown()
		})
		return s
	}
	s := start(-1)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	c, err := Connect(ctx, Config{URL: s.ClientURL()}, nil)
	require.NoError(t, err)
	t.Cleanup(c.Close)

	cmd := newCommand("acct_1")
	require.NoError(t, c.PublishCommand(ctx, cmd))

	port := s.Addr().(*net.TCPAddr).Port
	s.Shutdown()
	s.WaitForShutdown()
	require.Eventually(t, func() bool { return !c.Ready() }, 10*time.Second, 10*time.Millisecond)

	start(port)
	require.Eventually(t, c.Ready, 10*time.Second, 10*time.Millisecond)

	// The store survived the restart, and the connection works again.
	got, err := c.LookupCommand(ctx, cmd.ChargeID)
	require.NoError(t, err)
	require.Equal(t, cmd.ChargeID, got.ChargeID)
	require.NoError(t, c.PublishCommand(ctx, newCommand("acct_1")))
}

package natstest_test

import (
	"testing"

	"github.com/nats-io/nats.go"
	"github.com/stretchr/testify/require"

	"github.com/billing/billing/internal/natstest"
)

func TestNew(t *testing.T) {
	t.Parallel()
	url := natstest.New(t)
	nc, err := nats.Connect(url)
	require.NoError(t, err)
	defer nc.Close()
	require.True(t, nc.IsConnected())
}

func TestStartServer(t *testing.T) {
	t.Parallel()

	t.Run("SyncAlways", func(t *testing.T) {
		t.Parallel()
		s, err := natstest.StartServer(natstest.ServerOptions{Port: -1, StoreDir: t.TempDir(), SyncAlways: true})
		require.NoError(t, err)
		defer func() {
			s.Shutdown()
			s.WaitForShutdown()
		}()
		require.True(t, s.JetStreamEnabled())
		require.NotEmpty(t, s.ClientURL())
	})

	t.Run("StoreDirRequired", func(t *testing.T) {
		t.Parallel()
		_, err := natstest.StartServer(natstest.ServerOptions{Port: -1})
		require.ErrorContains(t, err, "StoreDir")
	})
}

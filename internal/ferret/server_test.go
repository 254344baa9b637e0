package ferret_test

import (
	"context"
	"net"
	"net/url"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/billing/billing/internal/ferret"
)

func TestStart(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	dir := t.TempDir() + "/data"

	s, err := ferret.Start(ctx, dir, "127.0.0.1:0", nil)
	require.NoError(t, err)
	require.DirExists(t, dir)
	u, err := url.Parse(s.URI())
	require.NoError(t, err)
	require.Equal(t, "mongodb", u.Scheme)

	conn, err := net.Dial("tcp", u.Host)
	require.NoError(t, err, "accepting connections once Start returns")
	require.NoError(t, conn.Close())

	cancel() // the server stops with its context
	s.Close()
	s.Close()
	_, err = net.Dial("tcp", u.Host)
	require.Error(t, err, "closed")
}

package queue

import (
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/billing/billing/internal/charge"
)

func TestKV(t *testing.T) {
	t.Parallel()

	t.Run("Lifecycle", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		kv := b.conn.Idempotency()
		const key = "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"

		_, _, err := kv.Get(b.ctx, key)
		require.ErrorIs(t, err, charge.ErrNotFound)

		rev, err := kv.Create(b.ctx, key, []byte("claim"))
		require.NoError(t, err)
		require.NotZero(t, rev)

		_, err = kv.Create(b.ctx, key, []byte("other"))
		require.ErrorIs(t, err, charge.ErrConflict)

		val, gotRev, err := kv.Get(b.ctx, key)
		require.NoError(t, err)
		require.Equal(t, []byte("claim"), val)
		require.Equal(t, rev, gotRev)

		_, err = kv.Update(b.ctx, key, []byte("done"), rev+100)
		require.ErrorIs(t, err, charge.ErrConflict)
		rev2, err := kv.Update(b.ctx, key, []byte("done"), rev)
		require.NoError(t, err)
		require.Greater(t, rev2, rev)
		_, err = kv.Update(b.ctx, key, []byte("again"), rev) // stale revision
		require.ErrorIs(t, err, charge.ErrConflict)

		require.ErrorIs(t, kv.Delete(b.ctx, key, rev), charge.ErrConflict)
		require.NoError(t, kv.Delete(b.ctx, key, rev2))
		_, _, err = kv.Get(b.ctx, key)
		require.ErrorIs(t, err, charge.ErrNotFound)
		require.ErrorIs(t, kv.Delete(b.ctx, key, rev2), charge.ErrConflict)

		// Create over the delete marker succeeds, once.
		rev3, err := kv.Create(b.ctx, key, []byte("new claim"))
		require.NoError(t, err)
		require.Greater(t, rev3, rev2)
		_, err = kv.Create(b.ctx, key, []byte("racer"))
		require.ErrorIs(t, err, charge.ErrConflict)
		val, _, err = kv.Get(b.ctx, key)
		require.NoError(t, err)
		require.Equal(t, []byte("new claim"), val)
	})

	t.Run("ConcurrentCreateOneWins", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		kv := b.conn.Idempotency()
		const key = "abc123"
		rev, err := kv.Create(b.ctx, key, []byte("first"))
		require.NoError(t, err)
		require.NoError(t, kv.Delete(b.ctx, key, rev))

		const n = 8
		errs := make(chan error, n)
		for range n {
			go func() {
				_, err := kv.Create(b.ctx, key, []byte("claim"))
				errs <- err
			}()
		}
		wins := 0
		for range n {
			err := <-errs
			if err == nil {
				wins++
				continue
			}
			require.ErrorIs(t, err, charge.ErrConflict)
		}
		require.Equal(t, 1, wins)
	})

	t.Run("InvalidKey", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		kv := b.conn.Idempotency()
		for _, key := range []string{"", "a.b", "a*", "a b", ">"} {
			_, err := kv.Create(b.ctx, key, nil)
			require.ErrorIs(t, err, ErrInvalid, "key %q", key)
			_, _, err = kv.Get(b.ctx, key)
			require.ErrorIs(t, err, charge.ErrNotFound, "key %q", key)
			_, err = kv.Update(b.ctx, key, nil, 1)
			require.ErrorIs(t, err, ErrInvalid, "key %q", key)
			require.ErrorIs(t, kv.Delete(b.ctx, key, 1), ErrInvalid, "key %q", key)
		}
		require.ErrorIs(t, kv.Delete(b.ctx, "abc", 0), ErrInvalid)
	})
}

package service

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// The settle rate spans the samples kept, once they are half an interval apart.
func TestOpsSettleRate(t *testing.T) {
	t.Parallel()
	o := &operations{sampleEvery: 10 * time.Second}
	at := time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC)
	add := func(after time.Duration, settled uint64) {
		o.samples = append(o.samples, settleSample{at: at.Add(after), settled: settled})
	}
	_, _, ok := o.SettleRate(t.Context())
	require.False(t, ok, "no sample: measuring")
	add(0, 100)
	add(2*time.Second, 110)
	_, _, ok = o.SettleRate(t.Context())
	require.False(t, ok, "2 s apart: still measuring")
	add(10*time.Second, 150)
	perSecond, over, ok := o.SettleRate(t.Context())
	require.True(t, ok)
	require.Equal(t, 10*time.Second, over)
	require.InDelta(t, 5.0, perSecond, 1e-9)
}

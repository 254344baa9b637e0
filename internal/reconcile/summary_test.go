package reconcile_test

import (
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/billing/billing/internal/reconcile"
)

func TestSummarize(t *testing.T) {
	t.Parallel()
	at := time.Date(2026, 12, 1, 3, 0, 0, 0, time.UTC)
	rep := reconcile.Report{Charges: 40}
	for i := range 25 {
		rep.Findings = append(rep.Findings, reconcile.Finding{ChargeID: fmt.Sprintf("ch_%02d", i), Problem: "view behind its log"})
	}
	s := rep.Summarize(at, 3*time.Second, true)
	require.Equal(t, at, s.At)
	require.Equal(t, 3*time.Second, s.Took)
	require.Equal(t, 40, s.Charges)
	require.Equal(t, 25, s.Findings)
	require.True(t, s.AskedProcessor)
	require.Len(t, s.First, 20, "the first 20 only")
	require.Equal(t, "ch_00: view behind its log", s.First[0])

	require.Empty(t, reconcile.Report{Charges: 2}.Summarize(at, time.Second, false).First)
}

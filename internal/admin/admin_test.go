package admin_test

import (
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/stretchr/testify/require"

	"github.com/billing/billing/internal/admin"
)

// billing_ready follows what /readyz answers: 0 while starting, 1 once ready, 0 while a
// dependency is unavailable, 0 again once draining; the gatherer's metrics are served
// beside it.
func TestReadyIsExportedAndFollowsReadyz(t *testing.T) {
	t.Parallel()
	reg := prometheus.NewRegistry()
	reg.MustRegister(prometheus.NewCounter(prometheus.CounterOpts{Name: "billing_test_total", Help: "A metric of the process."}))
	var storeDown atomic.Bool
	h := admin.New(reg, map[string]admin.CheckFunc{
		"store": func(context.Context) error {
			if storeDown.Load() {
				return errors.New("down")
			}
			return nil
		},
	})
	get := func(path string) (int, string) {
		t.Helper()
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, path, nil))
		body, err := io.ReadAll(rec.Result().Body)
		require.NoError(t, err)
		return rec.Code, string(body)
	}
	ready := func() string {
		t.Helper()
		code, body := get("/metrics")
		require.Equal(t, http.StatusOK, code)
		require.Contains(t, body, "billing_test_total 0\n")
		for line := range strings.Lines(body) {
			if v, ok := strings.CutPrefix(line, "billing_ready "); ok {
				return strings.TrimSpace(v)
			}
		}
		t.Fatalf("no billing_ready in\n%s", body)
		return ""
	}
	steps := []struct {
		do     func()
		code   int
		readyz string
		ready  string
	}{
		{func() {}, http.StatusServiceUnavailable, "starting\n", "0"},
		{h.MarkReady, http.StatusOK, "ok\n", "1"},
		{func() { storeDown.Store(true) }, http.StatusServiceUnavailable, "store: unavailable\n", "0"},
		{func() { storeDown.Store(false) }, http.StatusOK, "ok\n", "1"},
		{h.MarkDraining, http.StatusServiceUnavailable, "draining\n", "0"},
	}
	for i, s := range steps {
		s.do()
		code, body := get("/readyz")
		require.Equal(t, s.code, code, "step %d", i)
		require.Equal(t, s.readyz, body, "step %d", i)
		require.Equal(t, s.ready, ready(), "step %d", i)
	}
}

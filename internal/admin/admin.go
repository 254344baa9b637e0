// Package admin serves a process's operations endpoints on its admin address: /livez,
// /readyz and /metrics (docs/api.md, "Operations").
package admin

import (
	"context"
	"net/http"
	"sync/atomic"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// CheckFunc reports whether one dependency works.
type CheckFunc func(ctx context.Context) error

// Handler serves the admin endpoints. It is not ready until MarkReady and stops being
// ready at MarkDraining, so that load balancers stop sending work before shutdown.
type Handler struct {
	mux      *http.ServeMux
	checks   map[string]CheckFunc
	ready    atomic.Bool
	draining atomic.Bool
}

// New returns the admin handler; checks are the dependencies /readyz asks.
func New(gatherer prometheus.Gatherer, checks map[string]CheckFunc) *Handler {
	h := &Handler{mux: http.NewServeMux(), checks: checks}
	h.mux.HandleFunc("GET /livez", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		_, _ = w.Write([]byte("ok\n"))
	})
	h.mux.HandleFunc("GET /readyz", h.readyz)
	h.mux.Handle("GET /metrics", promhttp.HandlerFor(gatherer, promhttp.HandlerOpts{}))
	return h
}

// MarkReady says start-up is done.
func (h *Handler) MarkReady() { h.ready.Store(true) }

// MarkDraining says shutdown has begun.
func (h *Handler) MarkDraining() { h.draining.Store(true) }

func (h *Handler) readyz(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	switch {
	case h.draining.Load():
		w.WriteHeader(http.StatusServiceUnavailable)
		_, _ = w.Write([]byte("draining\n"))
		return
	case !h.ready.Load():
		w.WriteHeader(http.StatusServiceUnavailable)
		_, _ = w.Write([]byte("starting\n"))
		return
	}
	for name, check := range h.checks {
		if err := check(r.Context()); err != nil {
			w.WriteHeader(http.StatusServiceUnavailable)
			_, _ = w.Write([]byte(name + ": unavailable\n"))
			return
		}
	}
	_, _ = w.Write([]byte("ok\n"))
}

// ServeHTTP serves the admin endpoints.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) { h.mux.ServeHTTP(w, r) }

// Package admin serves a process's operations endpoints on its admin address: /livez,
// /readyz and /metrics (docs/api.md, "Operations").
package admin

import (
	"context"
	"net/http"
	"sync/atomic"
	"time"

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

// readyTimeout bounds the checks behind one scrape of billing_ready.
const readyTimeout = 5 * time.Second

// New returns the admin handler; checks are the dependencies /readyz asks. /metrics serves
// gatherer's metrics and billing_ready, what /readyz would answer, for alerts to watch.
func New(gatherer prometheus.Gatherer, checks map[string]CheckFunc) *Handler {
	h := &Handler{mux: http.NewServeMux(), checks: checks}
	own := prometheus.NewRegistry()
	own.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "billing_ready", Help: "1 while /readyz answers ok; 0 while starting, draining or a dependency (NATS, the store) is unavailable.",
	}, func() float64 {
		ctx, cancel := context.WithTimeout(context.Background(), readyTimeout)
		defer cancel()
		if h.state(ctx) != "ok" {
			return 0
		}
		return 1
	}))
	h.mux.HandleFunc("GET /livez", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		_, _ = w.Write([]byte("ok\n"))
	})
	h.mux.HandleFunc("GET /readyz", h.readyz)
	h.mux.Handle("GET /metrics", promhttp.HandlerFor(prometheus.Gatherers{gatherer, own}, promhttp.HandlerOpts{}))
	return h
}

// MarkReady says start-up is done.
func (h *Handler) MarkReady() { h.ready.Store(true) }

// MarkDraining says shutdown has begun.
func (h *Handler) MarkDraining() { h.draining.Store(true) }

func (h *Handler) readyz(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	state := h.state(r.Context())
	if state != "ok" {
		w.WriteHeader(http.StatusServiceUnavailable)
	}
	_, _ = w.Write([]byte(state + "\n"))
}

// state is what /readyz answers: ok, or why not.
func (h *Handler) state(ctx context.Context) string {
	switch {
	case h.draining.Load():
		return "draining"
	case !h.ready.Load():
		return "starting"
	}
	for name, check := range h.checks {
		if err := check(ctx); err != nil {
			return name + ": unavailable"
		}
	}
	return "ok"
}

// ServeHTTP serves the admin endpoints.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) { h.mux.ServeHTTP(w, r) }

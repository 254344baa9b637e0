// Package api is the merchants' HTTP API: the Gin engine, one file of handlers per
// resource, authentication and rate-limit middleware, request decoding, and the one
// mapping of errors to problem details. It is the only package that imports Gin.
package api

import (
	"log/slog"
	"net/http"

	"github.com/gin-gonic/gin"
	"github.com/prometheus/client_golang/prometheus"
	"go.opentelemetry.io/otel/trace"

	"github.com/billing/billing/internal/charge"
	"github.com/billing/billing/internal/ingest"
	"github.com/billing/billing/internal/telemetry"
	"github.com/billing/billing/internal/webhook"
)

// Config is the API's own configuration.
type Config struct {
	// RateLimit is requests per second per merchant; RateBurst the bucket size.
	RateLimit float64
	RateBurst int
}

// Deps are what the API serves from.
type Deps struct {
	Logger   *slog.Logger
	Verifier Verifier
	Charges  *ingest.Charges
	Refunds  *ingest.Refunds
	Balances *ingest.Balances
	Webhooks *webhook.Endpoints
	// Idempotency runs the POSTs of webhook endpoints and events (charges and refunds hold
	// their own).
	Idempotency *ingest.Idempotency
	Registerer  prometheus.Registerer
	NowFunc     charge.TimeNow

	// TracerProvider traces each request (trace.go). Nil: no tracing, at no cost.
	TracerProvider trace.TracerProvider
}

// Server serves the API.
type Server struct {
	logger      *slog.Logger
	verifier    Verifier
	charges     *ingest.Charges
	refunds     *ingest.Refunds
	balances    *ingest.Balances
	webhooks    *webhook.Endpoints
	idempotency *ingest.Idempotency
	limiter     *limiter
	metrics     *metrics
	now         charge.TimeNow
	engine      *gin.Engine
}

// New builds the API.
func New(cfg Config, d Deps) *Server {
	gin.SetMode(gin.ReleaseMode)
	s := &Server{
		logger:      d.Logger,
		verifier:    d.Verifier,
		charges:     d.Charges,
		refunds:     d.Refunds,
		balances:    d.Balances,
		webhooks:    d.Webhooks,
		idempotency: d.Idempotency,
		limiter:     newLimiter(cfg.RateLimit, cfg.RateBurst),
		metrics:     newMetrics(d.Registerer),
		now:         d.NowFunc,
	}
	e := gin.New()
	e.HandleMethodNotAllowed = true
	e.ContextWithFallback = true
	if tracer := telemetry.NewTracer(d.TracerProvider, "github.com/billing/billing/internal/api"); tracer.Enabled() {
		e.Use(traceRequests(tracer)) // off, not installed at all: requests pay nothing for it
	}
	e.Use(withRequestID, s.observe, s.recoverPanics)
	e.NoRoute(func(c *gin.Context) {
		abortProblem(c, http.StatusNotFound, charge.CodeResourceMissing, "", "Unrecognized request URL.")
	})
	e.NoMethod(func(c *gin.Context) {
		abortProblem(c, http.StatusMethodNotAllowed, "method_not_allowed", "", "This method is not allowed on this URL.")
	})

	e.GET("/v1/openapi.json", s.serveOpenAPI)
	v1 := e.Group("/v1", s.authenticate, s.rateLimit)
	write := requireScope(ScopeChargesWrite)
	read := requireScope(ScopeChargesRead)
	v1.POST("/charges", write, s.createCharge)
	v1.GET("/charges", read, s.listCharges)
	v1.GET("/charges/:id", read, s.getCharge)
	v1.POST("/charges/:id/capture", write, s.captureCharge)
	v1.POST("/charges/:id/cancel", write, s.cancelCharge)
	v1.POST("/refunds", write, s.createRefund)
	v1.GET("/refunds", read, s.listRefunds)
	v1.GET("/refunds/:id", read, s.getRefund)
	v1.GET("/balance", read, s.getBalance)

	events := requireScope(ScopeEventsRead)
	v1.GET("/events", events, s.listEvents)
	v1.GET("/events/:id", events, s.getEvent)
	manage := requireScope(ScopeWebhooksManage)
	v1.POST("/events/:id/redeliver", manage, s.redeliverEvent)
	v1.POST("/webhook_endpoints", manage, s.createEndpoint)
	v1.GET("/webhook_endpoints", manage, s.listEndpoints)
	v1.GET("/webhook_endpoints/:id", manage, s.getEndpoint)
	v1.PATCH("/webhook_endpoints/:id", manage, s.updateEndpoint)
	v1.DELETE("/webhook_endpoints/:id", manage, s.deleteEndpoint)
	v1.POST("/webhook_endpoints/:id/rotate_secret", manage, s.rotateSecret)
	v1.GET("/webhook_endpoints/:id/deliveries", manage, s.listDeliveries)
	s.engine = e
	return s
}

// Handler returns the HTTP handler of the API.
func (s *Server) Handler() http.Handler { return s.engine }

type metrics struct {
	requests   *prometheus.CounterVec
	inFlight   prometheus.Gauge
	duration   *prometheus.HistogramVec
	accepted   prometheus.Counter
	operations *prometheus.CounterVec
	replayed   prometheus.Counter
}

func newMetrics(reg prometheus.Registerer) *metrics {
	m := &metrics{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "billing_http_requests_total", Help: "API requests by method, route and status.",
		}, []string{"method", "route", "status"}),
		inFlight: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "billing_http_requests_in_flight", Help: "API requests being served, long polls included: what a drain waits for.",
		}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "billing_http_request_duration_seconds", Help: "API request latency.",
			Buckets: []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60},
		}, []string{"method", "route"}),
		accepted: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "billing_charges_accepted_total", Help: "Charges accepted (202) for the first time.",
		}),
		operations: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "billing_operations_accepted_total", Help: "Captures, cancels and refunds accepted (202) for the first time, by operation.",
		}, []string{"operation"}),
		replayed: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "billing_idempotent_replays_total", Help: "Responses replayed for a repeated idempotency key.",
		}),
	}
	reg.MustRegister(m.requests, m.inFlight, m.duration, m.accepted, m.operations, m.replayed)
	return m
}

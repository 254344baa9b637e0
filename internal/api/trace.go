package api

import (
	"context"
	"net/http"

	"github.com/gin-gonic/gin"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/propagation"
	semconv "go.opentelemetry.io/otel/semconv/v1.43.0"
	"go.opentelemetry.io/otel/trace"

	"github.com/billing/billing/internal/telemetry"
)

// traceRequests makes each request a span named by its method and route template
// ("POST /v1/charges"), the root of the trace that the command it publishes carries on
// to the worker. A caller's own trace context (traceparent) is linked, not continued: a
// merchant chooses neither our trace ids nor what we sample. Neither headers nor bodies
// go in the span, nor the query.
func traceRequests(tracer telemetry.Tracer) gin.HandlerFunc {
	return func(c *gin.Context) {
		r := c.Request
		route := c.FullPath()
		name := r.Method
		if route != "" {
			name += " " + route
		}
		var links []trace.Link
		if sc := trace.SpanContextFromContext(telemetry.Extract(context.Background(), propagation.HeaderCarrier(r.Header))); sc.IsValid() {
			links = []trace.Link{{SpanContext: sc}}
		}
		ctx, span := tracer.StartLinked(r.Context(), name, trace.SpanKindServer, links)
		defer span.End()
		c.Request = r.WithContext(ctx)
		c.Next()

		if !span.IsRecording() {
			return
		}
		scheme := "http"
		if r.TLS != nil {
			scheme = "https"
		}
		status := c.Writer.Status()
		span.SetAttributes(semconv.HTTPRequestMethodKey.String(r.Method), semconv.URLPath(r.URL.Path), semconv.URLScheme(scheme),
			semconv.HTTPResponseStatusCode(status), attribute.String("billing.request_id", requestID(c)))
		if route != "" {
			span.SetAttributes(semconv.HTTPRoute(route))
		}
		if m := merchant(c); m != "" {
			span.SetAttributes(attribute.String("billing.merchant", m))
		}
		if status >= 500 {
			span.SetStatus(codes.Error, http.StatusText(status))
		}
	}
}

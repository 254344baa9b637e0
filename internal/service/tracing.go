package service

import (
	"cmp"
	"context"
	"log/slog"
	"time"

	"go.opentelemetry.io/otel/trace"

	"github.com/billing/billing/internal/config"
	"github.com/billing/billing/internal/telemetry"
)

// WithTracerProvider traces the service with tp, which the caller owns and shuts down,
// instead of the exporter the configuration names (OTEL_EXPORTER_OTLP_ENDPOINT).
func WithTracerProvider(tp trace.TracerProvider) Option {
	return func(o *options) { o.tracerProvider = tp }
}

// flushTimeout bounds the export of the last spans at shutdown.
const flushTimeout = 5 * time.Second

// startTracing returns the tracer provider of the service named name, from opts or else
// from cfg (the no-op provider when cfg names no endpoint), and what flushes it at the end.
func startTracing(ctx context.Context, cfg config.Config, name string, logger *slog.Logger, opts []Option) (trace.TracerProvider, func(), error) {
	o := applyOptions(opts)
	if o.tracerProvider != nil {
		return o.tracerProvider, func() {}, nil
	}
	tp, shutdown, err := telemetry.Start(ctx, telemetry.Config{
		ServiceName: cmp.Or(cfg.OTelServiceName, name),
		Endpoint:    cfg.OTelEndpoint, TracesEndpoint: cfg.OTelTracesEndpoint,
	})
	if err != nil {
		return nil, nil, err
	}
	if telemetry.Enabled(tp) {
		logger.Info("exporting traces over OTLP", "service_name", cmp.Or(cfg.OTelServiceName, name))
	}
	return tp, func() {
		ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), flushTimeout)
		defer cancel()
		if err := shutdown(ctx); err != nil {
			logger.Warn("flushing traces", "error", err)
		}
	}, nil
}

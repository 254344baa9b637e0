package service_test

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/otel/attribute"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"

	"github.com/billing/billing/internal/config"
	"github.com/billing/billing/internal/service"
)

// TestTraceFromRequestToWebhook follows one charge through a system traced into memory:
// the request, its publish, the worker's command, its processor call and store writes,
// and the webhook delivery of its event are one trace, each span a child of the one
// before.
func TestTraceFromRequestToWebhook(t *testing.T) {
	exporter := tracetest.NewInMemoryExporter()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSyncer(exporter))
	t.Cleanup(func() { require.NoError(t, tp.Shutdown(context.Background())) })

	// A processor that approves everything and keeps the trace context it is sent.
	var (
		mu       sync.Mutex
		sentCtxs []string
	)
	proc := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		sentCtxs = append(sentCtxs, r.Header.Get("traceparent"))
		mu.Unlock()
		_, _ = io.WriteString(w, `{"id": "auth_1", "status": "approved"}`)
	}))
	t.Cleanup(proc.Close)
	hook := newReceiver(t, always(http.StatusOK))

	s := startSystemLogging(t, func(c *config.Config) {
		c.WebhookAllowPrivate = true
		c.Processor, c.ProcessorURL = "http", proc.URL
	}, slog.New(slog.DiscardHandler), service.WithTracerProvider(tp))
	tok := s.token("merchant_traced")
	endpointID, _ := s.endpoint(tok, hook.URL, "charge.succeeded")
	id := s.create(tok, chargeBody(1999, "pm_card_visa"))["id"].(string)
	require.Equal(t, "succeeded", s.settle(tok, id)["status"])
	waitFor(t, "the webhook delivery's span", 20*time.Second, func() bool {
		return len(named(exporter.GetSpans(), "webhook.Deliver")) > 0
	})

	spans := exporter.GetSpans()
	request := only(t, named(spans, "POST /v1/charges"))
	publish := only(t, named(spans, "send CHARGES"))
	command := only(t, withAttr(named(spans, "process charge.create"), "billing.charge_id", id))
	call := only(t, named(spans, "processor.Authorize"))
	write := only(t, withParent(named(spans, "store.InsertCharges"), command))
	events := only(t, withParent(named(spans, "send EVENTS"), command))
	delivery := only(t, named(spans, "webhook.Deliver"))

	for _, s := range []tracetest.SpanStub{publish, command, call, write, events, delivery} {
		require.Equal(t, request.SpanContext.TraceID(), s.SpanContext.TraceID(), "%s is not in the request's trace", s.Name)
	}
	require.False(t, request.Parent.IsValid(), "the request span is the root")
	require.Equal(t, trace.SpanKindServer, request.SpanKind)
	require.Contains(t, request.Attributes, attr("http.route", "/v1/charges"))
	require.Equal(t, request.SpanContext.SpanID(), publish.Parent.SpanID())
	require.Equal(t, publish.SpanContext.SpanID(), command.Parent.SpanID())
	require.True(t, command.Parent.IsRemote(), "the command continues the trace its message carries")
	require.Equal(t, command.SpanContext.SpanID(), call.Parent.SpanID())
	require.Equal(t, events.SpanContext.SpanID(), delivery.Parent.SpanID())
	require.Contains(t, delivery.Attributes, attr("billing.webhook.endpoint_id", endpointID))
	for _, kv := range delivery.Attributes {
		require.NotContains(t, kv.Value.Emit(), "127.0.0.1", "no URL in a delivery's span: %s", kv.Key)
	}

	// The processor was sent the trace context of the call's span.
	mu.Lock()
	defer mu.Unlock()
	require.Len(t, sentCtxs, 1)
	require.Equal(t, "00-"+call.SpanContext.TraceID().String()+"-"+call.SpanContext.SpanID().String()+"-01", sentCtxs[0])
}

func named(spans tracetest.SpanStubs, name string) tracetest.SpanStubs {
	var out tracetest.SpanStubs
	for _, s := range spans {
		if s.Name == name {
			out = append(out, s)
		}
	}
	return out
}

func withAttr(spans tracetest.SpanStubs, key, value string) tracetest.SpanStubs {
	var out tracetest.SpanStubs
	for _, s := range spans {
		for _, kv := range s.Attributes {
			if string(kv.Key) == key && kv.Value.Emit() == value {
				out = append(out, s)
			}
		}
	}
	return out
}

func withParent(spans tracetest.SpanStubs, parent tracetest.SpanStub) tracetest.SpanStubs {
	var out tracetest.SpanStubs
	for _, s := range spans {
		if s.Parent.SpanID() == parent.SpanContext.SpanID() {
			out = append(out, s)
		}
	}
	return out
}

func only(t *testing.T, spans tracetest.SpanStubs) tracetest.SpanStub {
	t.Helper()
	names := make([]string, len(spans))
	for i, s := range spans {
		names[i] = s.Name
	}
	require.Len(t, spans, 1, "spans: %s", strings.Join(names, ", "))
	return spans[0]
}

func attr(key, value string) attribute.KeyValue { return attribute.String(key, value) }

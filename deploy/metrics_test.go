package deploy_test

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	"github.com/stretchr/testify/require"
	"go.yaml.in/yaml/v3"

	"github.com/billing/billing/internal/auth"
	"github.com/billing/billing/internal/config"
	"github.com/billing/billing/internal/natstest"
	"github.com/billing/billing/internal/secret"
	services "github.com/billing/billing/internal/service"
	"github.com/billing/billing/internal/store"
)

const (
	dashboardFile = "grafana/billing-dashboard.json"
	alertsFile    = "prometheus/billing-alerts.yaml"
)

// targetLabels are the labels Prometheus adds to every series it scrapes (the job's, and
// the kubernetes-pods job's or a PodMonitor's); le is a histogram bucket's.
var targetLabels = []string{"namespace", "pod", "instance", "job", "le"}

// TestDashboardAndAlertsUseExportedMetrics runs an ingest and a worker (embedded NATS, a
// SQLite store), takes one charge through an authorization and a capture, scrapes both
// /metrics, and checks every metric the dashboard and the alert rules name against what
// they export: the name, the labels they select or group by, and the values they match
// (result="dead_lettered", outcome=~"transient|permanent"). A misspelt or renamed metric,
// label or value fails here instead of drawing an empty panel or never firing.
func TestDashboardAndAlertsUseExportedMetrics(t *testing.T) {
	t.Parallel()
	exported := scrapeServices(t)

	var exprs []string
	var dash any
	require.NoError(t, json.Unmarshal(readFile(t, dashboardFile), &dash), "%s is not JSON", dashboardFile)
	walkJSON(dash, func(key, s string) {
		if key == "expr" || key == "definition" {
			exprs = append(exprs, s)
		}
	})
	var rules struct {
		Groups []struct {
			Rules []struct {
				Alert string `yaml:"alert"`
				Expr  string `yaml:"expr"`
			} `yaml:"rules"`
		} `yaml:"groups"`
	}
	require.NoError(t, yaml.Unmarshal(readFile(t, alertsFile), &rules))
	for _, g := range rules.Groups {
		for _, r := range g.Rules {
			exprs = append(exprs, r.Expr)
		}
	}
	require.Greater(t, len(exprs), 20, "the dashboard's queries and the rules' expressions")

	used := map[string]bool{}
	for _, expr := range exprs {
		names := checkExpr(t, expr, exported)
		for _, n := range names {
			used[n] = true
		}
	}
	// The metrics the issue asks the operators to see (docs/operate.md) are all there.
	for _, name := range []string{
		"billing_http_requests_total", "billing_charges_accepted_total", "billing_queue_pending_commands",
		"billing_worker_settle_duration_seconds", "billing_processor_calls_total", "billing_webhook_attempts_total",
		"billing_webhook_pending_tasks", "billing_worker_given_up_commands_total",
		"billing_webhook_endpoints_disabled_total", "billing_ready",
	} {
		require.True(t, used[name], "neither the dashboard nor the alerts use %s", name)
	}
}

var (
	// selector is a metric name, with its label matchers if it has any.
	selector = regexp.MustCompile(`\b(billing_[a-z0-9_]+|up)\b(\{[^}]*\})?`)
	matcher  = regexp.MustCompile(`([a-zA-Z_][a-zA-Z0-9_]*)\s*(=~|!~|!=|=)\s*"([^"]*)"`)
	grouping = regexp.MustCompile(`\b(?:by|without)\s*\(([^)]*)\)`)
	// plainAlternatives is a regular expression matcher that only lists values.
	plainAlternatives = regexp.MustCompile(`^[a-z_.]+(\|[a-z_.]+)*$`)
)

// checkExpr checks the metrics expr names against exported and returns their families.
func checkExpr(t *testing.T, expr string, exported map[string]*dto.MetricFamily) []string {
	t.Helper()
	var families []string
	labels := map[string]bool{}
	for _, l := range targetLabels {
		labels[l] = true
	}
	for _, m := range selector.FindAllStringSubmatch(expr, -1) {
		name := m[1]
		if name == "up" { // Prometheus's own, per target
			continue
		}
		f := familyOf(name, exported)
		if f == nil {
			t.Errorf("%s is not a metric the ingest or the worker exports, in:\n%s", name, expr)
			continue
		}
		families = append(families, f.GetName())
		values := map[string][]string{}
		for _, s := range f.GetMetric() {
			for _, l := range s.GetLabel() {
				labels[l.GetName()] = true
				values[l.GetName()] = append(values[l.GetName()], l.GetValue())
			}
		}
		for _, lm := range matcher.FindAllStringSubmatch(m[2], -1) {
			label, op, value := lm[1], lm[2], lm[3]
			if slices.Contains(targetLabels, label) {
				continue
			}
			if _, ok := values[label]; !ok {
				t.Errorf("%s has no label %q, in:\n%s", name, label, expr)
				continue
			}
			var want []string
			switch {
			case op == "=" || op == "!=":
				want = []string{value}
			case plainAlternatives.MatchString(value):
				want = strings.Split(value, "|")
			}
			for _, v := range want {
				if !slices.Contains(values[label], v) {
					t.Errorf("%s never has %s=%q (it has %q), in:\n%s", name, label, v, values[label], expr)
				}
			}
		}
	}
	for _, g := range grouping.FindAllStringSubmatch(expr, -1) {
		for l := range strings.SplitSeq(g[1], ",") {
			if l = strings.TrimSpace(l); l != "" && !labels[l] {
				t.Errorf("grouping by %q, a label none of its metrics has, in:\n%s", l, expr)
			}
		}
	}
	return families
}

// familyOf returns the family a series name belongs to: itself, or the histogram whose
// _bucket, _sum or _count it is.
func familyOf(name string, exported map[string]*dto.MetricFamily) *dto.MetricFamily {
	if f, ok := exported[name]; ok && f.GetType() != dto.MetricType_HISTOGRAM {
		return f
	}
	for _, suffix := range []string{"_bucket", "_sum", "_count"} {
		if base, ok := strings.CutSuffix(name, suffix); ok {
			if f, ok := exported[base]; ok && f.GetType() == dto.MetricType_HISTOGRAM {
				return f
			}
		}
	}
	return nil
}

// walkJSON calls f with every string in v and the key it is under.
func walkJSON(v any, f func(key, s string)) {
	var walk func(key string, v any)
	walk = func(key string, v any) {
		switch v := v.(type) {
		case map[string]any:
			for k, e := range v {
				walk(k, e)
			}
		case []any:
			for _, e := range v {
				walk(key, e)
			}
		case string:
			f(key, v)
		}
	}
	walk("", v)
}

func readFile(t *testing.T, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(name)
	require.NoError(t, err)
	return b
}

// scrapeServices runs an ingest and a worker with both roles, authorizes and captures a
// charge through the API (so that the metrics labelled by route, status or operation
// have series), waits for the worker to settle it, and returns the metric families
// the two export, merged.
func scrapeServices(t *testing.T) map[string]*dto.MetricFamily {
	t.Helper()
	key, err := auth.LoadOrCreateDevKey(t.TempDir())
	require.NoError(t, err)
	cfg := config.Defaults(config.Ingest)
	cfg.HTTPAddr, cfg.AdminAddr = "127.0.0.1:0", "127.0.0.1:0"
	cfg.NATSURL = natstest.New(t)
	cfg.Store, cfg.SQLitePath = store.EngineSQLite, filepath.Join(t.TempDir(), "billing.db")
	cfg.AuthJWKSFile = key.JWKSPath()
	cfg.WebhookSecretKey = secret.NewKey()
	cfg.ShutdownTimeout = 5 * time.Second

	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	errs := make(chan error, 2)
	ready := make(chan services.Addrs, 1)
	workerAdmin := &adminAddr{addr: make(chan string, 1)}
	wg.Go(func() {
		errs <- services.RunIngest(ctx, cfg, slog.New(slog.DiscardHandler), func(a services.Addrs) { ready <- a })
	})
	wg.Go(func() { errs <- services.RunWorker(ctx, cfg, slog.New(workerAdmin)) })
	t.Cleanup(func() {
		cancel()
		wg.Wait()
		close(errs)
		for err := range errs {
			require.NoError(t, err)
		}
	})
	var ingest services.Addrs
	var worker string
	for ingest.Admin == "" || worker == "" {
		select {
		case ingest = <-ready:
		case worker = <-workerAdmin.addr:
		case err := <-errs:
			t.Fatalf("a service stopped: %v", err)
		case <-time.After(60 * time.Second):
			t.Fatal("the services did not start in 60s")
		}
	}

	client := &http.Client{Timeout: 30 * time.Second}
	token, err := key.Sign(cfg.AuthIssuer, cfg.AuthAudience, "merchant_metrics", []string{"charges:write", "charges:read"}, time.Hour, time.Now())
	require.NoError(t, err)
	call := func(method, path, idemKey, body string) (int, map[string]any) {
		t.Helper()
		req, err := http.NewRequest(method, "http://"+ingest.API+path, strings.NewReader(body))
		require.NoError(t, err)
		req.Header.Set("Authorization", "Bearer "+token)
		req.Header.Set("Content-Type", "application/json")
		if idemKey != "" {
			req.Header.Set("Idempotency-Key", idemKey)
		}
		resp, err := client.Do(req)
		require.NoError(t, err)
		defer resp.Body.Close()
		var out map[string]any
		_ = json.NewDecoder(resp.Body).Decode(&out)
		return resp.StatusCode, out
	}
	status, created := call("POST", "/v1/charges", "metrics-1", `{"amount": 1000, "currency": "usd", "payment_method": "pm_card_visa", "capture": false}`)
	require.Equal(t, http.StatusAccepted, status, "%v", created)
	id := fmt.Sprint(created["id"])
	require.Eventually(t, func() bool {
		_, c := call("GET", "/v1/charges/"+id+"?wait=5s", "", "")
		return c["status"] == "requires_capture"
	}, 60*time.Second, 10*time.Millisecond)
	status, captured := call("POST", "/v1/charges/"+id+"/capture", "metrics-2", `{}`)
	require.Equal(t, http.StatusAccepted, status, "%v", captured)
	require.Eventually(t, func() bool {
		_, c := call("GET", "/v1/charges/"+id+"?wait=5s", "", "")
		return c["status"] == "succeeded"
	}, 60*time.Second, 10*time.Millisecond)

	exported := map[string]*dto.MetricFamily{}
	for _, addr := range []string{ingest.Admin, worker} {
		resp, err := client.Get("http://" + addr + "/metrics")
		require.NoError(t, err)
		parser := expfmt.NewTextParser(model.UTF8Validation)
		families, err := parser.TextToMetricFamilies(resp.Body)
		resp.Body.Close()
		require.NoError(t, err)
		for name, f := range families {
			if old, ok := exported[name]; ok {
				old.Metric = append(old.Metric, f.Metric...)
				continue
			}
			exported[name] = f
		}
	}
	require.Contains(t, exported, "billing_ready")
	return exported
}

// adminAddr is a log handler that discards the worker's log but for the address its
// admin server listens on ("admin listening", internal/service/service.go): the worker,
// unlike the ingest, reports its addresses nowhere else.
type adminAddr struct{ addr chan string }

func (h *adminAddr) Enabled(context.Context, slog.Level) bool { return true }
func (h *adminAddr) WithAttrs([]slog.Attr) slog.Handler       { return h }
func (h *adminAddr) WithGroup(string) slog.Handler            { return h }
func (h *adminAddr) Handle(_ context.Context, r slog.Record) error {
	if r.Message == "admin listening" {
		r.Attrs(func(a slog.Attr) bool {
			if a.Key == "addr" {
				h.addr <- a.Value.String()
			}
			return true
		})
	}
	return nil
}

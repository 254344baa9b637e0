package dashboard

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"time"

	"github.com/billing/billing/internal/charge"
	"github.com/billing/billing/internal/reconcile"
	"github.com/billing/billing/internal/webhook"
)

// Operations is what the operator pages read and do: the queue's backlog and the dead
// letters, with replay. The service implements it over the queue and the store.
type Operations interface {
	// Backlog is the commands waiting for a worker or in a worker's hands (the lag,
	// billing_queue_pending_commands) and those handed back to wait.
	Backlog(ctx context.Context) (pending, waiting uint64, err error)
	// DeadLetters returns up to limit dead letters, by id.
	DeadLetters(ctx context.Context, limit int) ([]charge.DeadLetter, error)
	// ReplayDeadLetter publishes a dead letter's message again and removes it.
	ReplayDeadLetter(ctx context.Context, id string) error
	// SettleRate is the commands settled per second, over the span given; ok is false
	// while it is still measuring. It is read from memory: the ingest samples it.
	SettleRate(ctx context.Context) (perSecond float64, over time.Duration, ok bool)
	// DisabledEndpoints returns up to limit disabled webhook endpoints of every merchant,
	// newest first.
	DisabledEndpoints(ctx context.Context, limit int) ([]webhook.Endpoint, error)
	// Reconciliation is the summary `worker reconcile` recorded last, nil if none has.
	Reconciliation(ctx context.Context) (*reconcile.Summary, error)
}

// opsView is the operator page.
type opsView struct {
	Pending, Waiting uint64
	BacklogError     string
	// Settling is the settle rate, nil while it is measuring.
	Settling          *settleRate
	DeadLetters       []charge.DeadLetter
	DisabledEndpoints []disabledEndpoint
	// Reconciliation is nil when `worker reconcile` never ran; ReconciliationError says
	// that its summary could not be read.
	Reconciliation      *reconcile.Summary
	ReconciliationError string
	CanWrite            bool
}

// settleRate is the commands settled per second, over a span.
type settleRate struct {
	PerSecond string
	Over      time.Duration
}

// disabledEndpoint is a row of the disabled endpoints: the URL's host only, since the
// rest of a URL may hold a token.
type disabledEndpoint struct {
	ID, Merchant, Host, Reason string
	// Since is when the failures that disabled it began or, disabled by its merchant,
	// when it was last edited.
	Since time.Time
}

func newDisabledEndpoint(e webhook.Endpoint) disabledEndpoint {
	d := disabledEndpoint{ID: e.ID, Merchant: e.Merchant, Reason: e.DisabledReason, Since: e.UpdatedAt}
	if u, err := url.Parse(e.URL); err == nil {
		d.Host = u.Host
	}
	if e.FailingSince != nil {
		d.Since = *e.FailingSince
	}
	if d.Reason == "" {
		d.Reason = "disabled by the merchant"
	}
	return d
}

// ops is the operator page: queue backlog and settle rate, dead letters, disabled webhook
// endpoints and the last reconciliation (scope ops:read; replay needs ops:write).
//
// Store queries: DeadLetters (the dead_letters table, at most 100 rows; it holds only
// messages given up on), DisabledEndpoints (at most 100, by the index of disabled
// endpoints). NATS: the command consumer's and the CHARGES stream's info, one key of the
// REPORTS bucket. The settle rate is read from the ingest's memory.
func (s *Dashboard) ops(w http.ResponseWriter, r *http.Request, sess *session) {
	if s.Operations == nil {
		s.render(w, r, http.StatusNotFound, "notfound", sess, &view{Title: "Not found"})
		return
	}
	v := opsView{CanWrite: sess.Has("ops:write")}
	var err error
	if v.Pending, v.Waiting, err = s.Operations.Backlog(r.Context()); err != nil {
		v.BacklogError = "The queue cannot be read right now."
	}
	if perSecond, over, ok := s.Operations.SettleRate(r.Context()); ok {
		v.Settling = &settleRate{PerSecond: fmt.Sprintf("%.2f", perSecond), Over: over.Round(time.Second)}
	}
	if v.DeadLetters, err = s.Operations.DeadLetters(r.Context(), 100); err != nil {
		s.fail(w, r, sess, err)
		return
	}
	disabled, err := s.Operations.DisabledEndpoints(r.Context(), 100)
	if err != nil {
		s.fail(w, r, sess, err)
		return
	}
	for _, e := range disabled {
		v.DisabledEndpoints = append(v.DisabledEndpoints, newDisabledEndpoint(e))
	}
	if v.Reconciliation, err = s.Operations.Reconciliation(r.Context()); err != nil {
		v.ReconciliationError = "The last reconciliation's summary cannot be read right now."
	}
	s.render(w, r, http.StatusOK, "ops", sess, &view{Title: "Operations", Data: v, Notice: notice(r.URL.Query())})
}

// replayDeadLetter replays one dead letter; replaying one already replayed finds it
// gone (404), so a double submit does nothing twice.
func (s *Dashboard) replayDeadLetter(w http.ResponseWriter, r *http.Request, sess *session) {
	if s.Operations == nil {
		s.fail(w, r, sess, charge.ErrNotFound)
		return
	}
	if err := s.Operations.ReplayDeadLetter(r.Context(), r.PostFormValue("id")); err != nil {
		s.fail(w, r, sess, err)
		return
	}
	http.Redirect(w, r, Prefix+"/ops?done=replay", http.StatusSeeOther)
}

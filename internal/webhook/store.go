package webhook

import (
	"context"
	"time"

	"github.com/billing/billing/internal/charge"
)

// Store is where endpoints, delivery runs and delivery records live. Every lookup of a
// single document is by id; merchant scoping is checked on what is read.
type Store interface {
	// InsertEndpoint stores a new endpoint; an endpoint with the same id already stored is
	// left as it is and is not an error (the create is idempotent by id).
	InsertEndpoint(ctx context.Context, e Endpoint) error
	// Endpoint returns an endpoint by id, whoever its merchant; charge.ErrNotFound if none.
	Endpoint(ctx context.Context, id string) (Endpoint, error)
	// ListEndpoints returns a page of merchant's endpoints, newest first.
	ListEndpoints(ctx context.Context, merchant string, limit int, startingAfter string) ([]Endpoint, bool, error)
	// EnabledEndpoints returns the enabled endpoints of each of the merchants.
	EnabledEndpoints(ctx context.Context, merchants []string) (map[string][]Endpoint, error)
	// SaveEndpoint writes what a merchant edits of e (url, enabled_events, description,
	// status, updated_at, version) by id; re-enabling clears the recorded failures.
	SaveEndpoint(ctx context.Context, e Endpoint) error
	// SetEndpointSecrets writes an endpoint's secrets by id, and nothing else.
	SetEndpointSecrets(ctx context.Context, id string, secrets []SealedSecret, updatedAt time.Time) error
	// SetEndpointHealth records the health of an endpoint by id: when its current run of
	// failures began (nil: it answers), and, if disabledReason is not empty, that the
	// system disabled it. It touches no other field, so it never undoes a merchant's edit.
	SetEndpointHealth(ctx context.Context, id string, failingSince *time.Time, disabledReason string) error
	// DeleteEndpoint removes an endpoint by id; charge.ErrNotFound if none.
	DeleteEndpoint(ctx context.Context, id string) error

	// Run returns how many attempts the run with the given key has made; 0 if none.
	Run(ctx context.Context, key string) (int, error)
	// SaveRun records that the run with the given key has made attempts attempts.
	SaveRun(ctx context.Context, key string, attempts int) error
	// InsertDelivery records one attempt.
	InsertDelivery(ctx context.Context, d Delivery) error
	// ListDeliveries returns a page of an endpoint's delivery attempts, newest first.
	ListDeliveries(ctx context.Context, endpoint string, limit int, startingAfter string) ([]Delivery, bool, error)

	// GetEvent returns merchant's event id (charge.ErrNotFound if none, or another's).
	GetEvent(ctx context.Context, merchant, id string) (charge.Event, error)
	// ListEvents returns a page of merchant's events, newest first, of one type if set.
	ListEvents(ctx context.Context, merchant, eventType string, limit int, startingAfter string) ([]charge.Event, bool, error)
	// DeleteBefore removes events and delivery records created before t (retention).
	DeleteBefore(ctx context.Context, t time.Time) (int64, error)

	// InsertDeadLetters records messages given up on (an undecodable event or task).
	InsertDeadLetters(ctx context.Context, ds []charge.DeadLetter) error
}

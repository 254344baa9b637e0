// Package webhook is the webhook side of the system: endpoints and their secrets, the
// fan-out of events to subscribed endpoints, signed delivery with retries on a schedule,
// and the address guard that keeps deliveries off private networks. It declares the
// small interfaces it needs; the store and queue adapters implement them.
package webhook

import (
	"slices"
	"time"

	"github.com/billing/billing/internal/charge"
)

// EndpointStatus is whether an endpoint receives deliveries.
type EndpointStatus string

// The endpoint statuses.
const (
	StatusEnabled  EndpointStatus = "enabled"
	StatusDisabled EndpointStatus = "disabled"
)

// ObjectEndpoint is the object name of a webhook endpoint.
const ObjectEndpoint = "webhook_endpoint"

// AllEvents subscribes an endpoint to every event type.
const AllEvents = "*"

// EventTypes are the event types an endpoint may subscribe to.
var EventTypes = []string{
	charge.EventChargeSucceeded, charge.EventChargeFailed, charge.EventChargeAuthorized,
	charge.EventChargeCaptured, charge.EventChargeCanceled, charge.EventChargeRefunded,
	charge.EventRefundFailed,
}

// Endpoint is a merchant's webhook endpoint. Secrets are held sealed (encrypted with the
// operator's key); the plain secret is shown only on creation and rotation.
type Endpoint struct {
	ID            string         `json:"id"`
	Object        string         `json:"object"`
	Merchant      string         `json:"-"`
	URL           string         `json:"url"`
	EnabledEvents []string       `json:"enabled_events"`
	Description   *string        `json:"description"`
	Status        EndpointStatus `json:"status"`
	// Secret is the plain secret, set only in the answers to create and rotate.
	Secret    string    `json:"secret,omitempty"`
	CreatedAt time.Time `json:"created_at"`
	UpdatedAt time.Time `json:"updated_at"`

	// Secrets are the signing secrets, newest first, sealed. An older one signs too
	// until its ExpiresAt (24 hours after a rotation).
	Secrets []SealedSecret `json:"-"`
	// Version increases with every change a merchant makes (create, edit, rotation).
	Version int64 `json:"-"`
	// FailingSince is when the current run of failed deliveries began; nil while the
	// endpoint answers.
	FailingSince *time.Time `json:"-"`
	// DisabledReason says why the system disabled the endpoint, if it did.
	DisabledReason string `json:"-"`
}

// SealedSecret is a signing secret encrypted at rest.
type SealedSecret struct {
	Sealed    []byte
	CreatedAt time.Time
	ExpiresAt *time.Time
}

// Public returns e ready to be shown to its merchant.
func (e Endpoint) Public() Endpoint {
	e.Object = ObjectEndpoint
	e.CreatedAt = e.CreatedAt.UTC()
	e.UpdatedAt = e.UpdatedAt.UTC()
	if e.EnabledEvents == nil {
		e.EnabledEvents = []string{}
	}
	return e
}

// Subscribes reports whether e wants events of type t.
func (e Endpoint) Subscribes(t string) bool {
	return slices.Contains(e.EnabledEvents, AllEvents) || slices.Contains(e.EnabledEvents, t)
}

// ActiveSecrets returns the sealed secrets that sign a delivery at now.
func (e Endpoint) ActiveSecrets(now time.Time) [][]byte {
	var out [][]byte
	for _, s := range e.Secrets {
		if s.ExpiresAt == nil || now.Before(*s.ExpiresAt) {
			out = append(out, s.Sealed)
		}
	}
	return out
}

// ObjectDelivery is the object name of a delivery attempt.
const ObjectDelivery = "webhook_delivery"

// Delivery records one attempt to deliver an event to an endpoint.
type Delivery struct {
	ID             string     `json:"id"`
	Object         string     `json:"object"`
	Merchant       string     `json:"-"`
	Endpoint       string     `json:"endpoint"`
	Event          string     `json:"event"`
	Attempt        int        `json:"attempt"`
	ResponseStatus *int       `json:"response_status"`
	DurationMS     int64      `json:"duration_ms"`
	Error          *string    `json:"error"`
	NextAttemptAt  *time.Time `json:"next_attempt_at"`
	CreatedAt      time.Time  `json:"created_at"`
	// Key identifies the run of attempts this one belongs to: the event and endpoint, and
	// for a redelivery the redelivery's id. Attempts are counted per key.
	Key string `json:"-"`
}

// Public returns d ready to be shown to its merchant.
func (d Delivery) Public() Delivery {
	d.Object = ObjectDelivery
	d.CreatedAt = d.CreatedAt.UTC()
	if d.NextAttemptAt != nil {
		t := d.NextAttemptAt.UTC()
		d.NextAttemptAt = &t
	}
	return d
}

// Task is one delivery job on the WEBHOOKS stream: an event to send to an endpoint, with
// the exact body every attempt sends.
type Task struct {
	Key      string `json:"key"`
	Merchant string `json:"merchant"`
	Endpoint string `json:"endpoint"`
	Event    string `json:"event"`
	Body     []byte `json:"body"`
}

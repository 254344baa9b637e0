package webhook

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"time"
	"unicode/utf8"

	"github.com/billing/billing/internal/charge"
	"github.com/billing/billing/webhooksig"
)

// Sealer encrypts secrets at rest.
type Sealer interface {
	Seal(plaintext []byte) ([]byte, error)
	Open(sealed []byte) ([]byte, error)
}

// TaskPublisher puts delivery tasks on the queue.
type TaskPublisher interface {
	PublishTasks(ctx context.Context, ts []Task) error
}

// RotationOverlap is how long the old secret keeps signing after a rotation.
const RotationOverlap = 24 * time.Hour

// The kinds of the idempotent actions of this package (see ingest.Action).
const (
	ActionCreate    = "webhook_endpoint.create"
	ActionRotate    = "webhook_endpoint.rotate"
	ActionRedeliver = "event.redeliver"
)

// maxDescriptionLen bounds an endpoint's description.
const maxDescriptionLen = 1000

// EndpointParams is the body of creating (url and enabled_events required) or updating an
// endpoint. Nil fields are absent.
type EndpointParams struct {
	URL           *string   `json:"url"`
	EnabledEvents *[]string `json:"enabled_events"`
	Description   *string   `json:"description"`
	Status        *string   `json:"status"`
}

// Endpoints manages merchants' webhook endpoints and events.
type Endpoints struct {
	Store     Store
	Sealer    Sealer
	Guard     *Guard
	Tasks     TaskPublisher
	NowFunc   charge.TimeNow
	Retention time.Duration
}

// validate checks p; create says whether url and enabled_events are required and status
// forbidden.
func (s *Endpoints) validate(ctx context.Context, p *EndpointParams, create bool) *charge.InvalidRequestError {
	switch {
	case create && p.URL == nil:
		return charge.Invalid(charge.CodeParameterMissing, "url", "url is required")
	case create && p.EnabledEvents == nil:
		return charge.Invalid(charge.CodeParameterMissing, "enabled_events", "enabled_events is required")
	case create && p.Status != nil:
		return charge.Invalid(charge.CodeParameterUnknown, "status", "status cannot be set on creation")
	}
	if p.URL != nil {
		// Checked before the guard: it finds a URL with C0 controls unparsable (url_invalid,
		// not naming the cause) and lets C1 controls (U+0080-U+009F) through.
		if charge.ContainsControl(*p.URL) {
			return charge.Invalid(charge.CodeParameterInvalid, "url", "url must not hold control characters")
		}
		err := s.Guard.CheckURL(ctx, *p.URL)
		switch {
		case errors.Is(err, ErrURLForbidden):
			return charge.Invalid(charge.CodeURLForbidden, "url", "url must not resolve to a private, loopback, link-local or metadata address")
		case err != nil:
			return charge.Invalid(charge.CodeURLInvalid, "url", "url must be an absolute http or https URL whose host resolves")
		}
	}
	if p.EnabledEvents != nil {
		events := *p.EnabledEvents
		if len(events) == 0 {
			return charge.Invalid(charge.CodeParameterInvalid, "enabled_events", "enabled_events must list at least one event type, or \"*\"")
		}
		for _, t := range events {
			if t != AllEvents && !slices.Contains(EventTypes, t) {
				return charge.Invalid(charge.CodeParameterInvalid, "enabled_events", "unknown event type %q", t)
			}
		}
	}
	if p.Description != nil && utf8.RuneCountInString(*p.Description) > maxDescriptionLen {
		return charge.Invalid(charge.CodeParameterInvalid, "description", "description must be at most %d characters", maxDescriptionLen)
	}
	if p.Status != nil && *p.Status != string(StatusEnabled) && *p.Status != string(StatusDisabled) {
		return charge.Invalid(charge.CodeParameterInvalid, "status", "status must be enabled or disabled")
	}
	return nil
}

// newSecret returns a fresh "whsec_…" secret and its sealed form.
func (s *Endpoints) newSecret(now time.Time) (string, SealedSecret, error) {
	raw := make([]byte, 32)
	if _, err := rand.Read(raw); err != nil {
		return "", SealedSecret{}, err
	}
	plain := webhooksig.SecretPrefix + base64.StdEncoding.EncodeToString(raw)
	sealed, err := s.Sealer.Seal([]byte(plain))
	if err != nil {
		return "", SealedSecret{}, fmt.Errorf("sealing secret: %w", err)
	}
	return plain, SealedSecret{Sealed: sealed, CreatedAt: now}, nil
}

// PrepareCreate validates p and returns the endpoint to create, its plain secret set for
// the answer, and the idempotent action that stores it (with the secret sealed).
func (s *Endpoints) PrepareCreate(ctx context.Context, merchant string, p *EndpointParams) (Endpoint, json.RawMessage, error) {
	if invalid := s.validate(ctx, p, true); invalid != nil {
		return Endpoint{}, nil, invalid
	}
	now := s.NowFunc().UTC().Truncate(time.Millisecond)
	plain, sealed, err := s.newSecret(now)
	if err != nil {
		return Endpoint{}, nil, err
	}
	e := Endpoint{
		ID: charge.NewID(charge.PrefixWebhookEndpoint), Merchant: merchant, URL: *p.URL,
		EnabledEvents: *p.EnabledEvents, Description: p.Description, Status: StatusEnabled,
		Secrets: []SealedSecret{sealed}, CreatedAt: now, UpdatedAt: now, Version: 1,
	}
	payload, err := endpointPayload(e)
	if err != nil {
		return Endpoint{}, nil, err
	}
	e.Secret = plain
	return e, payload, nil
}

// ExecuteCreate is the action of ActionCreate.
func (s *Endpoints) ExecuteCreate(ctx context.Context, payload json.RawMessage) error {
	var e storedEndpoint
	if err := json.Unmarshal(payload, &e); err != nil {
		return fmt.Errorf("decoding endpoint: %w", err)
	}
	return s.Store.InsertEndpoint(ctx, e.endpoint())
}

// storedEndpoint carries the fields of an Endpoint that its public JSON hides, for the
// payload of an action.
type storedEndpoint struct {
	Endpoint
	Merchant string         `json:"merchant"`
	Secrets  []SealedSecret `json:"secrets"`
	Version  int64          `json:"version"`
}

func (e storedEndpoint) endpoint() Endpoint {
	out := e.Endpoint
	out.Merchant, out.Secrets, out.Version = e.Merchant, e.Secrets, e.Version
	return out
}

// endpointPayload encodes e for an action payload, with the fields its public JSON hides
// and without the plain secret.
func endpointPayload(e Endpoint) ([]byte, error) {
	e.Secret = ""
	return json.Marshal(storedEndpoint{Endpoint: e, Merchant: e.Merchant, Secrets: e.Secrets, Version: e.Version})
}

// Get returns merchant's endpoint id.
func (s *Endpoints) Get(ctx context.Context, merchant, id string) (Endpoint, error) {
	if !charge.ValidID(charge.PrefixWebhookEndpoint, id) {
		return Endpoint{}, charge.ErrNotFound
	}
	e, err := s.Store.Endpoint(ctx, id)
	if err != nil {
		return Endpoint{}, err
	}
	if e.Merchant != merchant {
		return Endpoint{}, charge.ErrNotFound
	}
	return e, nil
}

// List returns a page of merchant's endpoints.
func (s *Endpoints) List(ctx context.Context, merchant string, limit int, startingAfter string) ([]Endpoint, bool, error) {
	return s.Store.ListEndpoints(ctx, merchant, limit, startingAfter)
}

// Update applies p to merchant's endpoint id.
func (s *Endpoints) Update(ctx context.Context, merchant, id string, p *EndpointParams) (Endpoint, error) {
	e, err := s.Get(ctx, merchant, id)
	if err != nil {
		return Endpoint{}, err
	}
	if invalid := s.validate(ctx, p, false); invalid != nil {
		return Endpoint{}, invalid
	}
	if p.URL != nil {
		e.URL = *p.URL
	}
	if p.EnabledEvents != nil {
		e.EnabledEvents = *p.EnabledEvents
	}
	if p.Description != nil {
		e.Description = p.Description
	}
	if p.Status != nil {
		e.Status = EndpointStatus(*p.Status)
		if e.Status == StatusEnabled {
			e.FailingSince, e.DisabledReason = nil, "" // SaveEndpoint clears them too
		}
	}
	e.UpdatedAt = s.NowFunc().UTC().Truncate(time.Millisecond)
	e.Version++
	if err := s.Store.SaveEndpoint(ctx, e); err != nil {
		return Endpoint{}, err
	}
	return e, nil
}

// Delete removes merchant's endpoint id.
func (s *Endpoints) Delete(ctx context.Context, merchant, id string) error {
	if _, err := s.Get(ctx, merchant, id); err != nil {
		return err
	}
	return s.Store.DeleteEndpoint(ctx, id)
}

// rotation is the payload of ActionRotate: the new sealed secret, first in the list.
type rotation struct {
	Endpoint string       `json:"endpoint"`
	Secret   SealedSecret `json:"secret"`
}

// PrepareRotate returns merchant's endpoint id with a new plain secret for the answer, and
// the idempotent action that makes it the signing secret, the old one signing too for
// RotationOverlap.
func (s *Endpoints) PrepareRotate(ctx context.Context, merchant, id string) (Endpoint, json.RawMessage, error) {
	e, err := s.Get(ctx, merchant, id)
	if err != nil {
		return Endpoint{}, nil, err
	}
	now := s.NowFunc().UTC().Truncate(time.Millisecond)
	plain, sealed, err := s.newSecret(now)
	if err != nil {
		return Endpoint{}, nil, err
	}
	payload, err := json.Marshal(rotation{Endpoint: id, Secret: sealed})
	if err != nil {
		return Endpoint{}, nil, err
	}
	e = rotate(e, sealed, now)
	e.Secret = plain
	return e, payload, nil
}

// rotate puts secret first; the secrets that were active keep signing until now plus the
// overlap, and the expired ones are dropped.
func rotate(e Endpoint, secret SealedSecret, now time.Time) Endpoint {
	expires := now.Add(RotationOverlap)
	kept := []SealedSecret{secret}
	for _, old := range e.Secrets {
		if old.ExpiresAt != nil && !now.Before(*old.ExpiresAt) {
			continue
		}
		if old.ExpiresAt == nil || old.ExpiresAt.After(expires) {
			old.ExpiresAt = &expires
		}
		kept = append(kept, old)
	}
	e.Secrets = kept
	e.UpdatedAt = now
	e.Version++
	return e
}

// ExecuteRotate is the action of ActionRotate. Done twice, it changes nothing the second
// time: the new secret is already first.
func (s *Endpoints) ExecuteRotate(ctx context.Context, payload json.RawMessage) error {
	var r rotation
	if err := json.Unmarshal(payload, &r); err != nil {
		return fmt.Errorf("decoding rotation: %w", err)
	}
	e, err := s.Store.Endpoint(ctx, r.Endpoint)
	if err != nil {
		return err
	}
	for _, old := range e.Secrets {
		if string(old.Sealed) == string(r.Secret.Sealed) {
			return nil // done already (a takeover repeating it, or a later rotation since)
		}
	}
	rotated := rotate(e, r.Secret, r.Secret.CreatedAt)
	if err := s.Store.SetEndpointSecrets(ctx, e.ID, rotated.Secrets, rotated.UpdatedAt); err != nil {
		return err
	}
	// The answer gives the new secret, and the merchant may verify with it at once: wait
	// until no deliverer can still sign with the endpoint as it read it before (its cache
	// keeps an endpoint endpointTTL), so that every delivery after the answer carries the
	// new secret's signature too.
	select {
	case <-time.After(endpointTTL):
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// GetEvent returns merchant's event id, if it is within the retention.
func (s *Endpoints) GetEvent(ctx context.Context, merchant, id string) (charge.Event, error) {
	if !charge.ValidID(charge.PrefixEvent, id) {
		return charge.Event{}, charge.ErrNotFound
	}
	e, err := s.Store.GetEvent(ctx, merchant, id)
	if err != nil {
		return charge.Event{}, err
	}
	if e.CreatedAt.Before(s.NowFunc().Add(-s.Retention)) {
		return charge.Event{}, charge.ErrNotFound
	}
	return e, nil
}

// ListEvents returns a page of merchant's events within the retention, newest first.
func (s *Endpoints) ListEvents(ctx context.Context, merchant, eventType string, limit int, startingAfter string) ([]charge.Event, bool, error) {
	es, more, err := s.Store.ListEvents(ctx, merchant, eventType, limit, startingAfter)
	if err != nil {
		return nil, false, err
	}
	cutoff := s.NowFunc().Add(-s.Retention)
	kept := es[:0]
	for _, e := range es {
		if !e.CreatedAt.Before(cutoff) {
			kept = append(kept, e)
		}
	}
	if len(kept) < len(es) {
		more = false // the rest are older still
	}
	return kept, more, nil
}

// Redelivery is a redelivery prepared by PrepareRedeliver.
type Redelivery struct {
	// Event is the event sent again; Body its public JSON, the answer's body.
	Event charge.Event
	Body  []byte
	// Payload is the idempotent action's (ActionRedeliver).
	Payload json.RawMessage
}

// PrepareRedeliver prepares the idempotent action that sends merchant's event eventID
// again: to endpointID if it is set (it must be the merchant's), otherwise to every
// enabled endpoint of the merchant that subscribes to the event's type.
func (s *Endpoints) PrepareRedeliver(ctx context.Context, merchant, eventID, endpointID string) (Redelivery, error) {
	ev, err := s.GetEvent(ctx, merchant, eventID)
	if err != nil {
		return Redelivery{}, err
	}
	var targets []Endpoint
	if endpointID != "" {
		e, err := s.Get(ctx, merchant, endpointID)
		if errors.Is(err, charge.ErrNotFound) {
			return Redelivery{}, charge.Invalid(charge.CodeResourceMissing, "endpoint", "No such webhook endpoint: %s", endpointID)
		}
		if err != nil {
			return Redelivery{}, err
		}
		if e.Status != StatusEnabled {
			return Redelivery{}, charge.Invalid(charge.CodeParameterInvalid, "endpoint", "webhook endpoint %s is disabled; enable it first", endpointID)
		}
		targets = []Endpoint{e}
	} else {
		all, err := s.Store.EnabledEndpoints(ctx, []string{merchant})
		if err != nil {
			return Redelivery{}, err
		}
		for _, e := range all[merchant] {
			if e.Subscribes(ev.Type) {
				targets = append(targets, e)
			}
		}
	}
	body, err := json.Marshal(ev.Public())
	if err != nil {
		return Redelivery{}, err
	}
	run := charge.NewID("rd")
	tasks := make([]Task, len(targets))
	for i, e := range targets {
		tasks[i] = Task{Key: TaskKey(ev.ID, e.ID) + ":" + run, Merchant: merchant, Endpoint: e.ID, Event: ev.ID, Body: body}
	}
	payload, err := json.Marshal(tasks)
	if err != nil {
		return Redelivery{}, err
	}
	return Redelivery{Event: ev, Body: body, Payload: payload}, nil
}

// ExecuteRedeliver is the action of ActionRedeliver: publish the tasks (deduplicated by
// their keys).
func (s *Endpoints) ExecuteRedeliver(ctx context.Context, payload json.RawMessage) error {
	var tasks []Task
	if err := json.Unmarshal(payload, &tasks); err != nil {
		return fmt.Errorf("decoding redelivery: %w", err)
	}
	return s.Tasks.PublishTasks(ctx, tasks)
}

// TaskKey is the key of the delivery run of an event to an endpoint.
func TaskKey(eventID, endpointID string) string { return eventID + ":" + endpointID }

// Deliveries returns a page of the delivery attempts to merchant's endpoint id.
func (s *Endpoints) Deliveries(ctx context.Context, merchant, id string, limit int, startingAfter string) ([]Delivery, bool, error) {
	if _, err := s.Get(ctx, merchant, id); err != nil {
		return nil, false, err
	}
	return s.Store.ListDeliveries(ctx, id, limit, startingAfter)
}

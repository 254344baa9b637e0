package client

import (
	"context"
	"iter"
	"net/http"
	"net/url"
	"time"
)

// WebhookEndpoint is a URL that the API sends events to.
type WebhookEndpoint struct {
	ID            string   `json:"id"`
	URL           string   `json:"url"`
	EnabledEvents []string `json:"enabled_events"`
	Description   string   `json:"description"`
	// Status is "enabled" or "disabled".
	Status string `json:"status"`
	// Secret ("whsec_…") signs the deliveries; it is set only in the answers of
	// CreateWebhookEndpoint and RotateWebhookSecret.
	Secret    string    `json:"secret"`
	CreatedAt time.Time `json:"created_at"`
	UpdatedAt time.Time `json:"updated_at"`
}

// WebhookEndpointParams is an endpoint to register.
type WebhookEndpointParams struct {
	// URL is an absolute http(s) URL; required.
	URL string `json:"url,omitempty"`
	// EnabledEvents are the event types to send (Event constants), or EventAll; required.
	EnabledEvents []string `json:"enabled_events,omitempty"`
	Description   string   `json:"description,omitempty"`
}

// WebhookEndpointUpdate changes an endpoint; fields left zero stay as they are.
type WebhookEndpointUpdate struct {
	URL           string   `json:"url,omitempty"`
	EnabledEvents []string `json:"enabled_events,omitempty"`
	Description   *string  `json:"description,omitempty"`
	// Status is "enabled" or "disabled".
	Status string `json:"status,omitempty"`
}

// WebhookDelivery is one attempt to deliver an event to an endpoint.
type WebhookDelivery struct {
	ID       string `json:"id"`
	Endpoint string `json:"endpoint"`
	Event    string `json:"event"`
	Attempt  int    `json:"attempt"`
	// ResponseStatus is the endpoint's answer; 0 when none came, and Error then says why.
	ResponseStatus int    `json:"response_status"`
	DurationMS     int64  `json:"duration_ms"`
	Error          string `json:"error"`
	// NextAttemptAt is when the event is sent again; zero when no retry is due.
	NextAttemptAt time.Time `json:"next_attempt_at"`
	CreatedAt     time.Time `json:"created_at"`
}

func endpointPath(id string) string { return "/v1/webhook_endpoints/" + url.PathEscape(id) }

// CreateWebhookEndpoint registers an endpoint. The answer holds its Secret, which no
// later read shows.
func (c *Client) CreateWebhookEndpoint(ctx context.Context, p WebhookEndpointParams, opts ...RequestOption) (*WebhookEndpoint, error) {
	return post[WebhookEndpoint](ctx, c, "/v1/webhook_endpoints", p, opts)
}

// GetWebhookEndpoint returns the endpoint id, without its secret.
func (c *Client) GetWebhookEndpoint(ctx context.Context, id string, opts ...RequestOption) (*WebhookEndpoint, error) {
	return get[WebhookEndpoint](ctx, c, endpointPath(id), nil, opts)
}

// ListWebhookEndpoints yields the merchant's endpoints, newest first, fetching page after
// page. It stops after the first error, which it yields.
func (c *Client) ListWebhookEndpoints(ctx context.Context, p ListParams) iter.Seq2[WebhookEndpoint, error] {
	return list(ctx, c, "/v1/webhook_endpoints", p.query(), func(e WebhookEndpoint) string { return e.ID })
}

// UpdateWebhookEndpoint changes the endpoint id and returns it.
func (c *Client) UpdateWebhookEndpoint(ctx context.Context, id string, p WebhookEndpointUpdate, opts ...RequestOption) (*WebhookEndpoint, error) {
	return call[WebhookEndpoint](ctx, c, request{method: http.MethodPatch, path: endpointPath(id)}, p, opts)
}

// DeleteWebhookEndpoint deletes the endpoint id. Should the answer to a first attempt be
// lost, the retry answers ErrResourceMissing.
func (c *Client) DeleteWebhookEndpoint(ctx context.Context, id string, opts ...RequestOption) error {
	_, err := call[struct{}](ctx, c, request{method: http.MethodDelete, path: endpointPath(id)}, nil, opts)
	return err
}

// RotateWebhookSecret gives the endpoint id a new secret, returned in the answer; for 24
// hours deliveries are signed with both the old and the new one.
func (c *Client) RotateWebhookSecret(ctx context.Context, id string, opts ...RequestOption) (*WebhookEndpoint, error) {
	return post[WebhookEndpoint](ctx, c, endpointPath(id)+"/rotate_secret", struct{}{}, opts)
}

// ListWebhookDeliveries yields the attempts to deliver to the endpoint id, newest first,
// fetching page after page. It stops after the first error, which it yields.
func (c *Client) ListWebhookDeliveries(ctx context.Context, id string, p ListParams) iter.Seq2[WebhookDelivery, error] {
	return list(ctx, c, endpointPath(id)+"/deliveries", p.query(), func(d WebhookDelivery) string { return d.ID })
}

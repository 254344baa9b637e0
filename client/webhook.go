package client

import (
	"encoding/json"
	"fmt"
	"net/http"

	"github.com/billing/billing/webhooksig"
)

// WebhookVerifier checks the signatures of webhook deliveries (package webhooksig; its
// errors, such as webhooksig.ErrNoMatch, are what ParseWebhook returns).
type WebhookVerifier = webhooksig.Verifier

// NewWebhookVerifier returns a verifier for an endpoint's secrets ("whsec_…"): one, or
// the old and the new while the endpoint's secret is rotated.
func NewWebhookVerifier(secrets ...string) (*WebhookVerifier, error) {
	return webhooksig.NewVerifier(secrets...)
}

// ParseWebhook verifies a delivery's headers and raw body with v and returns its event.
// Receivers should dedupe on the event's ID: a delivery may come more than once.
func ParseWebhook(v *WebhookVerifier, header http.Header, body []byte) (*Event, error) {
	if err := v.Verify(header, body); err != nil {
		return nil, err
	}
	var e Event
	if err := json.Unmarshal(body, &e); err != nil {
		return nil, fmt.Errorf("client: decoding a verified webhook: %w", err)
	}
	return &e, nil
}

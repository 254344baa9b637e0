package e2e

import (
	"bufio"
	"encoding/json"
	"fmt"
	"net/http"
	"regexp"
	"strings"
	"sync"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/billing/billing/internal/charge"
)

// Secrets the tests put in play, which no process may log: the tokens, the webhook secret
// key, the endpoints' secrets, the card numbers sent in bad requests. Each process's log
// is checked for them (and for anything shaped like them) when its test ends.
var inPlay = &secretSet{}

type secretSet struct {
	mu     sync.Mutex
	values map[string]string // value -> kind
}

// plant records value, of kind (a JWT, a webhook secret…), as in play.
func (s *secretSet) plant(kind, value string) {
	if value == "" {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.values == nil {
		s.values = make(map[string]string)
	}
	s.values[value] = kind
}

func (s *secretSet) snapshot() map[string]string {
	s.mu.Lock()
	defer s.mu.Unlock()
	m := make(map[string]string, len(s.values))
	for v, k := range s.values {
		m[v] = k
	}
	return m
}

// The shapes of secrets, whoever issued them: a JWT (a base64url JSON header, a payload,
// a signature) and a webhook secret.
var (
	jwtShape   = regexp.MustCompile(`eyJ[A-Za-z0-9_-]{5,}\.[A-Za-z0-9_-]{2,}\.[A-Za-z0-9_-]*`)
	whsecShape = regexp.MustCompile(`whsec_[A-Za-z0-9+/=_-]{8,}`)
)

// leaks returns one finding per line of log that holds a secret of secrets (by value,
// and card numbers by their digits too) or something shaped like one: a JWT, a webhook
// secret, a card number (charge.ContainsCardNumber, as the API refuses them).
func leaks(log string, secrets map[string]string) []string {
	var found []string
	sc := bufio.NewScanner(strings.NewReader(log))
	sc.Buffer(make([]byte, 0, 64<<10), 4<<20)
	for n := 1; sc.Scan(); n++ {
		line := sc.Text()
		digits := onlyDigits(line)
		var what []string
		for v, kind := range secrets {
			if strings.Contains(line, v) || kind == "card number" && strings.Contains(digits, onlyDigits(v)) {
				what = append(what, kind)
			}
		}
		if jwtShape.MatchString(line) {
			what = append(what, "a JWT")
		}
		if whsecShape.MatchString(line) {
			what = append(what, "a webhook secret")
		}
		if charge.ContainsCardNumber(line) {
			what = append(what, "a card number")
		}
		if len(what) > 0 {
			if len(line) > 300 {
				line = line[:300] + " …"
			}
			found = append(found, fmt.Sprintf("line %d holds %s: %s", n, strings.Join(what, ", "), line))
		}
	}
	return found
}

func onlyDigits(s string) string {
	return strings.Map(func(r rune) rune {
		if '0' <= r && r <= '9' {
			return r
		}
		return -1
	}, s)
}

// checkNoSecrets fails t if the log of p holds a secret in play.
func checkNoSecrets(t *testing.T, p *process) {
	t.Helper()
	if found := leaks(p.log(), inPlay.snapshot()); len(found) > 0 {
		assert.Fail(t, p.name+" logged secrets", "%s:\n%s", p.logPath, strings.Join(found, "\n"))
	}
}

// The values putSecretsInPlay sends where they could be logged: card numbers (Visa and
// Mastercard test numbers) and a JWT of a kind no issuer made.
const (
	plantedCard      = "4242 4242 4242 4242"
	plantedCardInID  = "5555-5555-5555-4444"
	plantedForgedJWT = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJtX2UyZSJ9.Zm9yZ2VkLXNpZ25hdHVyZQ"
)

// putSecretsInPlay records the system's secrets and makes requests that carry more of
// them where a careless log would catch them: a charge whose description holds a card
// number (400 raw_card_data_rejected), client request ids (which the ingest logs) made of
// a card number and of a JWT, a request with a forged token, and a webhook endpoint
// created, its secret rotated, and deleted.
func (s *system) putSecretsInPlay(t *testing.T) {
	t.Helper()
	inPlay.plant("the test's JWT", s.token)
	inPlay.plant("the webhook secret key", s.webhookKey)
	inPlay.plant("card number", plantedCard)
	inPlay.plant("card number", plantedCardInID)
	inPlay.plant("a forged JWT", plantedForgedJWT)
	ctx := t.Context()

	body := []byte(`{"amount": 1000, "currency": "usd", "payment_method": "pm_card_visa", "description": "card ` + plantedCard + `"}`)
	code, resp, _, err := s.do(ctx, http.MethodPost, "/v1/charges", body,
		"Idempotency-Key", "e2e-card-in-description", "X-Request-Id", plantedCardInID)
	require.NoError(t, err)
	require.Equal(t, http.StatusBadRequest, code, "%s", resp)
	require.Contains(t, string(resp), "raw_card_data_rejected")

	code, resp, _, err = s.do(ctx, http.MethodGet, "/v1/balance", nil, "X-Request-Id", plantedForgedJWT)
	require.NoError(t, err)
	require.Equal(t, http.StatusOK, code, "%s", resp)

	req, err := http.NewRequestWithContext(ctx, http.MethodGet, s.apiURL()+"/v1/balance", nil)
	require.NoError(t, err)
	req.Header.Set("Authorization", "Bearer "+plantedForgedJWT)
	req.Header.Set("X-Request-Id", "e2e-forged-token")
	r, err := s.client.Do(req)
	require.NoError(t, err)
	_ = r.Body.Close()
	require.Equal(t, http.StatusUnauthorized, r.StatusCode)

	code, resp, _, err = s.do(ctx, http.MethodPost, "/v1/webhook_endpoints",
		[]byte(`{"url": "http://127.0.0.1:9/never", "enabled_events": ["refund.failed"], "description": "e2e: secrets in play"}`),
		"Idempotency-Key", "e2e-secret-endpoint", "X-Request-Id", "e2e-secret-endpoint")
	require.NoError(t, err)
	require.Equal(t, http.StatusCreated, code, "%s", resp)
	var ep struct{ ID, Secret string }
	require.NoError(t, json.Unmarshal(resp, &ep))
	inPlay.plant("a webhook endpoint's secret", ep.Secret)
	code, resp, _, err = s.do(ctx, http.MethodPost, "/v1/webhook_endpoints/"+ep.ID+"/rotate_secret", []byte(`{}`),
		"Idempotency-Key", "e2e-secret-rotate")
	require.NoError(t, err)
	require.Equal(t, 2, code/100, "rotate_secret: %d %s", code, resp)
	var rotated struct{ Secret string }
	require.NoError(t, json.Unmarshal(resp, &rotated))
	inPlay.plant("a webhook endpoint's rotated secret", rotated.Secret)
	code, resp, _, err = s.do(ctx, http.MethodDelete, "/v1/webhook_endpoints/"+ep.ID, nil)
	require.NoError(t, err)
	require.Equal(t, 2, code/100, "delete: %d %s", code, resp)
}

// The check finds what is planted in a log, in every form, and nothing in the lines of
// a process's logger, which redacts them.
func TestLeaksCatchesPlantedSecrets(t *testing.T) {
	t.Parallel()
	const tok = "eyJhbGciOiJFZERTQSIsImtpZCI6ImsifQ.eyJzdWIiOiJtX2UyZSIsImV4cCI6MX0.c2lnbmF0dXJlLWJ5dGVz"
	const key = "q83vEjRWeJq83vEjRWeJq83vEjRWeJq83vEjRWeJAAA="
	const whsec = "whsec_c2VjcmV0LWJ5dGVzLWZvci10aGUtZW5kcG9pbnQ="
	secrets := map[string]string{tok: "the test's JWT", key: "the webhook secret key", whsec: "a webhook endpoint's secret",
		plantedCard: "card number"}
	clean := `time=2026-12-07T09:14:19.495Z level=INFO msg=request request_id=req_0123 client_request_id="[REDACTED: card number]" method=POST route=/v1/charges status=400 duration_ms=1 merchant=m_e2e
time=2026-12-07T09:14:19.500Z level=INFO msg=starting process=ingest config.webhook_secret_key=*** config.nats_url=nats://127.0.0.1:4222 config.rate_limit=100000
time=2026-12-07T09:14:19.600Z level=WARN msg="delivery failed" endpoint=we_01JEXAMPLE attempt=3 error="Post \"http://127.0.0.1:9/never\": connection refused" order=12345678901234 phone="+1 415 555 0100"
`
	require.Empty(t, leaks(clean, secrets))
	for _, planted := range []string{
		"level=INFO msg=request authorization=\"Bearer " + tok + "\"",
		"level=INFO msg=verifying token=" + tok[:len(tok)-3], // another JWT than the test's
		"level=ERROR msg=\"opening box\" error=\"bad key " + key + "\"",
		`{"level":"WARN","msg":"endpoint","secret":"` + whsec + `"}`,
		"level=INFO msg=request description=\"card 4242-4242-4242-4242\"",
		"level=INFO msg=request description=\"card 4242 4242 4242 4242\"",
		"level=INFO msg=request n=4242424242424242",
		"level=INFO msg=request a=4242 b=4242 c=4242 d=4242", // its digits, spread over a line
	} {
		found := leaks(clean+planted+"\n", secrets)
		require.Len(t, found, 1, planted)
		require.Contains(t, found[0], "line 4 holds", planted)
	}
}

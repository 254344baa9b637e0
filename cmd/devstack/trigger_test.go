package main

import (
	"encoding/json"
	"net/http"
	"net/url"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/billing/billing/internal/auth"
	"github.com/billing/billing/internal/config"
	"github.com/billing/billing/internal/devstack"
)

// `devstack trigger EVENT` against a running `devstack up`, finding the API and signing
// its token as `devstack listen` does: every supported event ends up listed by GET
// /v1/events for the charge the trigger printed; an unknown event is refused with the
// list of the supported ones.
func TestTrigger(t *testing.T) {
	dataDir := filepath.Join(t.TempDir(), "data")
	if testing.Short() {
		t.Skip("starts the whole system")
	}
	up := startUp(t, dataDir)
	environ := up.environ
	api := regexp.MustCompile(`export BILLING_API=(\S+)`).FindStringSubmatch(up.banner)[1]
	// The trigger finds the API as listen does: $BILLING_API.
	triggerEnv := append(environ, "BILLING_API="+api)

	// The test reads the events with a token of its own.
	cfg, err := config.Load(config.Devstack, "", environ)
	require.NoError(t, err)
	key, err := auth.LoadOrCreateDevKey(filepath.Join(dataDir, devstack.KeyDir))
	require.NoError(t, err)
	tok, err := key.Sign(cfg.AuthIssuer, cfg.AuthAudience, devstack.DefaultMerchant, []string{"events:read"}, time.Hour, time.Now())
	require.NoError(t, err)
	client := &http.Client{Timeout: 10 * time.Second}
	eventsOf := func(t *testing.T, typ, chargeID string) []string {
		req, err := http.NewRequestWithContext(t.Context(), http.MethodGet, api+"/v1/events?limit=100&type="+url.QueryEscape(typ), nil)
		require.NoError(t, err)
		req.Header.Set("Authorization", "Bearer "+tok)
		resp, err := client.Do(req)
		require.NoError(t, err)
		defer resp.Body.Close()
		require.Equal(t, http.StatusOK, resp.StatusCode)
		var page struct {
			Data []struct {
				ID   string `json:"id"`
				Type string `json:"type"`
				Data struct {
					Object struct {
						ID string `json:"id"`
					} `json:"object"`
				} `json:"data"`
			} `json:"data"`
		}
		require.NoError(t, json.NewDecoder(resp.Body).Decode(&page))
		var ids []string
		for _, e := range page.Data {
			if e.Data.Object.ID == chargeID {
				require.Equal(t, typ, e.Type)
				ids = append(ids, e.ID)
			}
		}
		return ids
	}

	chargeLine := regexp.MustCompile(`Created charge (ch_\S+)`)
	eventLine := regexp.MustCompile(`Triggered (\S+): event (evt_\S+) for charge (ch_\S+)`)
	require.Len(t, devstack.TriggerEvents(), 7)
	for _, event := range devstack.TriggerEvents() {
		t.Run(event, func(t *testing.T) {
			var printed syncBuffer
			// Flags after the event, as with stripe trigger.
			require.NoError(t, runTrigger(t.Context(), []string{event, "--merchant", devstack.DefaultMerchant}, triggerEnv, &printed))
			m := chargeLine.FindStringSubmatch(printed.String())
			require.NotNil(t, m, printed.String())
			chargeID := m[1]
			e := eventLine.FindStringSubmatch(printed.String())
			require.NotNil(t, e, printed.String())
			require.Equal(t, []string{event, chargeID}, []string{e[1], e[3]})
			require.Contains(t, eventsOf(t, event, chargeID), e[2], "GET /v1/events?type=%s lists the event of %s", event, chargeID)
		})
	}

	t.Run("unknown event", func(t *testing.T) {
		var printed syncBuffer
		err := runTrigger(t.Context(), []string{"charge.exploded"}, triggerEnv, &printed)
		require.ErrorContains(t, err, `unknown event "charge.exploded"`)
		require.ErrorContains(t, err, strings.Join(devstack.TriggerEvents(), ", "))
		require.Empty(t, printed.String(), "nothing is created for an unknown event")
		require.ErrorContains(t, runTrigger(t.Context(), nil, triggerEnv, &printed), "which event? one of charge.authorized")
	})
}

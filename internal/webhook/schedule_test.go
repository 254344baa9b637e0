package webhook

import (
	"net/http"
	"testing"
	"time"
)

func TestNextDelay(t *testing.T) {
	t.Parallel()
	schedule := []time.Duration{5 * time.Second, 5 * time.Minute}
	now := time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC)
	for range 100 {
		d, ok := nextDelay(schedule, 1, nil, now)
		if !ok || d < 4500*time.Millisecond || d > 5500*time.Millisecond {
			t.Fatalf("attempt 1: %s %v, want 5s ±10%%", d, ok)
		}
	}
	if _, ok := nextDelay(schedule, 3, nil, now); ok {
		t.Fatal("a retry after the schedule is used up")
	}
	answer := func(code int, retryAfter string) *http.Response {
		return &http.Response{StatusCode: code, Header: http.Header{"Retry-After": {retryAfter}}}
	}
	// A longer Retry-After on 429 and 503 wins; a shorter one, or on another status, not.
	if d, _ := nextDelay(schedule, 1, answer(429, "60"), now); d != time.Minute {
		t.Fatalf("429 Retry-After 60: %s", d)
	}
	if d, _ := nextDelay(schedule, 1, answer(503, now.Add(2*time.Minute).Format(http.TimeFormat)), now); d != 2*time.Minute {
		t.Fatalf("503 Retry-After date: %s", d)
	}
	if d, _ := nextDelay(schedule, 2, answer(503, "10"), now); d < 4*time.Minute {
		t.Fatalf("a shorter Retry-After shortened the schedule: %s", d)
	}
	if d, _ := nextDelay(schedule, 1, answer(500, "600"), now); d > 6*time.Second {
		t.Fatalf("Retry-After honoured on a 500: %s", d)
	}
	if d, _ := nextDelay(schedule, 1, answer(429, "99999999"), now); d != maxRetryAfter {
		t.Fatalf("Retry-After not capped: %s", d)
	}
}

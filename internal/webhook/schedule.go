package webhook

import (
	"math/rand/v2"
	"net/http"
	"strconv"
	"time"
)

// nextDelay is the wait before the attempt after attempt number attempt (from 1) failed:
// the schedule's delay with ±10% jitter, so retries of many deliveries do not arrive
// together, or the answer's Retry-After when it asks for longer on a 429 or 503. ok is
// false when the schedule is used up.
func nextDelay(schedule []time.Duration, attempt int, resp *http.Response, now time.Time) (d time.Duration, ok bool) {
	if attempt < 1 || attempt > len(schedule) {
		return 0, false
	}
	base := schedule[attempt-1]
	d = base + time.Duration((rand.Float64()*0.2-0.1)*float64(base))
	if resp != nil && (resp.StatusCode == http.StatusTooManyRequests || resp.StatusCode == http.StatusServiceUnavailable) {
		if ra := retryAfter(resp.Header.Get("Retry-After"), now); ra > d {
			d = ra
		}
	}
	return d, true
}

// maxRetryAfter bounds what a Retry-After can ask for.
const maxRetryAfter = 24 * time.Hour

// retryAfter parses a Retry-After value: seconds, or an HTTP date.
func retryAfter(v string, now time.Time) time.Duration {
	if v == "" {
		return 0
	}
	var d time.Duration
	if secs, err := strconv.Atoi(v); err == nil {
		d = time.Duration(secs) * time.Second
	} else if t, err := http.ParseTime(v); err == nil {
		d = t.Sub(now)
	}
	return max(0, min(d, maxRetryAfter))
}

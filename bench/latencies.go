package main

import (
	"fmt"
	"math"
	"slices"
	"time"
)

// latencies are observed durations; percentile needs them sorted.
type latencies []time.Duration

func (l latencies) sort() { slices.Sort(l) }

// percentile is the nearest-rank p-th percentile (0 < p <= 100) of sorted latencies, or
// 0 when there are none.
func (l latencies) percentile(p float64) time.Duration {
	if len(l) == 0 {
		return 0
	}
	rank := int(math.Ceil(p / 100 * float64(len(l))))
	return l[min(max(rank, 1), len(l))-1]
}

// summary is "p50 / p99 / p99.9" in milliseconds.
func (l latencies) summary() string {
	return fmt.Sprintf("%s / %s / %s ms", ms(l.percentile(50)), ms(l.percentile(99)), ms(l.percentile(99.9)))
}

// ms formats d in milliseconds with two significant decimals at most.
func ms(d time.Duration) string {
	v := float64(d) / float64(time.Millisecond)
	switch {
	case v >= 100:
		return fmt.Sprintf("%.0f", v)
	case v >= 10:
		return fmt.Sprintf("%.1f", v)
	default:
		return fmt.Sprintf("%.2f", v)
	}
}

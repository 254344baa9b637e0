package charge

import "time"

// TimeNow returns the current time; components take one so tests can steer the clock.
type TimeNow func() time.Time

package reconcile

import "time"

// summaryFindings is how many findings a Summary keeps as text.
const summaryFindings = 20

// Summary is what is kept of a run for the dashboard's operator page, which must not run
// one (a run reads the whole store): `worker reconcile` records it after each run.
type Summary struct {
	// At is when the run began; Took how long it ran.
	At   time.Time     `json:"at"`
	Took time.Duration `json:"took"`
	// Charges is how many charges were checked.
	Charges int `json:"charges"`
	// Findings is how many disagreements there were; First the first summaryFindings of
	// them, as text.
	Findings int      `json:"findings"`
	First    []string `json:"first,omitempty"`
	// AskedProcessor is whether the processor was asked again.
	AskedProcessor bool `json:"asked_processor"`
}

// Summarize returns the summary of r, a run that began at at, took took, and asked the
// processor again if askedProcessor.
func (r Report) Summarize(at time.Time, took time.Duration, askedProcessor bool) Summary {
	s := Summary{At: at, Took: took, Charges: r.Charges, Findings: len(r.Findings), AskedProcessor: askedProcessor}
	for _, f := range r.Findings[:min(len(r.Findings), summaryFindings)] {
		s.First = append(s.First, f.String())
	}
	return s
}

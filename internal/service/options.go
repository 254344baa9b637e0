package service

import (
	"time"

	"go.opentelemetry.io/otel/trace"
)

// Option changes how RunIngest or RunWorker runs.
type Option func(*options)

type options struct {
	tracerProvider trace.TracerProvider
	// settleSampleEvery: WithSettleSampling.
	settleSampleEvery time.Duration
	// signInLinks: WithSignInLink.
	signInLinks []signInLink
}

// signInLink is a dashboard sign-in link the ingest allows (WithSignInLink).
type signInLink struct {
	code, token string
	until       time.Time
}

func applyOptions(opts []Option) options {
	var o options
	for _, opt := range opts {
		opt(&o)
	}
	return o
}

// WithSignInLink makes the ingest's dashboard sign in as token whoever opens
// /dashboard/sign-in/<code> first, until until: the link `devstack up` prints, so that
// `make run` gives a link to click without a token in it.
func WithSignInLink(code, token string, until time.Time) Option {
	return func(o *options) { o.signInLinks = append(o.signInLinks, signInLink{code, token, until}) }
}

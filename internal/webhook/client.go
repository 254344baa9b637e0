package webhook

import (
	"crypto/tls"
	"net"
	"net/http"
	"time"
)

// NewClient returns the HTTP client deliveries use: every connection dialled through
// guard (so no address check can be bypassed by DNS rebinding), no proxy from the
// environment (a proxy would dial for us), no redirects followed (a redirect is a failed
// delivery), TLS 1.2 or newer, and timeout on the whole exchange.
func NewClient(guard *Guard, timeout time.Duration, perHost int) *http.Client {
	dialer := &net.Dialer{Timeout: min(timeout, 10*time.Second), Control: guard.Control}
	return &http.Client{
		Timeout: timeout,
		Transport: &http.Transport{
			Proxy:                 nil,
			DialContext:           dialer.DialContext,
			TLSClientConfig:       &tls.Config{MinVersion: tls.VersionTLS12},
			TLSHandshakeTimeout:   min(timeout, 10*time.Second),
			ResponseHeaderTimeout: timeout,
			MaxIdleConnsPerHost:   perHost,
			MaxConnsPerHost:       perHost,
			IdleConnTimeout:       90 * time.Second,
			ForceAttemptHTTP2:     true,
		},
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
}

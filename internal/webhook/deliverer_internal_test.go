package webhook

import (
	"errors"
	"io"
	"log"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"net/url"
	"os"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// requireNoAddress fails if any word of text is an IP address.
func requireNoAddress(t *testing.T, text string) {
	t.Helper()
	require.NotEqual(t, "\x00", withoutAddresses(text, "\x00"), "%q names an address", text)
}

// What a merchant is shown of a failed attempt says what went wrong and never names an
// address: neither where the endpoint's host resolved to nor our resolver.
func TestDeliveryError(t *testing.T) {
	t.Parallel()
	tcp := func(a string) net.Addr { return net.TCPAddrFromAddrPort(netip.MustParseAddrPort(a)) }
	post := func(err error) error { return &url.Error{Op: "Post", URL: "https://hooks.example.com/x", Err: err} }
	for _, tc := range []struct {
		err  error
		want string
	}{
		{post(&net.OpError{Op: "dial", Net: "tcp", Addr: tcp("10.1.2.3:443"), Err: ErrURLForbidden}),
			"connection refused: forbidden address"},
		{post(&net.OpError{Op: "dial", Net: "tcp", Addr: tcp("[fd00:ec2::254]:80"), Err: ErrURLForbidden}),
			"connection refused: forbidden address"},
		{post(&net.OpError{Op: "dial", Net: "tcp", Err: &net.DNSError{
			Err: "no such host", Name: "hooks.example.com", Server: "10.0.0.2:53", IsNotFound: true,
		}}), "host not found"},
		{post(&net.OpError{Op: "dial", Net: "tcp", Err: &net.DNSError{
			Err: "server misbehaving", Name: "hooks.example.com", Server: "10.0.0.2:53",
		}}), "host name lookup failed"},
		{post(&net.OpError{Op: "dial", Net: "tcp", Addr: tcp("93.184.216.34:443"),
			Err: &os.SyscallError{Syscall: "connect", Err: syscall.ECONNREFUSED}}), "connection refused"},
		{post(&net.OpError{Op: "read", Net: "tcp", Addr: tcp("93.184.216.34:443"),
			Err: &os.SyscallError{Syscall: "read", Err: syscall.ECONNRESET}}), "connection reset"},
		{post(&net.OpError{Op: "dial", Net: "tcp", Addr: tcp("93.184.216.34:443"),
			Err: &os.SyscallError{Syscall: "connect", Err: syscall.EHOSTUNREACH}}), "host unreachable"},
		{post(&net.OpError{Op: "read", Net: "tcp", Addr: tcp("93.184.216.34:443"),
			Err: errors.New("something at 93.184.216.34")}), "connection failed (read)"},
		{post(errors.New("net/http: HTTP/1.x transport connection broken: malformed HTTP response")),
			"net/http: HTTP/1.x transport connection broken: malformed HTTP response"},
		{post(errors.New("refused by 10.9.8.7:8443")), "request failed"},
		{errors.New("refused by [::1]:8443."), "request failed"},
	} {
		got := deliveryError(tc.err, 15*time.Second)
		require.Equal(t, tc.want, got, tc.err.Error())
		requireNoAddress(t, got)
	}
}

// The same, with the errors a real client returns.
func TestDeliveryErrorFromClient(t *testing.T) {
	t.Parallel()
	slow := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-r.Context().Done():
		case <-time.After(5 * time.Second):
		}
	}))
	defer slow.Close()
	tlsSrv := httptest.NewUnstartedServer(http.HandlerFunc(func(http.ResponseWriter, *http.Request) {}))
	tlsSrv.Config.ErrorLog = log.New(io.Discard, "", 0) // the refused handshake
	tlsSrv.StartTLS()
	defer tlsSrv.Close()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	closed := ln.Addr().String()
	require.NoError(t, ln.Close())

	guarded := NewClient(&Guard{}, 2*time.Second, 4)
	open := NewClient(&Guard{AllowPrivate: true}, 5*time.Second, 4)
	impatient := NewClient(&Guard{AllowPrivate: true}, 200*time.Millisecond, 4)
	for _, tc := range []struct {
		client *http.Client
		url    string
		want   string
	}{
		{guarded, slow.URL + "/x", "connection refused: forbidden address"},
		{guarded, strings.Replace(slow.URL, "127.0.0.1", "localhost", 1) + "/x", "connection refused: forbidden address"},
		{open, "http://" + closed + "/x", "connection refused"},
		{impatient, slow.URL + "/x", "timed out (no answer within 200ms)"},
		{open, tlsSrv.URL + "/x", "TLS certificate verification failed: x509: certificate signed by unknown authority"},
		{open, strings.Replace(slow.URL, "http:", "https:", 1) + "/x", "http: server gave HTTP response to HTTPS client"},
	} {
		resp, err := tc.client.Post(tc.url, "application/json", nil)
		if resp != nil {
			resp.Body.Close()
		}
		require.Error(t, err, tc.url)
		got := deliveryError(err, 200*time.Millisecond)
		require.Equal(t, tc.want, got, err.Error())
		requireNoAddress(t, got)
		require.NotContains(t, got, "127.0.0.1")
		t.Logf("%s: %q (was %q)", tc.url, got, err.Error())
	}
}

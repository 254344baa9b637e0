package webhook_test

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/billing/billing/internal/webhook"
)

func TestForbidden(t *testing.T) {
	t.Parallel()
	forbidden := []string{
		"127.0.0.1", "127.1.2.3", "::1", // loopback
		"10.0.0.1", "172.16.5.4", "192.168.1.1", // private
		"169.254.169.254", "169.254.1.1", "fe80::1", // link-local, cloud metadata
		"fd00::1", "fc00::5", "fd00:ec2::254", // unique-local, AWS metadata over IPv6
		"100.64.0.1", "100.100.100.200", // carrier-grade NAT, Alibaba metadata
		"0.0.0.0", "::", "224.0.0.1", "ff02::1", "255.255.255.255", // unspecified, multicast, broadcast
		"::ffff:127.0.0.1", "::ffff:10.0.0.1", "::ffff:169.254.169.254", // IPv4-mapped IPv6
		"64:ff9b::a00:1", // NAT64 of 10.0.0.1
	}
	for _, a := range forbidden {
		require.True(t, webhook.Forbidden(netip.MustParseAddr(a)), a)
	}
	for _, a := range []string{"93.184.216.34", "8.8.8.8", "2606:2800:220:1:248:1893:25c8:1946", "::ffff:93.184.216.34"} {
		require.False(t, webhook.Forbidden(netip.MustParseAddr(a)), a)
	}
}

func TestCheckURL(t *testing.T) {
	t.Parallel()
	g := &webhook.Guard{}
	ctx := context.Background()
	for _, u := range []string{
		"http://127.0.0.1/hooks", "http://localhost:8080/hooks", "https://[::1]/", "http://[::ffff:127.0.0.1]/",
		"http://169.254.169.254/latest/meta-data/", "http://10.1.2.3:9000/", "http://0x7f000001/", "http://2130706433/",
	} {
		err := g.CheckURL(ctx, u)
		require.Error(t, err, u)
		require.True(t, errors.Is(err, webhook.ErrURLForbidden) || errors.Is(err, webhook.ErrURLInvalid), "%s: %v", u, err)
	}
	require.ErrorIs(t, g.CheckURL(ctx, "http://localhost/"), webhook.ErrURLForbidden, "a name resolving to 127.0.0.1")
	for _, u := range []string{"ftp://93.184.216.34/", "/relative", "https://user:pw@93.184.216.34/", "http://", "https://93.184.216.34:99999/"} {
		require.ErrorIs(t, g.CheckURL(ctx, u), webhook.ErrURLInvalid, u)
	}
	require.NoError(t, g.CheckURL(ctx, "https://93.184.216.34/hooks"))
	require.NoError(t, (&webhook.Guard{AllowPrivate: true}).CheckURL(ctx, "http://localhost:3000/hooks"))
}

// The guard runs at connection time for every dial: a URL that passed registration but
// reaches a forbidden address (DNS rebinding, or a redirect) is refused before any byte
// is sent, and redirects are never followed.
func TestClientRefusesAtConnection(t *testing.T) {
	t.Parallel()
	hit := make(chan string, 10)
	private := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { hit <- r.URL.Path }))
	defer private.Close()
	// A server standing in for a public one (allowed by address in the test), which
	// redirects to the private one.
	public := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, private.URL+"/internal", http.StatusFound)
	}))
	defer public.Close()

	guard := &webhook.Guard{Allowed: []netip.AddrPort{netip.MustParseAddrPort(strings.TrimPrefix(public.URL, "http://"))}}
	client := webhook.NewClient(guard, 2*time.Second, 4)

	_, err := client.Post(private.URL+"/direct", "application/json", nil)
	require.ErrorIs(t, err, webhook.ErrURLForbidden, "a loopback address is refused at dial")
	// A host name that resolves to 127.0.0.1 is refused at dial too.
	_, err = client.Post(strings.Replace(private.URL, "127.0.0.1", "localhost", 1)+"/by-name", "application/json", nil)
	require.ErrorIs(t, err, webhook.ErrURLForbidden)

	resp, err := client.Post(public.URL+"/start", "application/json", nil)
	require.NoError(t, err)
	resp.Body.Close()
	require.Equal(t, http.StatusFound, resp.StatusCode, "the redirect is the answer: a failed delivery")
	select {
	case p := <-hit:
		t.Fatalf("the private server was reached at %s", p)
	default:
	}
}

package webhook

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"net/url"
	"strings"
	"syscall"
	"time"
)

// Errors of the address guard.
var (
	// ErrURLInvalid: not an absolute http(s) URL with a host, or the host does not resolve.
	ErrURLInvalid = errors.New("webhook URL is invalid")
	// ErrURLForbidden: the host is, or resolves to, an address webhooks may not reach.
	ErrURLForbidden = errors.New("webhook URL resolves to a forbidden address")
)

// forbiddenPrefixes are the ranges, beyond what netip classifies, that no webhook may
// reach: carrier-grade NAT, the IETF protocol block, benchmarking, documentation and
// reserved ranges, and cloud metadata endpoints.
var forbiddenPrefixes = []netip.Prefix{
	netip.MustParsePrefix("0.0.0.0/8"),
	netip.MustParsePrefix("100.64.0.0/10"),
	netip.MustParsePrefix("192.0.0.0/24"),
	netip.MustParsePrefix("192.0.2.0/24"),
	netip.MustParsePrefix("198.18.0.0/15"),
	netip.MustParsePrefix("198.51.100.0/24"),
	netip.MustParsePrefix("203.0.113.0/24"),
	netip.MustParsePrefix("240.0.0.0/4"),
	netip.MustParsePrefix("255.255.255.255/32"),
	netip.MustParsePrefix("100.100.100.200/32"), // Alibaba Cloud metadata
	netip.MustParsePrefix("64:ff9b::/96"),       // NAT64: could reach any IPv4 address
	netip.MustParsePrefix("64:ff9b:1::/48"),
	netip.MustParsePrefix("2001:db8::/32"),
	netip.MustParsePrefix("fd00:ec2::254/128"), // AWS metadata over IPv6
}

// Forbidden reports whether a webhook may not connect to addr: loopback, private,
// link-local (which holds 169.254.169.254, the metadata address of most clouds),
// unique-local, unspecified, multicast, and the ranges above. IPv4-mapped IPv6 addresses
// are judged as the IPv4 address they carry.
func Forbidden(addr netip.Addr) bool {
	addr = addr.Unmap()
	if !addr.IsValid() || addr.IsLoopback() || addr.IsPrivate() || addr.IsLinkLocalUnicast() ||
		addr.IsLinkLocalMulticast() || addr.IsInterfaceLocalMulticast() || addr.IsMulticast() ||
		addr.IsUnspecified() {
		return true
	}
	for _, p := range forbiddenPrefixes {
		if p.Contains(addr) {
			return true
		}
	}
	return false
}

// Guard decides which addresses webhooks may reach. The zero value forbids the classes
// of Forbidden; AllowPrivate (development) allows everything.
type Guard struct {
	// AllowPrivate turns the guard off (BILLING_WEBHOOK_ALLOW_PRIVATE).
	AllowPrivate bool
	// Allowed are addresses allowed despite their class: tests use it to let a loopback
	// test server stand in for a public one.
	Allowed []netip.AddrPort
	// Resolver resolves host names at registration. Defaults to net.DefaultResolver.
	Resolver *net.Resolver
}

func (g *Guard) allowed(ap netip.AddrPort) bool {
	if g.AllowPrivate {
		return true
	}
	for _, a := range g.Allowed {
		if a.Addr().Unmap() == ap.Addr().Unmap() && (a.Port() == 0 || a.Port() == ap.Port()) {
			return true
		}
	}
	return !Forbidden(ap.Addr())
}

// CheckURL validates a webhook URL at registration: an absolute http or https URL whose
// host resolves only to allowed addresses. The check is repeated at every connection
// (DialContext), so a name that later resolves elsewhere cannot get through.
func (g *Guard) CheckURL(ctx context.Context, raw string) error {
	u, err := url.Parse(raw)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.User != nil || u.Opaque != "" {
		return fmt.Errorf("%w: must be an absolute http or https URL without credentials", ErrURLInvalid)
	}
	if len(raw) > 2048 {
		return fmt.Errorf("%w: longer than 2048 characters", ErrURLInvalid)
	}
	port := u.Port()
	if port == "" {
		port = map[string]string{"http": "80", "https": "443"}[u.Scheme]
	}
	p, err := netip.ParseAddrPort(net.JoinHostPort("0.0.0.0", port))
	if err != nil {
		return fmt.Errorf("%w: bad port", ErrURLInvalid)
	}
	host := strings.TrimSuffix(u.Hostname(), ".")
	var addrs []netip.Addr
	if a, err := netip.ParseAddr(host); err == nil {
		addrs = []netip.Addr{a}
	} else {
		resolver := g.Resolver
		if resolver == nil {
			resolver = net.DefaultResolver
		}
		rctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		defer cancel()
		addrs, err = resolver.LookupNetIP(rctx, "ip", host)
		if err != nil || len(addrs) == 0 {
			return fmt.Errorf("%w: host %q does not resolve", ErrURLInvalid, host)
		}
	}
	for _, a := range addrs {
		if !g.allowed(netip.AddrPortFrom(a, p.Port())) {
			return fmt.Errorf("%w: %s", ErrURLForbidden, host)
		}
	}
	return nil
}

// Control is a net.Dialer Control function that refuses forbidden addresses. It runs
// after name resolution, on the very address being connected to, for every connection the
// client makes (first request, retries, any redirect): DNS rebinding cannot slip past it.
//
// Its error does not name the address: the dialer's error around it does (for the
// operator's log), and what a merchant is shown of it (deliveryError) is "forbidden
// address", never where their host resolved to.
func (g *Guard) Control(network, address string, _ syscall.RawConn) error {
	ap, err := netip.ParseAddrPort(address)
	if err != nil || !g.allowed(ap) {
		return ErrURLForbidden
	}
	return nil
}

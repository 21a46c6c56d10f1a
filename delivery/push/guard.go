package push

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"strings"
	"syscall"
	"time"

	"fmn/apperr"
)

// Guard is where push requests may go. A push endpoint is a URL the user
// gives (any browser subscription is one), so without a guard fmn would
// POST wherever a user points it: at its own loopback services, the
// cloud's metadata address (169.254.169.254), the private network behind
// it. Unless AllowPrivate (FMN_PUSH_ALLOW_PRIVATE, for tests and private
// deployments) is set, an endpoint must be https on port 443, and every
// address fmn connects to must be a public unicast one. The address is
// checked when fmn dials it (net.Dialer.Control sees the resolved address),
// so a name that resolves to a public address when the subscription is
// added and to a private one later (DNS rebinding) still reaches nothing.
// Redirects are not followed, no proxy from the environment is used, and
// nothing of a push service's answer but its status reaches the user.
type Guard struct {
	AllowPrivate bool
}

// blockedError is a connection the guard refused; its text is fmn's own.
type blockedError struct{ why string }

func (e *blockedError) Error() string {
	return "the push endpoint " + e.why + "; fmn only reaches public push services"
}

// blocked ranges with what the error calls them. IPv4-mapped IPv6
// addresses are unmapped first; 6to4, Teredo and NAT64 embed IPv4 addresses
// that could be private, so they are refused whole (no push service uses
// them).
var blocked = []struct {
	prefix netip.Prefix
	what   string
}{
	{netip.MustParsePrefix("0.0.0.0/8"), "an unspecified address"},
	{netip.MustParsePrefix("10.0.0.0/8"), "a private address"},
	{netip.MustParsePrefix("100.64.0.0/10"), "a shared (carrier-grade NAT) address"},
	{netip.MustParsePrefix("127.0.0.0/8"), "a loopback address"},
	{netip.MustParsePrefix("169.254.0.0/16"), "a link-local address"},
	{netip.MustParsePrefix("172.16.0.0/12"), "a private address"},
	{netip.MustParsePrefix("192.0.0.0/24"), "a reserved address"},
	{netip.MustParsePrefix("192.0.2.0/24"), "a documentation address"},
	{netip.MustParsePrefix("192.88.99.0/24"), "a relay address"},
	{netip.MustParsePrefix("192.168.0.0/16"), "a private address"},
	{netip.MustParsePrefix("198.18.0.0/15"), "a benchmarking address"},
	{netip.MustParsePrefix("198.51.100.0/24"), "a documentation address"},
	{netip.MustParsePrefix("203.0.113.0/24"), "a documentation address"},
	{netip.MustParsePrefix("224.0.0.0/4"), "a multicast address"},
	{netip.MustParsePrefix("240.0.0.0/4"), "a reserved address"},
	{netip.MustParsePrefix("::/128"), "an unspecified address"},
	{netip.MustParsePrefix("::1/128"), "a loopback address"},
	{netip.MustParsePrefix("::/96"), "an IPv4-compatible address"},
	{netip.MustParsePrefix("64:ff9b::/96"), "a NAT64 address"},
	{netip.MustParsePrefix("64:ff9b:1::/48"), "a NAT64 address"},
	{netip.MustParsePrefix("100::/64"), "a discard address"},
	{netip.MustParsePrefix("2001::/32"), "a Teredo address"},
	{netip.MustParsePrefix("2001:db8::/32"), "a documentation address"},
	{netip.MustParsePrefix("2002::/16"), "a 6to4 address"},
	{netip.MustParsePrefix("fc00::/7"), "a unique-local address"},
	{netip.MustParsePrefix("fe80::/10"), "a link-local address"},
	{netip.MustParsePrefix("fec0::/10"), "a site-local address"},
	{netip.MustParsePrefix("ff00::/8"), "a multicast address"},
}

// checkAddr refuses an address fmn must not connect to.
func checkAddr(a netip.Addr) error {
	a = a.Unmap().WithZone("")
	for _, b := range blocked {
		if b.prefix.Contains(a) {
			return &blockedError{why: "is " + b.what}
		}
	}
	if a.Is4() && a == netip.AddrFrom4([4]byte{255, 255, 255, 255}) {
		return &blockedError{why: "is a broadcast address"}
	}
	return nil
}

// checkURL is the part of the policy a URL shows by itself.
func (g Guard) checkURL(u *url.URL) error {
	if g.AllowPrivate {
		return nil
	}
	if u.Scheme != "https" {
		return &blockedError{why: "is not an https:// URL"}
	}
	if p := u.Port(); p != "" && p != "443" {
		return &blockedError{why: "uses port " + p + ", not 443"}
	}
	if a, err := netip.ParseAddr(strings.Trim(u.Hostname(), "[]")); err == nil {
		return checkAddr(a)
	}
	return nil
}

// CheckEndpoint judges a subscription's endpoint when it is added, for the
// API's answer: the URL itself, and the addresses its host resolves to now
// (a name that does not resolve passes here; the dial-time check stays).
// A refusal is an invalid "address" saying why.
func (g Guard) CheckEndpoint(ctx context.Context, endpoint string) error {
	u, err := url.Parse(endpoint)
	if err != nil {
		return apperr.Invalid("address", "the push endpoint is not a URL")
	}
	if err := g.checkURL(u); err != nil {
		return apperr.Invalid("address", "%s", err.Error())
	}
	if g.AllowPrivate {
		return nil
	}
	if _, err := netip.ParseAddr(strings.Trim(u.Hostname(), "[]")); err == nil {
		return nil // an address, checked above
	}
	rctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	addrs, err := net.DefaultResolver.LookupNetIP(rctx, "ip", u.Hostname())
	if err != nil {
		return nil
	}
	for _, a := range addrs {
		if err := checkAddr(a); err != nil {
			return apperr.Invalid("address", "the push endpoint's host resolves to %s; fmn only reaches public push services",
				strings.TrimPrefix(err.(*blockedError).why, "is "))
		}
	}
	return nil
}

// control runs for every connection the client makes, with the address
// about to be dialled: after name resolution, so what is checked is what
// is reached.
func (g Guard) control(network, address string, _ syscall.RawConn) error {
	if g.AllowPrivate {
		return nil
	}
	host, port, err := net.SplitHostPort(address)
	if err != nil {
		return &blockedError{why: "has an address fmn cannot read"}
	}
	if port != "443" {
		return &blockedError{why: "uses port " + port + ", not 443"}
	}
	a, err := netip.ParseAddr(host)
	if err != nil {
		return &blockedError{why: "has an address fmn cannot read"}
	}
	return checkAddr(a)
}

// Client returns the HTTP client push requests go through: the guarded
// dialer, no proxy (Transport.Proxy nil: HTTPS_PROXY from the environment
// is not used), no redirects (a 3xx is an answer like any other, and is
// not followed), and timeout for the whole request, so that a slow push
// service holds a worker only that long.
func (g Guard) Client(timeout time.Duration) *http.Client {
	d := &net.Dialer{Timeout: min(timeout, 5*time.Second), KeepAlive: 30 * time.Second, Control: g.control}
	tr := &http.Transport{
		Proxy:                  nil,
		DialContext:            d.DialContext,
		ForceAttemptHTTP2:      true,
		TLSHandshakeTimeout:    min(timeout, 5*time.Second),
		ResponseHeaderTimeout:  timeout,
		MaxResponseHeaderBytes: 64 << 10,
		MaxIdleConns:           100,
		IdleConnTimeout:        90 * time.Second,
	}
	return &http.Client{Transport: tr, Timeout: timeout,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
}

// reachError is a push request that got no answer, in fmn's words: what a
// user reads in failing_reason or a notification's reason never quotes a
// network error (which would name internal hosts and addresses).
type reachError struct {
	why     string
	blocked bool // refused by the guard: permanent
	timeout bool // no answer in time: the destination pauses
	err     error
}

func (e *reachError) Error() string { return e.why }
func (e *reachError) Unwrap() error { return e.err }

// reachFailure reads a transport error.
func reachFailure(err error) error {
	var be *blockedError
	var dnsErr *net.DNSError
	var opErr *net.OpError
	switch {
	case errors.As(err, &be):
		return &reachError{why: be.Error(), blocked: true, err: err}
	case errors.Is(err, context.DeadlineExceeded) || isTimeout(err):
		return &reachError{why: "the push service did not answer in time", timeout: true, err: err}
	case errors.As(err, &dnsErr):
		return &reachError{why: "the push service's host name does not resolve", err: err}
	case errors.As(err, &opErr) && opErr.Op == "dial":
		return &reachError{why: "could not connect to the push service", err: err}
	}
	return &reachError{why: fmt.Sprintf("the push request failed (%s)", transportKind(err)), err: err}
}

func isTimeout(err error) bool {
	var t interface{ Timeout() bool }
	return errors.As(err, &t) && t.Timeout()
}

// transportKind names a transport failure without quoting it.
func transportKind(err error) string {
	s := err.Error()
	switch {
	case strings.Contains(s, "tls:") || strings.Contains(s, "x509:") || strings.Contains(s, "certificate"):
		return "TLS"
	case strings.Contains(s, "EOF") || strings.Contains(s, "reset") || strings.Contains(s, "broken pipe"):
		return "connection lost"
	}
	return "network"
}

// KnownService reports whether endpoint is at one of the push services the
// browsers themselves use (Chrome's FCM, Firefox's autopush, Safari's and
// Edge's). Only a subscription there, made from a signed-in browser, is
// taken as confirmed at once: the service answers only for subscriptions
// its browser made, so a made-up one fails harmlessly. Any other endpoint
// is a server the user chose, which has to show it is theirs by opening
// the pushed confirmation link, like an email address or a nick.
func KnownService(endpoint string) bool {
	u, err := url.Parse(endpoint)
	if err != nil || u.Scheme != "https" || (u.Port() != "" && u.Port() != "443") {
		return false
	}
	h := strings.ToLower(u.Hostname())
	return h == "fcm.googleapis.com" || h == "updates.push.services.mozilla.com" ||
		strings.HasSuffix(h, ".push.apple.com") || strings.HasSuffix(h, ".notify.windows.com")
}

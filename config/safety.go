package config

import (
	"fmt"
	"net/mail"
	"net/netip"
	"net/url"
	"strconv"
	"strings"
)

// Defaults of the per-account limits: generous for a person (Fedora's
// busiest packagers keep a few dozen rules), small enough that a script
// cannot make the matcher crawl (1,000 rules of 1,400 patterns each cost
// 41 ms a message).
const (
	DefaultMaxRulesPerUser        = 100
	DefaultMaxPatternsPerRule     = 300
	DefaultMaxDestinationsPerUser = 20
	// DefaultMaxStreamsPerUser: a person has a few tabs open; each open
	// stream holds a goroutine, a connection and a hub subscription.
	DefaultMaxStreamsPerUser = 10
	// DefaultMaxStreams bounds every user's streams together, per web
	// process.
	DefaultMaxStreams = 2000
)

// parseSafety reads the settings that guard fmn against hostile users and
// networks (issue 13) into c and returns the problems found.
func (c *Config) parseSafety(get func(k, def string) string) []error {
	var errs []error
	for _, v := range splitList(get("FMN_TRUSTED_PROXIES", "")) {
		p, err := parsePrefix(v)
		if err != nil {
			errs = append(errs, fmt.Errorf("FMN_TRUSTED_PROXIES: %q is not an address or CIDR (like 10.0.0.0/8 or ::1)", v))
			continue
		}
		c.TrustedProxies = append(c.TrustedProxies, p)
	}
	for _, l := range []struct {
		key string
		def int
		dst *int
	}{
		{"FMN_MAX_RULES_PER_USER", DefaultMaxRulesPerUser, &c.MaxRulesPerUser},
		{"FMN_MAX_PATTERNS_PER_RULE", DefaultMaxPatternsPerRule, &c.MaxPatternsPerRule},
		{"FMN_MAX_DESTINATIONS_PER_USER", DefaultMaxDestinationsPerUser, &c.MaxDestinationsPerUser},
		{"FMN_MAX_STREAMS_PER_USER", DefaultMaxStreamsPerUser, &c.MaxStreamsPerUser},
		{"FMN_MAX_STREAMS", DefaultMaxStreams, &c.MaxStreams},
	} {
		n, err := strconv.Atoi(get(l.key, strconv.Itoa(l.def)))
		if err != nil || n < 1 {
			errs = append(errs, fmt.Errorf("%s: want a whole number, at least 1", l.key))
		}
		*l.dst = n
	}
	// STARTTLS on smtp:// is required by default: a network attacker can
	// strip the server's offer, and opportunistic TLS would then send the
	// mail (and the password) in clear. A relay on loopback has nobody in
	// between, so there it is opportunistic.
	c.SMTPTLS = get("FMN_SMTP_TLS", "")
	if c.SMTPTLS == "" {
		c.SMTPTLS = "required"
		if u, err := url.Parse(c.SMTPURL); err == nil && loopbackHost(u.Hostname()) {
			c.SMTPTLS = "opportunistic"
		}
	}
	switch c.SMTPTLS {
	case "required", "opportunistic", "none":
	default:
		errs = append(errs, fmt.Errorf("FMN_SMTP_TLS: %q: want required, opportunistic or none", c.SMTPTLS))
	}
	return errs
}

func loopbackHost(h string) bool {
	a, err := netip.ParseAddr(strings.Trim(h, "[]"))
	return h == "localhost" || err == nil && a.Unmap().IsLoopback()
}

// parsePrefix reads a CIDR, or a bare address as a one-address prefix.
func parsePrefix(v string) (netip.Prefix, error) {
	if strings.Contains(v, "/") {
		p, err := netip.ParsePrefix(v)
		if err != nil {
			return p, err
		}
		if p.Addr().Is4In6() {
			p = netip.PrefixFrom(p.Addr().Unmap(), p.Bits()-96)
		}
		return p.Masked(), nil
	}
	a, err := netip.ParseAddr(v)
	if err != nil {
		return netip.Prefix{}, err
	}
	a = a.Unmap()
	return netip.PrefixFrom(a, a.BitLen()), nil
}

// validAdmin says what is wrong with one FMN_ADMINS entry, or "" when it
// is a verified email address or an OIDC issuer#subject. A bare user name
// is refused: names go to whoever signs up first (a sign-in as
// "Ad!min@evil.example" was named "admin"), an address or a provider's
// subject belongs to one person.
func validAdmin(v string) string {
	if iss, sub, ok := strings.Cut(v, "#"); ok {
		u, err := url.Parse(iss)
		if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" || sub == "" {
			return fmt.Sprintf("%q: want issuer#subject, the issuer an http(s) URL as FMN_OIDC_ISSUER gives it (https://id.example.org#1234)", v)
		}
		return ""
	}
	if strings.Contains(v, "@") {
		a, err := mail.ParseAddress(v)
		if err != nil || a.Name != "" || a.Address != v {
			return fmt.Sprintf("%q is not a plain email address (like jane@example.org)", v)
		}
		return ""
	}
	return fmt.Sprintf("%q is a bare user name, and names go to whoever signs up first: give the admin's email address (jane@example.org) or OIDC issuer#subject instead", v)
}

package config

import (
	"fmt"
	"net/netip"
	"strings"
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
	return errs
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

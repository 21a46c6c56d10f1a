package fmn

import (
	"bytes"
	"crypto/ecdh"
	"encoding/base64"
	"encoding/json"
	"net"
	"net/mail"
	"net/url"
	"regexp"
	"strings"
	"unicode"

	"fmn/apperr"
)

// ValidateAddress checks and normalises a destination address for its kind.
// Addresses reach mail headers, IRC lines and Matrix requests, so anything
// that could inject a header or a command (CR, LF, other control
// characters) is refused.
func ValidateAddress(kind Kind, address string) (string, error) {
	address = strings.TrimSpace(address)
	if strings.IndexFunc(address, unicode.IsControl) >= 0 {
		return "", apperr.Invalid("address", "the address contains control characters")
	}
	switch kind {
	case KindEmail:
		if len(address) > 254 {
			return "", apperr.Invalid("address", "an email address is at most 254 characters")
		}
		a, err := mail.ParseAddress(address)
		if err != nil || a.Address != address || a.Name != "" || !strings.Contains(address[strings.LastIndexByte(address, '@')+1:], ".") && !strings.HasSuffix(address, "@localhost") {
			return "", apperr.Invalid("address", "%q is not a plain email address like name@example.org", address)
		}
		return address, nil
	case KindIRC:
		if !ValidNick(address) {
			return "", apperr.Invalid("address", "%q is not an IRC nick: 1–30 letters, digits or []\\`_^{|}-, not starting with a digit or '-'", address)
		}
		return address, nil
	case KindMatrix:
		if !ValidMatrixID(address) {
			return "", apperr.Invalid("address", "%q is not a Matrix user ID like @jane:fedora.im (lower-case letters, digits and ._=-/+ before the colon)", address)
		}
		return address, nil
	case KindPush:
		return validateSubscription(address)
	default:
		return "", apperr.Invalid("kind", "kind must be email, irc, matrix or push")
	}
}

// AddressKey is the form in which two addresses of kind compare equal for
// rate limits: an email address as the mailbox it reaches (lower case,
// without a "+tag", which most providers deliver to the same mailbox, so
// victim+1@, victim+2@ … share one allowance), an IRC nick folded, a push
// subscription its endpoint, a Matrix ID as it is.
func AddressKey(kind Kind, address string) string {
	switch kind {
	case KindEmail:
		a := strings.ToLower(address)
		if plus := strings.IndexByte(a, '+'); plus >= 0 {
			if at := strings.IndexByte(a[plus:], '@'); at >= 0 {
				a = a[:plus] + a[plus+at:]
			}
		}
		return a
	case KindIRC:
		return FoldNick(address)
	case KindPush:
		var sub Subscription
		if json.Unmarshal([]byte(address), &sub) == nil && sub.Endpoint != "" {
			return sub.Endpoint
		}
	}
	return address
}

// FoldNick is an IRC nick's comparison key under the rfc1459 case mapping
// (what ngircd and most networks use): ASCII letters fold to lower case, and
// []\~ are the upper case of {}|^.
func FoldNick(nick string) string {
	return strings.Map(func(r rune) rune {
		switch {
		case r >= 'A' && r <= 'Z':
			return r + ('a' - 'A')
		case r == '[':
			return '{'
		case r == ']':
			return '}'
		case r == '\\':
			return '|'
		case r == '~':
			return '^'
		}
		return r
	}, nick)
}

// matrixIDRE is the Matrix user ID grammar of the current spec: a
// localpart of lower-case letters, digits and ._=-/+, then the server name
// (a host name, an IPv4 address or a bracketed IPv6 one, and a port).
var matrixIDRE = regexp.MustCompile(`^@[a-z0-9._=\-/+]+:(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9.-]+)(:[0-9]{1,5})?$`)

// ValidMatrixID reports whether s is a Matrix user ID (at most 255 bytes).
func ValidMatrixID(s string) bool { return len(s) <= 255 && matrixIDRE.MatchString(s) }

// nickRE is RFC 2812's nick syntax with the length most networks allow today
// (ngircd's MaxNickLength can be raised to 30; longer nicks exist nowhere).
var nickRE = regexp.MustCompile("^[A-Za-z\\[\\]\\\\`_^{|}][A-Za-z0-9\\[\\]\\\\`_^{|}-]{0,29}$")

// ValidNick reports whether s can be an IRC nick.
func ValidNick(s string) bool { return nickRE.MatchString(s) }

// Subscription is a browser's push subscription (PushSubscription.toJSON()
// without expirationTime): where to post and the keys to encrypt for.
type Subscription struct {
	Endpoint string `json:"endpoint"`
	Keys     struct {
		P256dh string `json:"p256dh"`
		Auth   string `json:"auth"`
	} `json:"keys"`
}

// maxEndpoint bounds a push endpoint URL; real ones (FCM, Mozilla, Apple)
// are a few hundred characters.
const maxEndpoint = 2048

// DecodeKey accepts the base64url a browser gives, padded or not.
func DecodeKey(s string) ([]byte, error) {
	return base64.RawURLEncoding.DecodeString(strings.TrimRight(s, "="))
}

// validateSubscription checks a subscription and returns it re-encoded in
// one canonical form, so that the same browser subscribing twice is the
// same destination. The endpoint must be https; plain http is accepted for a
// loopback host only (a push service run by tests or a developer).
func validateSubscription(address string) (string, error) {
	dec := json.NewDecoder(strings.NewReader(address))
	var raw struct {
		Subscription
		ExpirationTime any `json:"expirationTime"`
	}
	dec.DisallowUnknownFields()
	if err := dec.Decode(&raw); err != nil || dec.More() {
		return "", apperr.Invalid("address", `a push address is the browser's subscription JSON: {"endpoint": "https://…", "keys": {"p256dh": "…", "auth": "…"}}`)
	}
	sub := raw.Subscription
	if len(sub.Endpoint) > maxEndpoint {
		return "", apperr.Invalid("address", "the push endpoint is longer than %d characters", maxEndpoint)
	}
	u, err := url.Parse(sub.Endpoint)
	if err != nil || u.Host == "" || u.User != nil || u.Fragment != "" ||
		!(u.Scheme == "https" || u.Scheme == "http" && isLoopback(u.Hostname())) {
		return "", apperr.Invalid("address", "the push endpoint must be an https:// URL")
	}
	p256, err := DecodeKey(sub.Keys.P256dh)
	if err == nil {
		_, err = ecdh.P256().NewPublicKey(p256)
	}
	if err != nil {
		return "", apperr.Invalid("address", "keys.p256dh must be the base64url of an uncompressed P-256 public key")
	}
	auth, err := DecodeKey(sub.Keys.Auth)
	if err != nil || len(auth) != 16 {
		return "", apperr.Invalid("address", "keys.auth must be the base64url of 16 bytes")
	}
	var norm Subscription
	norm.Endpoint = u.String()
	norm.Keys.P256dh = base64.RawURLEncoding.EncodeToString(p256)
	norm.Keys.Auth = base64.RawURLEncoding.EncodeToString(auth)
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(norm); err != nil {
		return "", err
	}
	return strings.TrimSpace(b.String()), nil
}

func isLoopback(host string) bool {
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

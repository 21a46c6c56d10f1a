package delivery

import (
	"bytes"
	"crypto/ecdh"
	"encoding/base64"
	"encoding/json"
	"net"
	"net/url"
	"regexp"
	"strings"

	"fmn/apperr"
)

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

// decodeKey accepts the base64url a browser gives, padded or not.
func decodeKey(s string) ([]byte, error) {
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
	p256, err := decodeKey(sub.Keys.P256dh)
	if err == nil {
		_, err = ecdh.P256().NewPublicKey(p256)
	}
	if err != nil {
		return "", apperr.Invalid("address", "keys.p256dh must be the base64url of an uncompressed P-256 public key")
	}
	auth, err := decodeKey(sub.Keys.Auth)
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

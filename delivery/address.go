// Package delivery sends notifications: the River job kinds, one sender per
// channel, and the formatting of what is sent.
package delivery

import (
	"net/mail"
	"strings"
	"unicode"

	"fmn/apperr"
)

// Channel names, used as destination kinds, River queue names and metric
// labels alike.
const (
	ChannelEmail = "email"
	ChannelIRC   = "irc"
	ChannelPush  = "push"
)

// ValidateAddress checks and normalises a destination address for its kind.
// Addresses reach mail headers and IRC lines, so anything that could inject a
// header or a command (CR, LF, other control characters) is refused.
func ValidateAddress(kind, address string) (string, error) {
	address = strings.TrimSpace(address)
	if strings.IndexFunc(address, unicode.IsControl) >= 0 {
		return "", apperr.Invalid("address", "the address contains control characters")
	}
	switch kind {
	case ChannelEmail:
		if len(address) > 254 {
			return "", apperr.Invalid("address", "an email address is at most 254 characters")
		}
		a, err := mail.ParseAddress(address)
		if err != nil || a.Address != address || a.Name != "" || !strings.Contains(address[strings.LastIndexByte(address, '@')+1:], ".") && !strings.HasSuffix(address, "@localhost") {
			return "", apperr.Invalid("address", "%q is not a plain email address like name@example.org", address)
		}
		return address, nil
	case ChannelIRC:
		if !ValidNick(address) {
			return "", apperr.Invalid("address", "%q is not an IRC nick: 1–30 letters, digits or []\\`_^{|}-, not starting with a digit or '-'", address)
		}
		return address, nil
	case ChannelPush:
		return validateSubscription(address)
	default:
		return "", apperr.Invalid("kind", "kind must be email, irc or push")
	}
}

package delivery

import (
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"
)

// IRC's protocol limit: a line is at most 512 bytes, CR LF included, as the
// recipient's server relays it to the recipient, prefixed with the sender's
// full nick!user@host.
const (
	ircLineMax = 512
	// The user and host parts of the bot's prefix are the server's choice:
	// assume the longest usual ("~" + a 10-character user, a 63-byte host).
	ircUserMax = 11
	ircHostMax = 63
)

// IRCTextBudget is how many bytes of text a PRIVMSG from botNick to target
// may carry so that the relayed line ":bot!user@host PRIVMSG target :text\r\n"
// stays within 512 bytes.
func IRCTextBudget(botNick, target string) int {
	overhead := len(":!@ PRIVMSG  :\r\n") + len(botNick) + ircUserMax + ircHostMax + len(target)
	return ircLineMax - overhead
}

// IRCClean makes bus content safe for one IRC line: invalid UTF-8 is
// replaced, every control character (CR, LF, NUL, the mIRC formatting codes,
// C1 controls) and every other kind of space becomes a plain space, and runs
// of spaces collapse to one. Nothing from a message can end the line early,
// start a second command or change the recipient's colours.
func IRCClean(s string) string {
	s = strings.ToValidUTF8(s, "\uFFFD")
	var b strings.Builder
	b.Grow(len(s))
	space := true // drop leading spaces
	skip := 0     // bytes of a colour code's parameters still to drop
	for i, r := range s {
		if skip > 0 && i < skip {
			continue
		}
		switch r {
		case '\x03': // mIRC colour: \x03[NN[,NN]]
			skip = i + 1 + colourParams(s[i+1:], isDigit, 2)
		case '\x04': // hex colour: \x04[RRGGBB[,RRGGBB]]
			skip = i + 1 + colourParams(s[i+1:], isHex, 6)
		}
		if unicode.IsControl(r) || unicode.IsSpace(r) || r == '\u2028' || r == '\u2029' ||
			unicode.Is(unicode.Cf, r) && r != '\u200d' {
			if !space {
				b.WriteByte(' ')
				space = true
			}
			continue
		}
		b.WriteRune(r)
		space = false
	}
	return strings.TrimRight(b.String(), " ")
}

// colourParams is the length of a colour code's "fg[,bg]" parameters at
// the start of s: up to n characters each, the background only after a
// foreground.
func colourParams(s string, ok func(byte) bool, n int) int {
	i := 0
	for i < len(s) && i < n && ok(s[i]) {
		i++
	}
	if i == 0 || i >= len(s) || s[i] != ',' {
		return i
	}
	j := i + 1
	for j < len(s) && j-i-1 < n && ok(s[j]) {
		j++
	}
	if j == i+1 {
		return i // a comma with no colour after it is text
	}
	return j
}

func isDigit(c byte) bool { return c >= '0' && c <= '9' }
func isHex(c byte) bool   { return isDigit(c) || c >= 'a' && c <= 'f' || c >= 'A' && c <= 'F' }

// CutAtWord shortens s to at most max bytes, ending with "…" at a word
// boundary when one is near (within the last third), else at a rune
// boundary. A string that fits is returned as it is.
func CutAtWord(s string, max int) string {
	if len(s) <= max {
		return s
	}
	const ellipsis = "…"
	limit := max - len(ellipsis)
	if limit <= 0 {
		return ""
	}
	for limit > 0 && !utf8.RuneStart(s[limit]) {
		limit--
	}
	cut := s[:limit]
	if i := strings.LastIndexByte(cut, ' '); i > limit*2/3 {
		cut = cut[:i]
	}
	return strings.TrimRight(cut, " ") + ellipsis
}

// IRCNotificationLine formats one notification as "[app] summary — link" in
// at most budget bytes: the summary is cut at a word, the link is kept whole
// unless it alone would leave no room for the summary.
func IRCNotificationLine(app, summary, link string, budget int) string {
	head := IRCClean(summary)
	if app = IRCClean(app); app != "" {
		head = "[" + app + "] " + head
	}
	tail := ""
	if link = IRCClean(link); link != "" && !strings.Contains(link, " ") {
		tail = " — " + link
	}
	if len(tail) > budget/2 {
		tail = ""
	}
	return CutAtWord(head, budget-len(tail)) + tail
}

// IRCMoreLine is the one line that stands for a burst's rest.
func IRCMoreLine(n int, historyURL string) string {
	return strconv.Itoa(n) + " more: " + historyURL
}

package delivery

import (
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"

	"fmn"
)

// Clean makes bus content safe for one line of chat or a push (IRC,
// Matrix's plain body, a push title): invalid UTF-8 is
// replaced, every control character (CR, LF, NUL, the mIRC formatting codes,
// C1 controls) and every other kind of space becomes a plain space, and runs
// of spaces collapse to one. Nothing from a message can end the line early,
// start a second command or change the recipient's colours.
func Clean(s string) string {
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

// Headline is what every channel's short form of a notification shows:
// the app, the summary (the topic when there is none) and the link, each
// made one clean line.
func Headline(m fmn.Message) (app, summary, link string) {
	summary = Clean(m.Summary)
	if summary == "" {
		summary = Clean(m.Topic)
	}
	link = Clean(m.Link)
	if strings.Contains(link, " ") {
		link = ""
	}
	return Clean(m.App), summary, link
}

// WhyURL is the page that tells a notification's owner why it was made
// (which rule, which of its entries) and how to stop more like it; every
// channel's message links to it.
func WhyURL(baseURL string, notificationID int64) string {
	return baseURL + "/notifications/" + strconv.FormatInt(notificationID, 10)
}

package irc

import (
	"fmn/delivery"
	"strconv"
	"strings"
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

// TextBudget is how many bytes of text a PRIVMSG from botNick to target
// may carry so that the relayed line ":bot!user@host PRIVMSG target :text\r\n"
// stays within 512 bytes.
func TextBudget(botNick, target string) int {
	overhead := len(":!@ PRIVMSG  :\r\n") + len(botNick) + ircUserMax + ircHostMax + len(target)
	return ircLineMax - overhead
}

// NotificationLine formats one notification as "[app] summary — link" in
// at most budget bytes: the summary is cut at a word, the link is kept whole
// unless it alone would leave no room for the summary.
func NotificationLine(app, summary, link string, budget int) string {
	head := delivery.Clean(summary)
	if app = delivery.Clean(app); app != "" {
		head = "[" + app + "] " + head
	}
	tail := ""
	if link = delivery.Clean(link); link != "" && !strings.Contains(link, " ") {
		tail = " — " + link
	}
	if len(tail) > budget/2 {
		tail = ""
	}
	return delivery.CutAtWord(head, budget-len(tail)) + tail
}

// minWithWhy is the least room the rest of a line keeps when the "why"
// link is added: below it, the notification itself matters more.
const minWithWhy = 160

// WithWhy is NotificationLine followed by " (why: URL)", the page saying
// why the notification was made, when the budget leaves room for both.
func WithWhy(app, summary, link, why string, budget int) string {
	tail := " (why: " + delivery.Clean(why) + ")"
	if why == "" || budget-len(tail) < minWithWhy {
		return NotificationLine(app, summary, link, budget)
	}
	return NotificationLine(app, summary, link, budget-len(tail)) + tail
}

// MoreLine is the one line that stands for a burst's rest.
func MoreLine(n int, historyURL string) string {
	return strconv.Itoa(n) + " more: " + historyURL
}

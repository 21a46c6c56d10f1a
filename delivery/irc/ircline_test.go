package irc

import (
	"strconv"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/ergochat/irc-go/ircevent"
)

func TestNotificationLine(t *testing.T) {
	t.Parallel()
	link := "https://bodhi.fedoraproject.org/updates/FEDORA-2026-1"
	if got := NotificationLine("bodhi", "alice commented", link, 400); got != "[bodhi] alice commented — "+link {
		t.Fatalf("short line %q", got)
	}
	if got := NotificationLine("", "no app", "", 400); got != "no app" {
		t.Fatalf("no app, no link: %q", got)
	}
	long := strings.Repeat("héllo ", 200)
	got := NotificationLine("bodhi", long, link, 300)
	if len(got) > 300 || !strings.HasSuffix(got, "héllo… — "+link) || !utf8.ValidString(got) {
		t.Fatalf("long line (%d bytes) %q", len(got), got)
	}
	// One long word is cut at a rune, never inside one.
	got = NotificationLine("x", strings.Repeat("é", 300), "", 101)
	if len(got) > 101 || !utf8.ValidString(got) || !strings.HasSuffix(got, "…") {
		t.Fatalf("long word (%d bytes) %q", len(got), got)
	}
	// A link that would leave no room is dropped, not cut.
	got = NotificationLine("x", "summary", "https://example.org/"+strings.Repeat("a", 300), 200)
	if got != "[x] summary" {
		t.Fatalf("huge link: %q", got)
	}
	if got := NotificationLine("x", "s", "javascript:alert(1) x", 200); got != "[x] s" {
		t.Fatalf("link with spaces kept: %q", got)
	}
}

func TestTextBudget(t *testing.T) {
	t.Parallel()
	nick, target := "fmn-bot", "somebody"
	b := TextBudget(nick, target)
	relayed := ":" + nick + "!~" + strings.Repeat("u", 10) + "@" + strings.Repeat("h", 63) + " PRIVMSG " + target + " :" + strings.Repeat("x", b) + "\r\n"
	if len(relayed) != 512 {
		t.Fatalf("budget %d makes a %d-byte relayed line", b, len(relayed))
	}
}

func FuzzNotificationLine(f *testing.F) {
	f.Add("bodhi", "a\r\nb\x00c\x0304,05d", "https://x.org/", 300)
	f.Add("", strings.Repeat("é ", 300), "", 50)
	f.Fuzz(func(t *testing.T, app, summary, link string, budget int) {
		if budget < 20 || budget > 512 {
			return
		}
		got := NotificationLine(app, summary, link, budget)
		if len(got) > budget {
			t.Fatalf("%d bytes > budget %d", len(got), budget)
		}
		if strings.ContainsAny(got, "\r\n\x00") || !utf8.ValidString(got) {
			t.Fatalf("unsafe line %q", got)
		}
		for _, r := range got {
			if r < 0x20 || r == 0x7f {
				t.Fatalf("control character %U in %q", r, got)
			}
		}
	})
}

// TestIRCScheduling: nicks are served in turn (one nick's burst never
// delays another's line), replies go before notifications, and past its
// burst a nick's waiting notifications fold into one "N more" line.
func TestIRCScheduling(t *testing.T) {
	t.Parallel()
	b := &Bot{Settings: Settings{BaseURL: "http://fmn.test"}}
	b.init()
	b.conn = &ircevent.Connection{} // queued, never written: next() is called directly
	for i := range 20 {
		if _, err := b.enqueue("busy", "note "+string(rune('a'+i)), true, nil); err != nil {
			t.Fatal(err)
		}
	}
	b.enqueue("quiet", "one for quiet", true, nil)
	b.enqueue("busy", "a reply", false, nil)
	now := time.Now()
	var got []string
	for {
		nick, text, items, _ := b.next(now)
		if len(items) == 0 {
			break
		}
		got = append(got, nick+": "+text)
		now = now.Add(time.Second)
	}
	want := []string{
		"busy: a reply",
		"quiet: one for quiet",
		"busy: note a",
		"busy: note b",
		"busy: note c",
		"busy: 17 more: http://fmn.test/",
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Fatalf("lines:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	// After the window a nick gets lines of its own again.
	b.enqueue("busy", "later", true, nil)
	b.enqueue("busy", "later 2", true, nil)
	if _, text, _, _ := b.next(now.Add(2 * time.Minute)); text != "later" {
		t.Fatalf("after the window: %q", text)
	}
}

// TestIRCConnectionSettings: the URL decides TLS, the default port and SASL
// PLAIN (ngircd has no SASL, so this part is checked here, not live).
func TestIRCConnectionSettings(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		url, server     string
		tls, sasl       bool
		login, password string
	}{
		{"irc://irc.example.net", "irc.example.net:6667", false, false, "", ""},
		{"ircs://irc.example.net", "irc.example.net:6697", true, false, "", ""},
		{"ircs://fmn:s3cret@irc.example.net:7000", "irc.example.net:7000", true, true, "fmn", "s3cret"},
		{"irc://fmn@irc.example.net:6667", "irc.example.net:6667", false, false, "", ""},
	} {
		b := &Bot{Settings: Settings{URL: c.url, Nick: "fmn"}}
		conn, err := b.newConn()
		if err != nil {
			t.Fatal(err)
		}
		if conn.Server != c.server || conn.UseTLS != c.tls || conn.UseSASL != c.sasl || conn.SASLLogin != c.login ||
			conn.SASLPassword != c.password || (c.sasl && conn.SASLMech != "PLAIN") {
			t.Errorf("%s: server %s tls %v sasl %v %q", c.url, conn.Server, conn.UseTLS, conn.UseSASL, conn.SASLLogin)
		}
	}
	if _, err := (&Bot{Settings: Settings{URL: "http://x"}}).newConn(); err == nil {
		t.Error("http:// accepted as an IRC URL")
	}
}

// TestWithWhy: a notification line ends with the page saying why it was
// made, when the line has room for it; the rest of the line is cut first.
func TestWithWhy(t *testing.T) {
	t.Parallel()
	why := "https://fmn.example.org/notifications/42"
	link := "https://bodhi.fedoraproject.org/updates/FEDORA-2026-1"
	if got := WithWhy("bodhi", "alice commented", link, why, 400); got != "[bodhi] alice commented — "+link+" (why: "+why+")" {
		t.Fatalf("short line: %q", got)
	}
	long := strings.Repeat("word ", 200)
	got := WithWhy("bodhi", long, link, why, 400)
	if len(got) > 400 || !strings.HasSuffix(got, "… — "+link+" (why: "+why+")") {
		t.Fatalf("long line (%d bytes): %q", len(got), got)
	}
	// No room: the notification itself matters more.
	if got := WithWhy("bodhi", "alice commented", link, why, 150); strings.Contains(got, "why") || len(got) > 150 {
		t.Fatalf("tight budget: %q", got)
	}
}

// TestIRCTrickleStaysWithinBurst: notifications coming one at a time, each
// after the line before went out (a busy package, or a worker slowed
// down), get no more lines than a burst does: three of their own in the
// window, one "N more" line, then at most one line every
// BurstWindow/BurstLines. Before, a single waiting notification always
// went alone, so a trickle had a line each, without bound.
func TestIRCTrickleStaysWithinBurst(t *testing.T) {
	t.Parallel()
	b := &Bot{Settings: Settings{BaseURL: "http://fmn.test"}}
	b.init()
	b.conn = &ircevent.Connection{} // queued, never written: next() is called directly
	now := time.Now()
	var got []string
	for i := range 40 { // one every 500 ms: 20 s of trickle
		if _, err := b.enqueue("busy", "note "+strconv.Itoa(i), true, nil); err != nil {
			t.Fatal(err)
		}
		if _, text, items, _ := b.next(now); len(items) > 0 {
			got = append(got, text)
		}
		now = now.Add(500 * time.Millisecond)
	}
	// Whatever still waits goes once its turn comes.
	for range 3 {
		now = now.Add(b.BurstWindow / time.Duration(b.BurstLines))
		if _, text, items, _ := b.next(now); len(items) > 0 {
			got = append(got, text)
		}
	}
	// note 3 waits for company; with note 4 they are the one line past
	// the burst; the rest wait for the pace (20 s).
	want := []string{"note 0", "note 1", "note 2", "2 more: http://fmn.test/", "35 more: http://fmn.test/"}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Fatalf("lines:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}

package delivery

import (
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/ergochat/irc-go/ircevent"
)

func TestIRCClean(t *testing.T) {
	t.Parallel()
	for _, c := range []struct{ in, want string }{
		{"plain text", "plain text"},
		{"  two\r\nlines\n", "two lines"},
		{"nul\x00byte", "nul byte"},
		{"\x02bold\x02 \x1ditalic\x1d \x1funder\x1f", "bold italic under"},
		{"\x0304,12red on blue\x03 done", "red on blue done"},
		{"\x03123 keeps the third digit", "3 keeps the third digit"},
		{"\x03,5 comma is text", ",5 comma is text"},
		{"\x04FF00AA,00ff00hex\x04", "hex"},
		{"tab\tand\u2028sep\u00a0nbsp", "tab and sep nbsp"},
		{"bidi\u202eoverride", "bidi override"},
		{"bad \xff utf8", "bad \uFFFD utf8"},
		{"ctcp \x01ACTION x\x01", "ctcp ACTION x"},
	} {
		if got := IRCClean(c.in); got != c.want {
			t.Errorf("IRCClean(%q) = %q, want %q", c.in, got, c.want)
		}
	}
}

func TestIRCNotificationLine(t *testing.T) {
	t.Parallel()
	link := "https://bodhi.fedoraproject.org/updates/FEDORA-2026-1"
	if got := IRCNotificationLine("bodhi", "alice commented", link, 400); got != "[bodhi] alice commented — "+link {
		t.Fatalf("short line %q", got)
	}
	if got := IRCNotificationLine("", "no app", "", 400); got != "no app" {
		t.Fatalf("no app, no link: %q", got)
	}
	long := strings.Repeat("héllo ", 200)
	got := IRCNotificationLine("bodhi", long, link, 300)
	if len(got) > 300 || !strings.HasSuffix(got, "héllo… — "+link) || !utf8.ValidString(got) {
		t.Fatalf("long line (%d bytes) %q", len(got), got)
	}
	// One long word is cut at a rune, never inside one.
	got = IRCNotificationLine("x", strings.Repeat("é", 300), "", 101)
	if len(got) > 101 || !utf8.ValidString(got) || !strings.HasSuffix(got, "…") {
		t.Fatalf("long word (%d bytes) %q", len(got), got)
	}
	// A link that would leave no room is dropped, not cut.
	got = IRCNotificationLine("x", "summary", "https://example.org/"+strings.Repeat("a", 300), 200)
	if got != "[x] summary" {
		t.Fatalf("huge link: %q", got)
	}
	if got := IRCNotificationLine("x", "s", "javascript:alert(1) x", 200); got != "[x] s" {
		t.Fatalf("link with spaces kept: %q", got)
	}
}

func TestIRCTextBudget(t *testing.T) {
	t.Parallel()
	nick, target := "fmn-bot", "somebody"
	b := IRCTextBudget(nick, target)
	relayed := ":" + nick + "!~" + strings.Repeat("u", 10) + "@" + strings.Repeat("h", 63) + " PRIVMSG " + target + " :" + strings.Repeat("x", b) + "\r\n"
	if len(relayed) != 512 {
		t.Fatalf("budget %d makes a %d-byte relayed line", b, len(relayed))
	}
}

func FuzzIRCNotificationLine(f *testing.F) {
	f.Add("bodhi", "a\r\nb\x00c\x0304,05d", "https://x.org/", 300)
	f.Add("", strings.Repeat("é ", 300), "", 50)
	f.Fuzz(func(t *testing.T, app, summary, link string, budget int) {
		if budget < 20 || budget > 512 {
			return
		}
		got := IRCNotificationLine(app, summary, link, budget)
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

func TestValidateIRCAndPushAddresses(t *testing.T) {
	t.Parallel()
	for _, nick := range []string{"alice", "Alice_", "[away]", "a-b", "x^{|}", strings.Repeat("n", 30)} {
		if got, err := ValidateAddress(ChannelIRC, nick); err != nil || got != nick {
			t.Errorf("nick %q refused: %v", nick, err)
		}
	}
	for _, nick := range []string{"", "1abc", "-abc", "a b", "a\r\nQUIT", "#chan", "a!b", strings.Repeat("n", 31), "é"} {
		if _, err := ValidateAddress(ChannelIRC, nick); err == nil {
			t.Errorf("nick %q accepted", nick)
		}
	}
	p256 := "BNcRdreALRFXTkOOUHK1EtK2wtaz5Ry4YfYCA_0QTpQtUbVlUls0VJXg7A8u-Ts1XbjhazAkj7I99e8QcYP7DkM"
	auth := "tBHItJI5svbpez7KI4CCXg"
	good := `{"endpoint":"https://push.example.net/send/abc","expirationTime":null,"keys":{"auth":"` + auth + `","p256dh":"` + p256 + `"}}`
	got, err := ValidateAddress(ChannelPush, good)
	if err != nil {
		t.Fatal(err)
	}
	if want := `{"endpoint":"https://push.example.net/send/abc","keys":{"p256dh":"` + p256 + `","auth":"` + auth + `"}}`; got != want {
		t.Fatalf("normalised to %s", got)
	}
	if _, err := ValidateAddress(ChannelPush, strings.Replace(good, "https://push.example.net", "http://127.0.0.1:9", 1)); err != nil {
		t.Fatalf("loopback http endpoint refused: %v", err)
	}
	for name, bad := range map[string]string{
		"not json":      "https://push.example.net/x",
		"http":          strings.Replace(good, "https://", "http://", 1),
		"no endpoint":   strings.Replace(good, `"endpoint":"https://push.example.net/send/abc",`, "", 1),
		"bad p256dh":    strings.Replace(good, p256, "AAAA", 1),
		"off-curve":     strings.Replace(good, p256, "BA"+p256[2:], 1),
		"short auth":    strings.Replace(good, auth, "AAAA", 1),
		"unknown field": strings.Replace(good, `"expirationTime":null`, `"x":1`, 1),
		"two objects":   good + good,
	} {
		if _, err := ValidateAddress(ChannelPush, bad); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}

// TestIRCScheduling: nicks are served in turn (one nick's burst never
// delays another's line), replies go before notifications, and past its
// burst a nick's waiting notifications fold into one "N more" line.
func TestIRCScheduling(t *testing.T) {
	t.Parallel()
	b := &IRCBot{Settings: IRCSettings{BaseURL: "http://fmn.test"}}
	b.init()
	b.conn = &ircevent.Connection{} // queued, never written: next() is called directly
	for i := range 20 {
		if _, err := b.enqueue("busy", "note "+string(rune('a'+i)), true); err != nil {
			t.Fatal(err)
		}
	}
	b.enqueue("quiet", "one for quiet", true)
	b.enqueue("busy", "a reply", false)
	now := time.Now()
	var got []string
	for {
		nick, text, items := b.next(now)
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
	b.enqueue("busy", "later", true)
	b.enqueue("busy", "later 2", true)
	if _, text, _ := b.next(now.Add(2 * time.Minute)); text != "later" {
		t.Fatalf("after the window: %q", text)
	}
}

func TestParseMute(t *testing.T) {
	t.Parallel()
	for in, want := range map[string]time.Duration{"2h": 2 * time.Hour, "30m": 30 * time.Minute, "1d": 24 * time.Hour, "1H30M": 90 * time.Minute} {
		if d, ok := parseMute(in); !ok || d != want {
			t.Errorf("parseMute(%q) = %v %v", in, d, ok)
		}
	}
	for _, in := range []string{"", "0m", "30s", "31d", "-2h", "forever"} {
		if _, ok := parseMute(in); ok {
			t.Errorf("parseMute(%q) accepted", in)
		}
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
		b := &IRCBot{Settings: IRCSettings{URL: c.url, Nick: "fmn"}}
		conn, err := b.newConn()
		if err != nil {
			t.Fatal(err)
		}
		if conn.Server != c.server || conn.UseTLS != c.tls || conn.UseSASL != c.sasl || conn.SASLLogin != c.login ||
			conn.SASLPassword != c.password || (c.sasl && conn.SASLMech != "PLAIN") {
			t.Errorf("%s: server %s tls %v sasl %v %q", c.url, conn.Server, conn.UseTLS, conn.UseSASL, conn.SASLLogin)
		}
	}
	if _, err := (&IRCBot{Settings: IRCSettings{URL: "http://x"}}).newConn(); err == nil {
		t.Error("http:// accepted as an IRC URL")
	}
}

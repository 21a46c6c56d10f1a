package email

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"net/url"
	"strings"
	"time"

	"github.com/wneessen/go-mail"

	"fmn"
	"fmn/delivery"
	"fmn/store"
)

// Envelope is what every fmn mail to a destination carries besides its
// body: where it goes and the links of its footer.
type Envelope struct {
	To          string
	Unsubscribe string // the one-click link, {BaseURL}/unsubscribe/{token}
	Token       string
}

// notificationMail is the data of mail/notification.{txt,html}.
type notificationMail struct {
	Message      fmn.Message
	Summary      string // one line, never empty
	RuleName     string
	BaseURL      string
	WhyURL       string // the page saying why this notification was made
	RulesURL     string
	SettingsURL  string
	Unsubscribe  string
	PackagesLine string
}

// digestMail is the data of mail/digest.{txt,html}.
type digestMail struct {
	Count       int
	Groups      []digestApp
	More        int // items left out of the mail, shown in the history
	HistoryURL  string
	Rules       string
	RuleCount   int
	RulesURL    string
	SettingsURL string
	Unsubscribe string
}

type digestApp struct {
	App    string
	Count  int
	Things []digestThing
}

type digestThing struct {
	Title string
	Link  string
	Count int
	Items []digestItem
}

type digestItem struct {
	Summary string
	Agent   string
	When    string
}

// digestShown caps the items considered in one digest mail, thingShown the
// lines shown per thing (the count says how many there were): past that a
// digest stops being read, and the rest is one click away in the history.
const (
	digestShown = 50
	thingShown  = 5
)

// summaryOf is a message's one-line summary, falling back on its topic.
func summaryOf(m fmn.Message) string {
	s := OneLine(m.Summary, 300)
	if s == "" {
		s = OneLine(m.Topic, 300)
	}
	return s
}

// ThreadKey says which thing a message is about, so that mail about one
// update, build or pull request threads together: its link when it has
// one (the page of that thing), else its app and first package. Empty when
// neither is known: such a message starts no thread.
func ThreadKey(m fmn.Message) string {
	switch {
	case m.Link != "":
		return "link " + m.Link
	case len(m.Packages) > 0:
		return "package " + m.App + " " + m.Packages[0]
	}
	return ""
}

// threadID is the made-up Message-ID of a thread's root: mail clients
// thread on References even when the root itself never arrived.
func threadID(key, domain string) string {
	h := sha256.Sum256([]byte(key))
	return "<fmn.thread." + hex.EncodeToString(h[:12]) + "@" + domain + ">"
}

// newMsg starts a mail with the headers every fmn mail shares.
func (s *Channel) newMsg(env Envelope, subject, messageID string) (*mail.Msg, error) {
	m := mail.NewMsg()
	if err := m.From(s.Settings.From); err != nil {
		return nil, fmt.Errorf("from address: %w", err)
	}
	if err := m.To(env.To); err != nil {
		return nil, fmt.Errorf("to address: %w", err)
	}
	m.Subject(OneLine(subject, 200))
	m.SetMessageIDWithValue(messageID)
	m.SetDateWithValue(s.now())
	m.SetGenHeaderPreformatted("List-Id", "fmn notifications <notifications."+listDomain(s.Settings.BaseURL)+">")
	// RFC 3834: no vacation replies to notifications.
	m.SetGenHeaderPreformatted("Auto-Submitted", "auto-generated")
	mailto := "mailto:" + bareAddress(s.Settings.From) + "?subject=" + url.PathEscape("unsubscribe "+env.Token)
	if strings.HasPrefix(env.Unsubscribe, "https://") {
		if err := m.SetListUnsubscribeOneClick(env.Unsubscribe, mailto); err != nil {
			return nil, fmt.Errorf("unsubscribe headers: %w", err)
		}
	} else {
		// RFC 8058 allows one-click only over https; a plain-http
		// deployment (a laptop) still gets the link and the mailto.
		m.SetListUnsubscribe(env.Unsubscribe, mailto)
	}
	return m, nil
}

func (s *Channel) notificationData(env Envelope, n fmn.Notification) notificationMail {
	return notificationMail{
		Message: n.Message, Summary: summaryOf(n.Message), RuleName: OneLine(n.RuleName, 100),
		BaseURL: s.Settings.BaseURL, WhyURL: delivery.WhyURL(s.Settings.BaseURL, n.ID), RulesURL: s.Settings.BaseURL + "/rules",
		SettingsURL: s.Settings.BaseURL + "/destinations", Unsubscribe: env.Unsubscribe,
		PackagesLine: OneLine(strings.Join(n.Message.Packages, ", "), 300),
	}
}

// NotificationMsg builds the mail for one notification.
func (s *Channel) NotificationMsg(env Envelope, n fmn.Notification) (*mail.Msg, error) {
	domain := mailDomain(s.Settings.From)
	data := s.notificationData(env, n)
	text, err := s.Render.Text("notification", data)
	if err != nil {
		return nil, fmt.Errorf("render notification text: %w", err)
	}
	html, err := s.Render.HTML("notification", data)
	if err != nil {
		return nil, fmt.Errorf("render notification HTML: %w", err)
	}
	app := n.Message.App
	if app == "" {
		app = "fmn"
	}
	m, err := s.newMsg(env, fmt.Sprintf("[%s] %s", OneLine(app, 50), data.Summary),
		fmt.Sprintf("fmn.%d.%d@%s", n.ID, n.DestinationID, domain))
	if err != nil {
		return nil, err
	}
	m.SetGenHeader("X-Fedmsg-Topic", OneLine(n.Message.Topic, 200))
	m.SetGenHeader("X-Fedmsg-Category", OneLine(n.Message.App, 100))
	if n.Message.Agent != "" {
		m.SetGenHeader("X-Fedmsg-Username", OneLine(n.Message.Agent, 100))
	}
	if len(n.Message.Usernames) > 0 {
		m.SetGenHeader("X-Fedmsg-Usernames", OneLine(strings.Join(n.Message.Usernames, " "), 300))
	}
	if len(n.Message.Packages) > 0 {
		m.SetGenHeader("X-Fedmsg-Package", data.PackagesLine)
	}
	if n.RuleName != "" {
		m.SetGenHeader("X-Fedmsg-Rule", data.RuleName)
	}
	if key := ThreadKey(n.Message); key != "" {
		t := threadID(key, domain)
		m.SetGenHeaderPreformatted(mail.HeaderReferences, t)
		m.SetGenHeaderPreformatted(mail.HeaderInReplyTo, t)
	}
	m.SetBodyString(mail.TypeTextPlain, text)
	m.AddAlternativeString(mail.TypeTextHTML, html)
	return m, nil
}

// digestData groups a digest's items (newest first) by app and then by
// thing, every list newest first (an app or thing sits where its newest
// item does), and cuts it at digestShown items.
func (s *Channel) digestData(env Envelope, items []fmn.Notification, loc *time.Location) digestMail {
	d := digestMail{
		Count: len(items), HistoryURL: s.Settings.BaseURL + "/",
		RulesURL: s.Settings.BaseURL + "/rules", SettingsURL: s.Settings.BaseURL + "/destinations",
		Unsubscribe: env.Unsubscribe,
	}
	type appAcc struct {
		count  int
		keys   []string
		things map[string]*digestThing
	}
	apps := map[string]*appAcc{}
	var appOrder []string
	rules := map[string]bool{}
	var ruleNames []string
	for i, n := range items {
		app := OneLine(n.Message.App, 50)
		if app == "" {
			app = "other"
		}
		a := apps[app]
		if a == nil {
			a = &appAcc{things: map[string]*digestThing{}}
			apps[app] = a
			appOrder = append(appOrder, app)
		}
		a.count++
		if r := OneLine(n.RuleName, 100); r != "" && !rules[r] {
			rules[r] = true
			ruleNames = append(ruleNames, "“"+r+"”")
		}
		if i >= digestShown {
			d.More++
			continue
		}
		key := ThreadKey(n.Message)
		if key == "" {
			key = "msg " + n.Message.MsgID
		}
		t := a.things[key]
		if t == nil {
			t = &digestThing{Title: summaryOf(n.Message), Link: n.Message.Link}
			a.things[key] = t
			a.keys = append(a.keys, key)
		}
		t.Count++
		if len(t.Items) >= thingShown {
			continue
		}
		when := n.Message.ReceivedAt
		if n.Message.SentAt != nil {
			when = *n.Message.SentAt
		}
		t.Items = append(t.Items, digestItem{Summary: summaryOf(n.Message), Agent: OneLine(n.Message.Agent, 64),
			When: when.In(loc).Format("Jan 2 15:04")})
	}
	for _, name := range appOrder {
		a := apps[name]
		g := digestApp{App: name, Count: a.count}
		for _, k := range a.keys {
			g.Things = append(g.Things, *a.things[k])
		}
		d.Groups = append(d.Groups, g)
	}
	d.Rules, d.RuleCount = strings.Join(ruleNames, ", "), len(ruleNames)
	return d
}

// DigestMsg builds the mail for one digest.
func (s *Channel) DigestMsg(env Envelope, dg store.Digest, loc *time.Location) (*mail.Msg, error) {
	data := s.digestData(env, dg.Items, loc)
	text, err := s.Render.Text("digest", data)
	if err != nil {
		return nil, fmt.Errorf("render digest text: %w", err)
	}
	html, err := s.Render.HTML("digest", data)
	if err != nil {
		return nil, fmt.Errorf("render digest HTML: %w", err)
	}
	var names []string
	for _, g := range data.Groups {
		names = append(names, g.App)
	}
	noun := "notifications"
	if data.Count == 1 {
		noun = "notification"
	}
	m, err := s.newMsg(env, fmt.Sprintf("[fmn] %d %s: %s", data.Count, noun, strings.Join(names, ", ")),
		fmt.Sprintf("fmn.digest.%d.%d@%s", dg.ID, dg.DestinationID, mailDomain(s.Settings.From)))
	if err != nil {
		return nil, err
	}
	m.SetGenHeader("X-Fedmsg-Digest", fmt.Sprint(data.Count))
	m.SetBodyString(mail.TypeTextPlain, text)
	m.AddAlternativeString(mail.TypeTextHTML, html)
	return m, nil
}

// bareAddress is the address part of a From value like "fmn <a@b>".
func bareAddress(from string) string {
	if i := strings.LastIndexByte(from, '<'); i >= 0 {
		return strings.TrimSuffix(from[i+1:], ">")
	}
	return from
}

func mailDomain(from string) string {
	a := bareAddress(from)
	if i := strings.LastIndexByte(a, '@'); i >= 0 {
		return a[i+1:]
	}
	return "fmn.invalid"
}

// listDomain is the host of the base URL, for List-Id.
func listDomain(baseURL string) string {
	u, err := url.Parse(baseURL)
	if err != nil || u.Hostname() == "" {
		return "fmn.invalid"
	}
	return u.Hostname()
}

package web

import (
	"bytes"
	"errors"
	"fmt"
	"html/template"
	"io/fs"
	"net/http"
	"net/url"
	"path"
	"slices"
	"strings"
	"time"

	"github.com/go-chi/chi/v5"

	"fmn"
	"fmn/apperr"
	"fmn/store"
	"fmn/templates"
)

// parsePages parses each page together with the layout, so that every page
// can fill the layout's blocks, and with the pieces several pages share
// (partials.html). A page missing here fails the start.
func parsePages() (map[string]*template.Template, error) {
	funcs := template.FuncMap{
		"ago":       ago,
		"at":        at,
		"status":    notificationStatus,
		"join":      strings.Join,
		"policy":    policyText,
		"args":      listFieldArgs,
		"has":       slices.Contains[[]int64],
		"kindLabel": kindLabel,
	}
	names, err := fs.Glob(templates.FS, "*.html")
	if err != nil {
		return nil, err
	}
	pages := map[string]*template.Template{}
	for _, n := range names {
		if n == "layout.html" || n == "partials.html" {
			continue
		}
		t, err := template.New("layout.html").Funcs(funcs).ParseFS(templates.FS, "layout.html", "partials.html", n)
		if err != nil {
			return nil, fmt.Errorf("parse page %s: %w", n, err)
		}
		pages[path.Base(n)] = t
	}
	for _, want := range []string{"home.html", "error.html", "confirm.html", "login.html", "rules.html", "rule.html",
		"destinations.html", "settings.html", "admin.html", "welcome.html", "notification.html", "link.html", "ask.html", "firstrule.html"} {
		if pages[want] == nil {
			return nil, fmt.Errorf("page template %s is missing", want)
		}
	}
	return pages, nil
}

// listField is one comma-separated list input of the rule editor.
type listField struct {
	ID, Label, Value, Placeholder, List, Error string
}

func listFieldArgs(id, label, value, placeholder, list string, errs map[string]string) listField {
	return listField{ID: id, Label: label, Value: value, Placeholder: placeholder, List: list, Error: errs[id]}
}

// renderStatus renders into a buffer first, so a template error becomes a
// clean 500 rather than half a page.
func (s *Server) renderStatus(w http.ResponseWriter, status int, name string, data any) {
	var buf bytes.Buffer
	t := s.pages[name]
	if t == nil {
		s.log.Error("no such page template", "name", name)
		http.Error(w, "Internal error.", http.StatusInternalServerError)
		return
	}
	if err := t.Execute(&buf, data); err != nil {
		s.log.Error("render page", "name", name, "err", err)
		http.Error(w, "Internal error.", http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.WriteHeader(status)
	buf.WriteTo(w)
}

// Page is what the layout needs on every page: the title and who is
// signed in (for the navigation).
type Page struct {
	Title string
	User  store.User
	Admin bool
	Path  string
	OIDC  bool
	// Zone is the reader's time zone (UTC for visitors): every time on a
	// page is shown in it.
	Zone *time.Location
}

func (s *Server) base(r *http.Request, title string) Page {
	u := userFrom(r.Context())
	return Page{Title: title, User: u, Admin: s.isAdmin(r), Path: r.URL.Path, OIDC: s.Auth.OIDC(), Zone: userZone(u.Timezone)}
}

// askPage asks before something is undone for good (deleting a rule or a
// destination): a page of its own with a button, so it works without
// JavaScript and a stray click on the list changes nothing.
type askPage struct {
	Page
	Question string
	Details  []string
	Action   string // where the button posts
	Button   string
	Cancel   string // where "keep it" goes
}

type errorPage struct {
	Page
	Message string
}

// historyPage is how many notifications the history shows at a time.
const historyPage = 100

type homePage struct {
	Page
	Messages      []fmn.Message
	Total         int64
	Exact         bool // Total is a count, not an estimate
	Notifications []fmn.Notification
	Before        int64 // set when there are older notifications
	Older         bool  // this page is not the newest
}

// home shows a signed-in user their notification history (kept live by
// live.js), and a visitor the newest messages on the bus.
func (s *Server) home(w http.ResponseWriter, r *http.Request) error {
	if signedIn(r) {
		_, before, err := paging(r, historyPage, historyPage)
		if err != nil {
			return err
		}
		ns, err := s.Store.ListNotifications(r.Context(), userFrom(r.Context()).ID, historyPage, before)
		if err != nil {
			return err
		}
		data := homePage{Page: s.base(r, "Your notifications"), Notifications: ns, Older: before != 0}
		if len(ns) == historyPage {
			data.Before = ns[len(ns)-1].ID
		}
		s.renderStatus(w, http.StatusOK, "home.html", data)
		return nil
	}
	ms, err := s.Store.RecentMessages(r.Context(), 50, 0)
	if err != nil {
		return err
	}
	// An estimate, not count(*): this page is anyone's to load, often.
	total, exact, err := s.Store.EstimateMessages(r.Context())
	if err != nil {
		return err
	}
	s.renderStatus(w, http.StatusOK, "home.html", homePage{Page: s.base(r, "Recent messages"), Messages: ms, Total: total, Exact: exact})
	return nil
}

type confirmPage struct {
	Page
	Destination fmn.Destination
	// Card offers the owner, when signed in, to send rules to the
	// destination just confirmed, if none does yet.
	Card *destinationCard
}

// linkPage is the page a mailed link opens: one button that POSTs back to
// the same address. Only the POST acts, so a mail scanner or a link
// preview that fetches the link confirms and spends nothing; the POST is
// same-site only (CrossOriginProtection), so no other site can press it.
type linkPage struct {
	Page
	Intro, Address, Action, Button string
}

// confirmLink shows the confirmation link's button, or says the link does
// not work. Nothing changes on GET.
func (s *Server) confirmLink(w http.ResponseWriter, r *http.Request) error {
	code := chi.URLParam(r, "code")
	d, err := s.Store.DestinationByCode(r.Context(), code)
	if errors.Is(err, apperr.ErrNotFound) {
		s.confirmLinkInvalid(w, r)
		return nil
	}
	if err != nil {
		return err
	}
	s.renderStatus(w, http.StatusOK, "link.html", linkPage{Page: s.base(r, "Confirm this destination"),
		Intro: "Send fmn's notifications (" + string(d.Kind) + ") to", Address: d.Address,
		Action: "/confirm/" + url.PathEscape(code), Button: "Confirm"})
	return nil
}

func (s *Server) confirmLinkInvalid(w http.ResponseWriter, r *http.Request) {
	s.renderStatus(w, http.StatusNotFound, "error.html", errorPage{Page: s.base(r, "Link not valid"),
		Message: "This confirmation link is unknown, was used already, or has expired. On your destinations page, “Send the confirmation again” mails a new one."})
}

// confirmPage is the confirmation link's button: it confirms the
// destination the code was issued for. The code is single-use and expires,
// and it only ever enables delivery to the very address it was sent to.
func (s *Server) confirmPage(w http.ResponseWriter, r *http.Request) error {
	d, err := s.Store.ConfirmByCode(r.Context(), chi.URLParam(r, "code"))
	if err == apperr.ErrNotFound {
		s.confirmLinkInvalid(w, r)
		return nil
	}
	if err != nil {
		return err
	}
	data := confirmPage{Page: s.base(r, "Confirmed"), Destination: d}
	if u := userFrom(r.Context()); u.ID == d.UserID {
		rs, err := s.Store.ListRules(r.Context(), u.ID)
		if err != nil {
			return err
		}
		card := destinationCards([]fmn.Destination{d}, rs)[0]
		card.OfferOpen = true
		data.Card = &card
	}
	s.renderStatus(w, http.StatusOK, "confirm.html", data)
	return nil
}

// kindLabel names a destination kind in the add form.
func kindLabel(k fmn.Kind) string {
	switch k {
	case fmn.KindEmail:
		return "Email"
	case fmn.KindIRC:
		return "IRC nick"
	case fmn.KindMatrix:
		return "Matrix user"
	}
	return string(k)
}

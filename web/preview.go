package web

import (
	"errors"
	"net/http"
	"strconv"
	"strings"

	"fmn/apperr"
	"fmn/rules"
	"fmn/store"
)

// Preview window: a week by default, at most a quarter, which the message
// log keeps and the indexes serve quickly.
const (
	previewDays    = 7
	previewMaxDays = 90
	previewLimit   = 20
)

// previewRule answers POST /api/v1/rules/preview: the stored messages of the
// last ?days= days (default 7) that the rule in the body would have matched,
// as {"count", "days", "messages": latest 20 with their summaries}. The body
// is a rule as for POST /rules; while the user is still typing it may have no
// name, and its destinations do not matter.
func (s *Server) previewRule(w http.ResponseWriter, r *http.Request) error {
	days := previewDays
	if v := r.URL.Query().Get("days"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > previewMaxDays {
			return apperr.Invalid("days", "days must be a whole number from 1 to %d", previewMaxDays)
		}
		days = n
	}
	var in ruleBody
	if err := decodeJSON(w, r, &in); err != nil {
		return err
	}
	u := userFrom(r.Context())
	rule := rules.Rule{UserID: u.ID, Name: in.Name, Enabled: true,
		Track: in.Track, Filters: in.Filters, Destinations: nonNil(in.Destinations)}
	p, err := s.preview(r, rule, days)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, p)
	return nil
}

// preview runs a rule over the stored messages for the signed-in user,
// within the previews' budget. The API and the editor both come here.
func (s *Server) preview(r *http.Request, rule rules.Rule, days int) (store.Preview, error) {
	u := userFrom(r.Context())
	rule.UserID, rule.Owner, rule.Enabled = u.ID, u.Name, true
	if rule.Name == "" {
		rule.Name = "preview"
	}
	if err := s.validRule(&rule); err != nil {
		return store.Preview{}, err
	}
	release, err := s.previews.acquire(r.Context(), u.ID)
	if err != nil {
		return store.Preview{}, err
	}
	defer release()
	return s.Store.PreviewRule(r.Context(), rule, u.Name, days, previewLimit)
}

// editorPreview is the editor's preview: {"count", "days", "messages"},
// each message as the page shows it, its time in the reader's zone.
type editorPreview struct {
	Count    int64            `json:"count"`
	Days     int              `json:"days"`
	Messages []previewMessage `json:"messages"`
	// Invalid says why the form, as typed so far, is not a rule yet (no
	// tracking entry, a bad pattern): an ordinary state while typing, so
	// the answer is still 200.
	Invalid *apiError `json:"invalid,omitempty"`
}

type previewMessage struct {
	App     string `json:"app"`
	Summary string `json:"summary"`
	Topic   string `json:"topic"`
	Link    string `json:"link,omitempty"` // http(s) only
	When    string `json:"when"`
	Ago     string `json:"ago"`
}

// previewRuleForm answers the editor's POST /rules/preview: the form as it
// stands, read by the very code that saves it (readRuleForm), previewed
// as POST /api/v1/rules/preview previews a rule; so the preview counts
// exactly what the saved rule would.
func (s *Server) previewRuleForm(w http.ResponseWriter, r *http.Request) error {
	if err := r.ParseForm(); err != nil {
		return apperr.Invalid("form", "the form could not be read")
	}
	var rule rules.Rule
	if _, err := readRuleForm(r.PostForm, &rule); err != nil {
		return err
	}
	rule.Destinations = []int64{} // where it sends changes nothing of what it matches
	p, err := s.preview(r, rule, previewDays)
	var inv *apperr.InvalidError
	if errors.As(err, &inv) {
		writeJSON(w, http.StatusOK, editorPreview{Days: previewDays, Messages: []previewMessage{},
			Invalid: &apiError{Error: inv.Message, Field: inv.Field}})
		return nil
	}
	if err != nil {
		return err
	}
	zone := userZone(userFrom(r.Context()).Timezone)
	out := editorPreview{Count: p.Count, Days: p.Days, Messages: make([]previewMessage, 0, len(p.Messages))}
	for _, m := range p.Messages {
		pm := previewMessage{App: m.App, Summary: m.Summary, Topic: m.Topic, When: at(zone, m.ReceivedAt), Ago: ago(zone, m.ReceivedAt)}
		if l := strings.ToLower(m.Link); strings.HasPrefix(l, "https://") || strings.HasPrefix(l, "http://") {
			pm.Link = m.Link
		}
		out.Messages = append(out.Messages, pm)
	}
	writeJSON(w, http.StatusOK, out)
	return nil
}

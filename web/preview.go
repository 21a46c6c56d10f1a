package web

import (
	"net/http"
	"strconv"

	"fmn/apperr"
	"fmn/rules"
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
	rule := rules.Rule{UserID: u.ID, Owner: u.Name, Name: in.Name, Enabled: true,
		Track: in.Track, Filters: in.Filters, Destinations: nonNil(in.Destinations)}
	if rule.Name == "" {
		rule.Name = "preview"
	}
	if err := s.validRule(&rule); err != nil {
		return err
	}
	release, err := s.previews.acquire(r.Context(), u.ID)
	if err != nil {
		return err
	}
	defer release()
	p, err := s.Store.PreviewRule(r.Context(), rule, u.Name, days, previewLimit)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, p)
	return nil
}

package web

import (
	"errors"
	"net/http"
	"strings"
	"time"

	"fmn"
	"fmn/apperr"
	"fmn/rules"
)

// The first rule offered to a new user: the packager's classic, "my
// packages, not my own actions" (Fedora's FMN users asked for default
// rules). It is offered once, right after the first sign-in, and made only
// when the user says yes.
const firstRuleName = "my packages"

func firstRule(userID int64) rules.Rule {
	return rules.Rule{UserID: userID, Name: firstRuleName, Enabled: true,
		Track:   rules.Track{Owned: true, Mine: true},
		Filters: rules.Filters{NotMyActions: true}}
}

// declinedCookie remembers, in this browser, that the offer was declined,
// so that a later sign-in to a still empty account does not ask again.
const declinedCookie = "fmn_first_rule"

type firstRulePage struct {
	Page
	// Address is where the rule would send: the address the sign-in
	// proved, "" when there is none (the rule then fills the history).
	Address string
	Next    string
}

// offerFirstRule reports whether a user who just signed in should be
// offered the first rule: a fresh account (no rules, no destinations)
// that has not declined it in this browser.
func (s *Server) offerFirstRule(r *http.Request, userID int64) (bool, error) {
	if s.cookie(r, declinedCookie) != "" {
		return false, nil
	}
	rs, err := s.Store.ListRules(r.Context(), userID)
	if err != nil || len(rs) > 0 {
		return false, err
	}
	ds, err := s.Store.ListDestinations(r.Context(), userID)
	return len(ds) == 0, err
}

// firstRuleOffer shows the offer: what the rule does, where it would send,
// a button to make it and a way out.
func (s *Server) firstRuleOffer(w http.ResponseWriter, r *http.Request) error {
	u := userFrom(r.Context())
	s.renderStatus(w, http.StatusOK, "firstrule.html", firstRulePage{Page: s.base(r, "Start with a rule?"),
		Address: u.SignedInEmail, Next: localPath(r.URL.Query().Get("next"))})
	return nil
}

// acceptFirstRule makes the first rule, sending to the address the user
// signed in with (confirmed by that sign-in, see addDestination), or, when
// the sign-in proved none, to no destination: its matches then fill the
// history until one is added.
func (s *Server) acceptFirstRule(w http.ResponseWriter, r *http.Request) error {
	u := userFrom(r.Context())
	if r.PostFormValue("answer") != "yes" {
		s.setCookie(w, declinedCookie, "no", 365*24*time.Hour)
		return s.redirect(w, r, localPath(r.PostFormValue("next")))
	}
	rule := firstRule(u.ID)
	rule.Destinations = []int64{}
	if u.SignedInEmail != "" {
		d, err := s.addDestination(r.Context(), u, string(fmn.KindEmail), u.SignedInEmail)
		var inv *apperr.InvalidError
		if errors.As(err, &inv) && inv.Field == "address" {
			// Added already: use that one.
			ds, lerr := s.Store.ListDestinations(r.Context(), u.ID)
			if lerr != nil {
				return lerr
			}
			for _, x := range ds {
				if x.Kind == fmn.KindEmail && strings.EqualFold(x.Address, u.SignedInEmail) {
					d, err = x, nil
				}
			}
		}
		if err != nil {
			return err
		}
		rule.Destinations = []int64{d.ID}
	}
	if err := rule.Validate(); err != nil {
		return err
	}
	if _, err := s.Store.SaveRuleWithin(r.Context(), rule, s.Limits.RulesPerUser); err != nil {
		return err
	}
	return s.redirect(w, r, "/rules?done=first")
}

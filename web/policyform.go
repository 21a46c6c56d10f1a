package web

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"regexp"
	"strconv"
	"strings"
	"time"

	"fmn"
	"fmn/apperr"
	"fmn/store"
)

// policyFields are a delivery policy as its form shows it: stored values,
// or what the user typed when the form comes back with an error.
type policyFields struct {
	Mode    string `json:"mode"`
	Every   string `json:"every"`
	DailyAt string `json:"daily_at"`
	After   string `json:"-"`
}

// policyOf fills the form from a stored policy, its every in words.
func policyOf(raw json.RawMessage) policyFields {
	p := fmn.PolicyOf(raw)
	f := policyFields{Mode: p.Mode, DailyAt: p.DailyAt}
	if d, err := time.ParseDuration(p.Every); err == nil && p.Every != "" {
		f.Every = humanDuration(d)
	}
	if p.After > 0 {
		f.After = strconv.Itoa(p.After)
	}
	return f
}

// everyChoices are offered beside the free-text "every" field.
var everyChoices = []string{"15 minutes", "30 minutes", "1 hour", "2 hours", "4 hours", "12 hours", "1 day", "1 week"}

// durationPart is one number and unit of a duration as people write it:
// "2 hours", "90 min", "1h", "1.5 h".
var durationPart = regexp.MustCompile(`^(\d+(?:[.,]\d+)?)\s*([a-zA-Z]*)\s*(?:,|and)?\s*`)

var durationUnits = map[string]time.Duration{
	"s": time.Second, "sec": time.Second, "secs": time.Second, "second": time.Second, "seconds": time.Second,
	"m": time.Minute, "min": time.Minute, "mins": time.Minute, "minute": time.Minute, "minutes": time.Minute,
	"h": time.Hour, "hr": time.Hour, "hrs": time.Hour, "hour": time.Hour, "hours": time.Hour,
	"d": 24 * time.Hour, "day": 24 * time.Hour, "days": 24 * time.Hour,
	"w": 7 * 24 * time.Hour, "week": 7 * 24 * time.Hour, "weeks": 7 * 24 * time.Hour,
}

// parseHumanDuration reads a duration as people write it: "2 hours",
// "90 min", "1h30m", "1 hour 30 minutes", "1.5h", "a day", or Go's own
// form. A bare number is minutes.
func parseHumanDuration(s string) (time.Duration, bool) {
	s = strings.ToLower(strings.TrimSpace(s))
	if s == "" {
		return 0, false
	}
	if d, err := time.ParseDuration(s); err == nil {
		return d, d > 0
	}
	for _, a := range []string{"an ", "a ", "one "} {
		if rest, ok := strings.CutPrefix(s, a); ok {
			s = "1 " + rest
		}
	}
	var total time.Duration
	for s != "" {
		m := durationPart.FindStringSubmatch(s)
		if m == nil {
			return 0, false
		}
		n, err := strconv.ParseFloat(strings.Replace(m[1], ",", ".", 1), 64)
		if err != nil {
			return 0, false
		}
		unit := time.Minute
		if m[2] != "" {
			u, ok := durationUnits[m[2]]
			if !ok {
				return 0, false
			}
			unit = u
		}
		total += time.Duration(n * float64(unit))
		s = s[len(m[0]):]
	}
	return total, total > 0
}

// humanDuration says a duration as people do: "2 hours", "1 hour 30
// minutes", "1 day".
func humanDuration(d time.Duration) string {
	var parts []string
	add := func(n int64, unit string) {
		if n == 0 {
			return
		}
		if n != 1 {
			unit += "s"
		}
		parts = append(parts, fmt.Sprintf("%d %s", n, unit))
	}
	if d%(7*24*time.Hour) == 0 {
		add(int64(d/(7*24*time.Hour)), "week")
	} else {
		add(int64(d/(24*time.Hour)), "day")
		d %= 24 * time.Hour
		add(int64(d/time.Hour), "hour")
		d %= time.Hour
		add(int64(d/time.Minute), "minute")
		d %= time.Minute
		add(int64(d/time.Second), "second")
	}
	if len(parts) == 0 {
		return "0 minutes"
	}
	return strings.Join(parts, " ")
}

// policyText says a delivery policy in words.
func policyText(raw json.RawMessage) string {
	p := policyOf(raw)
	if p.Mode != "digest" {
		return "at once"
	}
	var parts []string
	if p.Every != "" {
		parts = append(parts, "every "+p.Every)
	}
	if p.DailyAt != "" {
		parts = append(parts, "daily at "+p.DailyAt)
	}
	if p.After != "" {
		n := p.After + " items"
		if p.After == "1" {
			n = "1 item"
		}
		parts = append(parts, "after "+n)
	}
	return "a digest " + strings.Join(parts, ", or ") + ", whichever comes first"
}

// policyForm reads the delivery form and lets fmn.ParsePolicy judge it, so
// the page and the API accept the same policies. The page takes durations
// as people write them ("2 hours"). A refused form comes back with what
// was typed and the error beside its field. Under "at once" the digest
// fields are hidden (and, with JavaScript, disabled); what they held is not
// part of an immediate policy, so it is not sent as one.
func (s *Server) policyForm(w http.ResponseWriter, r *http.Request) error {
	id, err := pathID(r)
	if err != nil {
		return err
	}
	f := policyFields{Mode: r.PostFormValue("mode"), Every: strings.TrimSpace(r.PostFormValue("every")),
		DailyAt: strings.TrimSpace(r.PostFormValue("daily_at")), After: strings.TrimSpace(r.PostFormValue("after"))}
	refuse := func(field, msg string) error {
		return s.renderDestinations(w, r, http.StatusBadRequest, destinationsPage{ErrorFor: id, Typed: &f,
			Errors: map[string]string{field: msg}})
	}
	p := fmn.Policy{Mode: f.Mode}
	if f.Mode == "digest" {
		if f.Every != "" {
			d, ok := parseHumanDuration(f.Every)
			if !ok {
				return refuse("every", "Write a duration like “2 hours”, “90 min” or “1h30m”.")
			}
			p.Every = d.String()
		}
		p.DailyAt = f.DailyAt
		if f.After != "" {
			n, err := strconv.Atoi(f.After)
			if err != nil || n < 1 {
				return refuse("after", "A number of items, like 10.")
			}
			p.After = n
		}
	}
	raw, _ := json.Marshal(p)
	norm, err := fmn.ParsePolicy(raw)
	if err == nil {
		_, err = s.Store.UpdateDestination(r.Context(), userFrom(r.Context()).ID, id, store.DestinationPatch{Delivery: norm})
	}
	var inv *apperr.InvalidError
	if errors.As(err, &inv) {
		field := strings.TrimPrefix(inv.Field, "delivery.")
		switch field {
		case "every":
			return refuse(field, "Every: from 5 minutes to 1 week, like “2 hours”.")
		case "daily_at", "after":
			return refuse(field, inv.Message)
		case "delivery":
			if f.Mode == "digest" {
				return refuse("digest", "Fill in at least one: every, daily at, or after.")
			}
		}
		return refuse("mode", inv.Message)
	}
	if err != nil {
		return err
	}
	return s.redirect(w, r, fmt.Sprintf("/destinations?done=saved#destination-%d", id))
}

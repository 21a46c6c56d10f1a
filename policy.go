package fmn

import (
	"bytes"
	"encoding/json"
	"strings"
	"time"

	"fmn/apperr"
)

// Policy is a destination's delivery policy: {"mode":"immediate"}, or
// {"mode":"digest"} with any of every (a duration), daily_at (a local time
// in the owner's time zone) and after (a number of items). Whichever of
// them comes first sends the digest.
type Policy struct {
	Mode    string `json:"mode"`
	Every   string `json:"every,omitempty"`
	DailyAt string `json:"daily_at,omitempty"`
	After   int    `json:"after,omitempty"`
}

// Bounds on digest policies: a digest more often than every five minutes
// is a flood by another name; one rarer than a week is stale.
const (
	minEvery = 5 * time.Minute
	maxEvery = 7 * 24 * time.Hour
	maxAfter = 1000
)

// every returns the parsed every, or 0.
func (p Policy) every() time.Duration {
	d, _ := time.ParseDuration(p.Every)
	return d
}

// dailyAt returns the hour and minute of daily_at, ok false when unset.
func (p Policy) dailyAt() (h, m int, ok bool) {
	t, err := time.Parse("15:04", p.DailyAt)
	if err != nil {
		return 0, 0, false
	}
	return t.Hour(), t.Minute(), true
}

// Digest reports whether the policy collects mail into digests.
func (p Policy) Digest() bool { return p.Mode == "digest" }

// PolicyOf reads a stored policy; anything unreadable means immediate, the
// behaviour a user would expect from a destination they did not tune.
func PolicyOf(raw json.RawMessage) Policy {
	var p Policy
	if json.Unmarshal(raw, &p) != nil || p.Mode != "digest" {
		return Policy{Mode: "immediate"}
	}
	return p
}

// ParsePolicy validates a policy and returns its normalised JSON.
func ParsePolicy(raw json.RawMessage) (json.RawMessage, error) {
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.DisallowUnknownFields()
	var p Policy
	if err := dec.Decode(&p); err != nil {
		return nil, apperr.Invalid("delivery", `delivery must be an object like {"mode":"immediate"} or {"mode":"digest","every":"1h"}`)
	}
	switch p.Mode {
	case "immediate":
		if p.Every != "" || p.DailyAt != "" || p.After != 0 {
			return nil, apperr.Invalid("delivery", "every, daily_at and after belong to the digest mode")
		}
	case "digest":
		if p.Every == "" && p.DailyAt == "" && p.After == 0 {
			return nil, apperr.Invalid("delivery", "a digest needs every, daily_at or after")
		}
		if p.Every != "" {
			d, err := time.ParseDuration(p.Every)
			if err != nil || d < minEvery || d > maxEvery {
				return nil, apperr.Invalid("delivery.every", "every must be a duration from 5m to 168h, like \"1h\"")
			}
			p.Every = shortDuration(d)
		}
		if p.DailyAt != "" {
			t, err := time.Parse("15:04", p.DailyAt)
			if err != nil {
				return nil, apperr.Invalid("delivery.daily_at", "daily_at must be a time like \"08:00\"")
			}
			p.DailyAt = t.Format("15:04")
		}
		if p.After < 0 || p.After > maxAfter {
			return nil, apperr.Invalid("delivery.after", "after must be a number of items from 1 to %d", maxAfter)
		}
	default:
		return nil, apperr.Invalid("delivery.mode", `mode must be "immediate" or "digest"`)
	}
	return json.Marshal(p)
}

// Quiet hours: a user's start and end ("22:00", "07:00") in their time
// zone; the span may cross midnight. Equal or missing bounds mean none.
type Quiet struct {
	Loc        *time.Location
	Start, End string
}

// QuietOf builds Quiet from stored settings; an unknown zone is UTC.
func QuietOf(tz string, start, end *string) Quiet {
	loc, err := time.LoadLocation(tz)
	if err != nil {
		loc = time.UTC
	}
	q := Quiet{Loc: loc}
	if start != nil && end != nil {
		q.Start, q.End = *start, *end
	}
	return q
}

// Active reports whether now falls inside the quiet hours.
func (q Quiet) Active(now time.Time) bool {
	s, err1 := time.Parse("15:04", q.Start)
	e, err2 := time.Parse("15:04", q.End)
	if err1 != nil || err2 != nil {
		return false
	}
	l := now.In(q.Loc)
	t := l.Hour()*60 + l.Minute()
	sm, em := s.Hour()*60+s.Minute(), e.Hour()*60+e.Minute()
	switch {
	case sm < em:
		return t >= sm && t < em
	case sm > em:
		return t >= sm || t < em
	}
	return false
}

// lastDaily returns the latest h:m local time in loc at or before now.
func lastDaily(now time.Time, loc *time.Location, h, m int) time.Time {
	l := now.In(loc)
	at := time.Date(l.Year(), l.Month(), l.Day(), h, m, 0, 0, loc)
	if at.After(now) {
		at = time.Date(l.Year(), l.Month(), l.Day()-1, h, m, 0, 0, loc)
	}
	return at
}

// TimeDue reports whether the time part of a digest policy says to send
// now, items having waited since oldest: every has passed since the oldest
// item, or a daily_at moment came after it.
func (p Policy) TimeDue(now, oldest time.Time, loc *time.Location) bool {
	if d := p.every(); d > 0 && !now.Before(oldest.Add(d)) {
		return true
	}
	if h, m, ok := p.dailyAt(); ok && lastDaily(now, loc, h, m).After(oldest) {
		return true
	}
	return false
}

// shortDuration writes 1h rather than 1h0m0s, 1h30m rather than 1h30m0s.
func shortDuration(d time.Duration) string {
	s := d.String()
	if strings.HasSuffix(s, "m0s") {
		s = strings.TrimSuffix(s, "0s")
	}
	if strings.HasSuffix(s, "h0m") {
		s = strings.TrimSuffix(s, "0m")
	}
	return s
}

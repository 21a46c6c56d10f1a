package web

import (
	"fmt"
	"net/http"
	"strings"
	"sync"
	"time"

	"fmn"
	"fmn/apperr"
	"fmn/rules"
)

// zones caches loaded time zones: every page shows times in its reader's
// zone, and loading one reads the zone database.
var zones sync.Map // name → *time.Location

// userZone is the user's time zone, UTC when unset or unknown (the
// settings page accepts only names that load).
func userZone(name string) *time.Location {
	if name == "" || name == "UTC" {
		return time.UTC
	}
	if l, ok := zones.Load(name); ok {
		return l.(*time.Location)
	}
	l, err := time.LoadLocation(name)
	if err != nil {
		return time.UTC
	}
	zones.Store(name, l)
	return l
}

// at formats a time in zone z: "2026-03-04 15:04 CET".
func at(z *time.Location, t any) string {
	var tt time.Time
	switch v := t.(type) {
	case time.Time:
		tt = v
	case *time.Time:
		if v == nil {
			return ""
		}
		tt = *v
	default:
		return ""
	}
	if z == nil {
		z = time.UTC
	}
	return tt.In(z).Format("2006-01-02 15:04 MST")
}

// ago says how long ago t was; past two days, the date in zone z.
func ago(z *time.Location, t time.Time) string {
	d := time.Since(t)
	switch {
	case d < time.Minute:
		return "just now"
	case d < time.Hour:
		return fmt.Sprintf("%d min ago", int(d.Minutes()))
	case d < 48*time.Hour:
		return fmt.Sprintf("%d h ago", int(d.Hours()))
	}
	if z == nil {
		z = time.UTC
	}
	return t.In(z).Format("2006-01-02")
}

// statusView is how a notification's state reads on the pages: Class picks
// the colour (only real failures are red), Text says it in words.
type statusView struct {
	Class, Text string
	// Detail is the reason worth showing beside it, if any.
	Detail string
}

// mutedPrefix starts the reason the delivery workers give a notification
// dropped because its destination was muted.
const mutedPrefix = "destination muted"

// notificationStatus puts a notification's state in words, with times in
// zone z. A notification dropped while its destination was muted is the
// owner's own choice, shown calmly, not as a failure.
func notificationStatus(n fmn.Notification, z *time.Location) statusView {
	switch n.Status {
	case "recorded":
		return statusView{Class: "calm", Text: "kept in your history"}
	case "pending":
		return statusView{Class: "waiting", Text: "waiting to be sent"}
	case "sending":
		return statusView{Class: "waiting", Text: "being sent"}
	case "sent":
		return statusView{Class: "ok", Text: "sent"}
	case "failed":
		return statusView{Class: "warn", Text: "will be retried", Detail: n.Error}
	case "unknown":
		return statusView{Class: "warn", Text: "may not have arrived", Detail: n.Error}
	case "skipped", "dead":
		if v, ok := skippedStatus(n.Error, z); ok {
			return v
		}
		if n.Status == "skipped" {
			return statusView{Class: "calm", Text: "skipped", Detail: n.Error}
		}
		return statusView{Class: "bad", Text: "not sent", Detail: n.Error}
	}
	return statusView{Class: "waiting", Text: string(n.Status), Detail: n.Error}
}

// skippedStatus reads the reasons the delivery path gives for not sending
// by the owner's own choice; older notifications dropped while muted were
// recorded 'dead' with the same reason and read the same.
func skippedStatus(reason string, z *time.Location) (statusView, bool) {
	switch {
	case strings.HasPrefix(reason, mutedPrefix):
		v := statusView{Class: "calm", Text: "skipped: muted"}
		rest := strings.TrimSpace(strings.TrimPrefix(reason, mutedPrefix))
		if t, err := time.Parse(time.RFC3339, strings.TrimSpace(strings.TrimPrefix(rest, "until"))); err == nil {
			v.Detail = "the destination was muted until " + at(z, t)
		}
		return v, true
	case reason == "destination disabled":
		return statusView{Class: "calm", Text: "skipped: destination turned off"}, true
	case reason == "quiet hours":
		return statusView{Class: "calm", Text: "skipped: quiet hours"}, true
	case reason == "destination deleted":
		return statusView{Class: "calm", Text: "not sent: destination deleted"}, true
	}
	return statusView{}, false
}

// hitText says which entry of a rule picked a message, as what the rule
// follows: "package python-*", "what you maintain in dist-git".
func hitText(h *fmn.Hit) string {
	if h == nil {
		return ""
	}
	switch h.Field {
	case rules.HitMine:
		return "your activity (messages naming you)"
	case rules.HitUsers:
		return "user " + h.Entry
	case rules.HitPackages:
		return "package " + h.Entry
	case rules.HitTopics:
		return "topic " + h.Entry
	case rules.HitApps:
		return "app " + h.Entry
	case rules.HitAgents:
		return "what " + h.Entry + " does"
	case rules.HitContainers:
		return "container " + h.Entry
	case rules.HitModules:
		return "module " + h.Entry
	case rules.HitFlatpaks:
		return "flatpak " + h.Entry
	case rules.HitOwned:
		return "what you maintain in dist-git"
	case rules.HitOwnedBy:
		return "what " + h.Entry + " maintains in dist-git"
	case rules.HitGroups:
		return "what the group " + h.Entry + " maintains in dist-git"
	case rules.HitMyGroups:
		return "what your group " + h.Entry + " maintains in dist-git"
	}
	return strings.TrimSpace(h.Field + " " + h.Entry)
}

type notificationPage struct {
	Page
	N      fmn.Notification
	Status statusView
	Hit    string
	// Rule is the rule that made it, when it still exists.
	Rule *rules.Rule
	// Destination is where it went, when it had one that still exists.
	Destination *fmn.Destination
}

// notificationPage explains one notification to its owner: which rule and
// which of its entries picked the message, where it went, and how to stop
// more like it.
func (s *Server) notificationPage(w http.ResponseWriter, r *http.Request) error {
	u := userFrom(r.Context())
	id, err := pathID(r)
	if err != nil {
		return err
	}
	n, err := s.Store.UserNotification(r.Context(), u.ID, id)
	if err != nil {
		return err
	}
	data := notificationPage{Page: s.base(r, "Why you got this"), N: n, Hit: hitText(n.Hit)}
	data.Status = notificationStatus(n, data.Zone)
	if n.RuleID != nil {
		rule, err := s.Store.GetRule(r.Context(), u.ID, *n.RuleID)
		if err != nil && err != apperr.ErrNotFound {
			return err
		}
		if err == nil {
			data.Rule = &rule
		}
	}
	if n.DestinationID != 0 {
		d, err := s.Store.GetDestination(r.Context(), u.ID, n.DestinationID)
		if err != nil && err != apperr.ErrNotFound {
			return err
		}
		if err == nil {
			data.Destination = &d
		}
	}
	s.renderStatus(w, http.StatusOK, "notification.html", data)
	return nil
}

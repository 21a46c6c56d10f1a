package web

import (
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/go-chi/chi/v5"

	"fmn"
	"fmn/apperr"
	"fmn/delivery"
	"fmn/rules"
	"fmn/rules/meta"
	"fmn/store"
)

// userPages registers the signed-in pages. Every form posts back to the
// same site; CrossOriginProtection refuses a post from anywhere else, and
// every store call is scoped to the signed-in user, so another user's object
// is simply not found.
func (s *Server) userPages(r chi.Router) {
	r.Get("/rules", s.page(s.rulesPage))
	r.Get("/rules/new", s.page(s.ruleEditor))
	r.Post("/rules/preview", s.api(s.previewRuleForm))
	r.Post("/rules", s.page(s.saveRuleForm))
	r.Get("/rules/{id}", s.page(s.ruleEditor))
	r.Post("/rules/{id}", s.page(s.saveRuleForm))
	r.Post("/rules/{id}/enabled", s.page(s.toggleRule))
	r.Get("/rules/{id}/delete", s.page(s.askDeleteRule))
	r.Post("/rules/{id}/delete", s.page(s.deleteRuleForm))

	r.Get("/notifications/{id}", s.page(s.notificationPage))

	r.Get("/welcome/rule", s.page(s.firstRuleOffer))
	r.Post("/welcome/rule", s.page(s.acceptFirstRule))

	r.Get("/destinations", s.page(s.destinationsPage))
	r.Post("/destinations", s.page(s.addDestinationForm))
	r.Post("/destinations/{id}/enabled", s.page(s.toggleDestination))
	r.Post("/destinations/{id}/policy", s.page(s.policyForm))
	r.Post("/destinations/{id}/mute", s.page(s.muteForm))
	r.Post("/destinations/{id}/test", s.page(s.testSendForm))
	r.Post("/destinations/{id}/rules", s.page(s.attachRulesForm))
	r.Post("/destinations/{id}/resend", s.page(s.resendForm))
	r.Get("/destinations/{id}/delete", s.page(s.askDeleteDestination))
	r.Post("/destinations/{id}/delete", s.page(s.deleteDestinationForm))

	r.Get("/settings", s.page(s.settingsPage))
	r.Post("/settings", s.page(s.saveSettingsForm))
	r.Post("/settings/name", s.page(s.renameForm))
	r.Post("/settings/tokens", s.page(s.createTokenForm))
	r.Post("/settings/tokens/{id}/revoke", s.page(s.revokeTokenForm))
	r.Post("/settings/feed", s.page(s.newFeedForm))
	r.Post("/settings/delete", s.page(s.deleteAccountForm))

	r.Get("/admin", s.page(s.adminPage))
}

// fieldErrors turns a validation error into the message beside its field;
// other errors pass through to the error page.
func fieldErrors(err error) (map[string]string, error) {
	var inv *apperr.InvalidError
	if errors.As(err, &inv) {
		f := inv.Field
		if f == "" {
			f = "form"
		}
		return map[string]string{f: inv.Message}, nil
	}
	return nil, err
}

// invalidMessage is the message of a validation error, for a form that
// shows its errors in one place; ok is false for any other error.
func invalidMessage(err error) (string, bool) {
	var inv *apperr.InvalidError
	if errors.As(err, &inv) {
		return inv.Message, true
	}
	return "", false
}

func (s *Server) redirect(w http.ResponseWriter, r *http.Request, to string) error {
	http.Redirect(w, r, to, http.StatusSeeOther)
	return nil
}

// back redirects to the form's "next" field, a path on this site (a form
// on the notification page returns there), or else to def.
func (s *Server) back(w http.ResponseWriter, r *http.Request, def string) error {
	if next := r.PostFormValue("next"); next != "" {
		def = localPath(next)
	}
	return s.redirect(w, r, def)
}

// ---- rules ----

type ruleRow struct {
	rules.Rule
	Tracks       string
	Destinations []string
	// Receiving: some destination of the rule can receive now; otherwise
	// its matches only fill the history.
	Receiving bool
}

type rulesPage struct {
	Page
	Rules  []ruleRow
	Notice string
}

func (s *Server) rulesPage(w http.ResponseWriter, r *http.Request) error {
	u := userFrom(r.Context())
	rs, err := s.Store.ListRules(r.Context(), u.ID)
	if err != nil {
		return err
	}
	ds, err := s.Store.ListDestinations(r.Context(), u.ID)
	if err != nil {
		return err
	}
	data := rulesPage{Page: s.base(r, "Rules")}
	switch r.URL.Query().Get("done") {
	case "saved":
		data.Notice = "Saved."
	case "deleted":
		data.Notice = "Deleted."
	case "first":
		data.Notice = "Your first rule is on. Its notifications appear on the Notifications page as they come."
	}
	for _, rule := range rs {
		row := ruleRow{Rule: rule, Tracks: describeTrack(rule)}
		for _, d := range ds {
			if !slices.Contains(rule.Destinations, d.ID) {
				continue
			}
			label := d.Address
			switch {
			case !d.Confirmed:
				label += " (waiting for confirmation)"
			case !d.Enabled:
				label += " (off)"
			default:
				row.Receiving = true
			}
			row.Destinations = append(row.Destinations, label)
		}
		data.Rules = append(data.Rules, row)
	}
	s.renderStatus(w, http.StatusOK, "rules.html", data)
	return nil
}

// describeTrack says in words what a rule follows, for the rules list.
func describeTrack(r rules.Rule) string {
	var parts []string
	if r.Track.Mine {
		parts = append(parts, "my activity")
	}
	add := func(label string, vs []string) {
		if len(vs) > 0 {
			parts = append(parts, label+" "+strings.Join(vs, ", "))
		}
	}
	if r.Track.Owned {
		parts = append(parts, "what I maintain")
	}
	if r.Track.MyGroups {
		parts = append(parts, "what my groups maintain")
	}
	add("what these people maintain:", r.Track.OwnedBy)
	add("what these groups maintain:", r.Track.Groups)
	add("what these people did:", r.Track.Agents)
	add("users", r.Track.Users)
	add("packages", r.Track.Packages)
	add("containers", r.Track.Containers)
	add("modules", r.Track.Modules)
	add("flatpaks", r.Track.Flatpaks)
	add("topics", r.Track.Topics)
	add("apps", r.Track.Apps)
	out := strings.Join(parts, "; ")
	var not []string
	if r.Filters.NotMyActions {
		not = append(not, "my own actions")
	}
	if len(r.Filters.AppsExclude) > 0 {
		not = append(not, "apps "+strings.Join(r.Filters.AppsExclude, ", "))
	}
	if len(r.Filters.TopicsExclude) > 0 {
		not = append(not, "topics "+strings.Join(r.Filters.TopicsExclude, ", "))
	}
	if len(not) > 0 {
		out += " — except " + strings.Join(not, "; ")
	}
	return out
}

// ruleForm is the editor's fields, as typed (lists comma-separated).
type ruleForm struct {
	Name, Users, Packages, Topics, Apps, AppsExclude, TopicsExclude string
	OwnedBy, Groups, Agents, Containers, Modules, Flatpaks          string
	FilterApps, Severity                                            string
	Enabled, Mine, NotMyActions, Owned, MyGroups                    bool
	Destinations                                                    []int64
}

type ruleEditorPage struct {
	Page
	ID           int64
	Form         ruleForm
	Errors       map[string]string
	Destinations []fmn.Destination
	KnownApps    []string
	Packages     []string
	Users        []string
	// Suggestions for the typed artifacts, from what the bus carried.
	Containers, Modules, Flatpaks []string
	// What the signed-in user maintains as stored (Maintained), whether
	// dist-git was read for them yet, and their groups: the editor says
	// "Packages I maintain (43)" with the list on demand.
	Maintained        []store.Maintained
	MaintainedFetched bool
	MyGroups          []store.Membership
	DistgitURL        string
	// Severities for filters.severity_at_least, lowest first.
	Severities []string
}

func listText(vs []string) string { return strings.Join(vs, ", ") }

// splitList reads a comma- or space-separated list.
func splitList(v string) []string {
	f := strings.FieldsFunc(v, func(r rune) bool { return r == ',' || r == ' ' || r == '\n' || r == '\r' || r == '\t' })
	if len(f) == 0 {
		return nil
	}
	return f
}

func formOf(rule rules.Rule) ruleForm {
	return ruleForm{
		Name: rule.Name, Enabled: rule.Enabled, Mine: rule.Track.Mine, NotMyActions: rule.Filters.NotMyActions,
		Users: listText(rule.Track.Users), Packages: listText(rule.Track.Packages), Topics: listText(rule.Track.Topics),
		Apps: listText(rule.Track.Apps), AppsExclude: listText(rule.Filters.AppsExclude),
		TopicsExclude: listText(rule.Filters.TopicsExclude), Destinations: rule.Destinations,
		Owned: rule.Track.Owned, MyGroups: rule.Track.MyGroups, OwnedBy: listText(rule.Track.OwnedBy),
		Groups: listText(rule.Track.Groups), Agents: listText(rule.Track.Agents), Containers: listText(rule.Track.Containers),
		Modules: listText(rule.Track.Modules), Flatpaks: listText(rule.Track.Flatpaks),
		FilterApps: listText(rule.Filters.Apps), Severity: rule.Filters.SeverityAtLeast,
	}
}

func (s *Server) editorPage(r *http.Request, id int64, f ruleForm, errs map[string]string) (ruleEditorPage, error) {
	u := userFrom(r.Context())
	ds, err := s.Store.ListDestinations(r.Context(), u.ID)
	if err != nil {
		return ruleEditorPage{}, err
	}
	seen, err := s.Store.SeenValues(r.Context(), 5000, 500)
	if err != nil {
		return ruleEditorPage{}, err
	}
	known := meta.KnownApps()
	for _, a := range seen.Apps {
		if !slices.Contains(known, a) {
			known = append(known, a)
		}
	}
	slices.Sort(known)
	title := "New rule"
	if id != 0 {
		title = "Edit rule"
	}
	data := ruleEditorPage{Page: s.base(r, title), ID: id, Form: f, Errors: errs, Destinations: ds,
		KnownApps: known, Packages: seen.Packages, Users: seen.Users, DistgitURL: s.DistgitURL,
		Containers: seen.Containers, Modules: seen.Modules, Flatpaks: seen.Flatpaks, Severities: rules.Severities()}
	if data.Maintained, data.MaintainedFetched, err = s.Store.ListMaintained(r.Context(), "user", u.Name); err != nil {
		return data, err
	}
	if !data.MaintainedFetched {
		// Read it now, so that "Packages I maintain" has its count in a
		// few seconds (the editor's script asks again), rule or not.
		if err := s.Store.PinPrincipal(r.Context(), "user", u.Name); err != nil {
			return data, err
		}
	}
	if data.MyGroups, err = s.Store.ListMemberships(r.Context(), u.Name); err != nil {
		return data, err
	}
	return data, nil
}

func (s *Server) ruleEditor(w http.ResponseWriter, r *http.Request) error {
	u := userFrom(r.Context())
	var id int64
	f := ruleForm{Enabled: true}
	if chi.URLParam(r, "id") != "" {
		var err error
		if id, err = pathID(r); err != nil {
			return err
		}
		rule, err := s.Store.GetRule(r.Context(), u.ID, id)
		if err != nil {
			return err
		}
		f = formOf(rule)
	} else if r.URL.Query().Get("preset") == "mine" {
		// The packager's classic: everything about me and my packages,
		// except what I did.
		f = ruleForm{Name: "my packages", Enabled: true, Mine: true, Owned: true, NotMyActions: true}
	}
	if id == 0 {
		// A new rule goes to every confirmed destination unless unticked.
		ds, err := s.Store.ListDestinations(r.Context(), u.ID)
		if err != nil {
			return err
		}
		for _, d := range ds {
			if d.Confirmed && d.Enabled {
				f.Destinations = append(f.Destinations, d.ID)
			}
		}
	}
	data, err := s.editorPage(r, id, f, nil)
	if err != nil {
		return err
	}
	s.renderStatus(w, http.StatusOK, "rule.html", data)
	return nil
}

func (s *Server) saveRuleForm(w http.ResponseWriter, r *http.Request) error {
	u := userFrom(r.Context())
	if err := r.ParseForm(); err != nil {
		return apperr.Invalid("form", "the form could not be read")
	}
	var id int64
	rule := rules.Rule{UserID: u.ID}
	if chi.URLParam(r, "id") != "" {
		var err error
		if id, err = pathID(r); err != nil {
			return err
		}
		// Start from the stored rule so that fields this editor does not
		// show (set through the API) survive an edit.
		if rule, err = s.Store.GetRule(r.Context(), u.ID, id); err != nil {
			return err
		}
	}
	f, err := readRuleForm(r.PostForm, &rule)
	if err != nil {
		return err
	}
	rule.ID = id
	err = s.validRule(&rule)
	if err == nil {
		_, err = s.Store.SaveRuleWithin(r.Context(), rule, s.Limits.RulesPerUser)
	}
	if err != nil {
		errs, err := fieldErrors(err)
		if err != nil {
			return err
		}
		if msg, ok := errs["rules"]; ok { // too many rules: about the whole form
			delete(errs, "rules")
			errs["form"] = msg
		}
		data, err := s.editorPage(r, id, f, errs)
		if err != nil {
			return err
		}
		s.renderStatus(w, http.StatusBadRequest, "rule.html", data)
		return nil
	}
	return s.redirect(w, r, "/rules?done=saved")
}

// readRuleForm reads the editor's fields into rule (every field the rule
// shape has: the editor shows them all) and returns them as typed. Saving
// and the editor's preview both read the form here, so the preview is of
// the very rule Save would store.
func readRuleForm(pf url.Values, rule *rules.Rule) (ruleForm, error) {
	f := ruleForm{
		Name: pf.Get("name"), Users: pf.Get("track.users"), Packages: pf.Get("track.packages"),
		Topics: pf.Get("track.topics"), Apps: pf.Get("track.apps"), AppsExclude: pf.Get("filters.apps_exclude"),
		TopicsExclude: pf.Get("filters.topics_exclude"), Enabled: pf.Get("enabled") != "",
		Mine: pf.Get("track.mine") != "", NotMyActions: pf.Get("filters.not_my_actions") != "",
		Owned: pf.Get("track.owned") != "", MyGroups: pf.Get("track.my_groups") != "",
		OwnedBy: pf.Get("track.owned_by"), Groups: pf.Get("track.groups"), Agents: pf.Get("track.agents"),
		Containers: pf.Get("track.containers"), Modules: pf.Get("track.modules"), Flatpaks: pf.Get("track.flatpaks"),
		FilterApps: pf.Get("filters.apps"), Severity: strings.TrimSpace(pf.Get("filters.severity_at_least")),
	}
	for _, v := range pf["destinations"] {
		d, err := strconv.ParseInt(v, 10, 64)
		if err != nil {
			return f, apperr.Invalid("destinations", "no such destination of yours")
		}
		f.Destinations = append(f.Destinations, d)
	}
	rule.Name, rule.Enabled = f.Name, f.Enabled
	rule.Track.Mine, rule.Track.Users, rule.Track.Packages = f.Mine, splitList(f.Users), splitList(f.Packages)
	rule.Track.Topics, rule.Track.Apps = splitList(f.Topics), splitList(f.Apps)
	rule.Filters.Apps, rule.Filters.SeverityAtLeast = splitList(f.FilterApps), f.Severity
	rule.Filters.AppsExclude, rule.Filters.TopicsExclude = splitList(f.AppsExclude), splitList(f.TopicsExclude)
	rule.Filters.NotMyActions = f.NotMyActions
	rule.Track.Owned, rule.Track.MyGroups = f.Owned, f.MyGroups
	rule.Track.OwnedBy, rule.Track.Groups, rule.Track.Agents = splitList(f.OwnedBy), splitList(f.Groups), splitList(f.Agents)
	rule.Track.Containers, rule.Track.Modules, rule.Track.Flatpaks = splitList(f.Containers), splitList(f.Modules), splitList(f.Flatpaks)
	rule.Destinations = nonNil(f.Destinations)
	return f, nil
}

func (s *Server) toggleRule(w http.ResponseWriter, r *http.Request) error {
	u := userFrom(r.Context())
	id, err := pathID(r)
	if err != nil {
		return err
	}
	rule, err := s.Store.GetRule(r.Context(), u.ID, id)
	if err != nil {
		return err
	}
	rule.Enabled = r.PostFormValue("enabled") == "true"
	if _, err := s.Store.SaveRule(r.Context(), rule); err != nil {
		return err
	}
	return s.back(w, r, "/rules?done=saved")
}

// askDeleteRule asks before a rule is deleted.
func (s *Server) askDeleteRule(w http.ResponseWriter, r *http.Request) error {
	id, err := pathID(r)
	if err != nil {
		return err
	}
	rule, err := s.Store.GetRule(r.Context(), userFrom(r.Context()).ID, id)
	if err != nil {
		return err
	}
	s.renderStatus(w, http.StatusOK, "ask.html", askPage{Page: s.base(r, "Delete rule “"+rule.Name+"”?"),
		Question: "It stops picking messages at once. Its notifications stay in your history.",
		Action:   fmt.Sprintf("/rules/%d/delete", id), Button: "Delete the rule", Cancel: "/rules"})
	return nil
}

func (s *Server) deleteRuleForm(w http.ResponseWriter, r *http.Request) error {
	id, err := pathID(r)
	if err != nil {
		return err
	}
	if err := s.Store.DeleteRule(r.Context(), userFrom(r.Context()).ID, id); err != nil {
		return err
	}
	return s.redirect(w, r, "/rules?done=deleted")
}

// ---- destinations ----

type destinationsPage struct {
	Page
	Destinations []destinationCard
	Kind         string
	Address      string
	Errors       map[string]string
	ErrorFor     int64 // the destination the errors are about; 0 = the add form
	// Typed is the delivery form as submitted, shown again with its error.
	Typed        *policyFields
	EveryChoices []string
	PushJS       bool
	Notice       string
	// Kinds the add form offers: the configured channels but push, which
	// a browser adds itself.
	Kinds []fmn.Kind
}

// destinationCard is one destination as its page shows it: the rules that
// send to it and, while none does, the user's rules it could be added to.
type destinationCard struct {
	fmn.Destination
	UsedBy []string
	Offer  []ruleChoice
	// OfferOpen unfolds the offer: right after the destination was added.
	OfferOpen bool
	// Policy fills the delivery form.
	Policy policyFields
}

// ruleChoice is one rule in an offer to send it to a destination. Rules
// without any destination come ticked: they are the ones waiting for one.
type ruleChoice struct {
	ID            int64
	Name          string
	NoDestination bool
}

// destinationCards pairs each destination with the user's rules.
func destinationCards(ds []fmn.Destination, rs []rules.Rule) []destinationCard {
	cards := make([]destinationCard, 0, len(ds))
	for _, d := range ds {
		c := destinationCard{Destination: d}
		for _, r := range rs {
			if slices.Contains(r.Destinations, d.ID) {
				c.UsedBy = append(c.UsedBy, r.Name)
			}
		}
		if len(c.UsedBy) == 0 {
			c.Offer = offerRules(rs)
		}
		cards = append(cards, c)
	}
	return cards
}

func offerRules(rs []rules.Rule) []ruleChoice {
	out := make([]ruleChoice, 0, len(rs))
	for _, r := range rs {
		out = append(out, ruleChoice{ID: r.ID, Name: r.Name, NoDestination: len(r.Destinations) == 0})
	}
	return out
}

func (s *Server) renderDestinations(w http.ResponseWriter, r *http.Request, status int, data destinationsPage) error {
	u := userFrom(r.Context())
	ds, err := s.Store.ListDestinations(r.Context(), u.ID)
	if err != nil {
		return err
	}
	rs, err := s.Store.ListRules(r.Context(), u.ID)
	if err != nil {
		return err
	}
	data.Page, data.Destinations, data.PushJS = s.base(r, "Destinations"), destinationCards(ds, rs), s.pushJS
	data.EveryChoices = everyChoices
	for _, k := range s.Channels {
		if k != fmn.KindPush {
			data.Kinds = append(data.Kinds, k)
		}
	}
	if data.Kind == "" {
		data.Kind = "email"
	}
	q := r.URL.Query()
	for i := range data.Destinations {
		c := &data.Destinations[i]
		c.OfferOpen = len(c.Offer) > 0 && (strconv.FormatInt(c.ID, 10) == q.Get("id") || data.ErrorFor == c.ID)
		c.Policy = policyOf(c.Delivery)
		if data.Typed != nil && data.ErrorFor == c.ID {
			c.Policy = *data.Typed
		}
	}
	switch q.Get("done") {
	case "added":
		data.Notice = "Added. A confirmation was sent to it: follow the link or code in it to start receiving notifications."
	case "attached":
		data.Notice = "Saved: the rules you ticked send here too."
	case "resent":
		data.Notice = "A new confirmation is on its way; the earlier one no longer works."
	case "deleted":
		data.Notice = "Deleted."
	case "saved":
		data.Notice = "Saved."
	case "test":
		data.Notice = "A test message is on its way."
	}
	s.renderStatus(w, status, "destinations.html", data)
	return nil
}

func (s *Server) destinationsPage(w http.ResponseWriter, r *http.Request) error {
	return s.renderDestinations(w, r, http.StatusOK, destinationsPage{})
}

// addDestinationForm adds a destination from the page's form.
func (s *Server) addDestinationForm(w http.ResponseWriter, r *http.Request) error {
	u := userFrom(r.Context())
	kind, address := r.PostFormValue("kind"), strings.TrimSpace(r.PostFormValue("address"))
	d, err := s.addDestination(r.Context(), u, kind, address)
	if err != nil {
		errs, err := fieldErrors(err)
		if err != nil {
			return err
		}
		if msg, ok := errs["destinations"]; ok { // too many: shown beside the address input
			delete(errs, "destinations")
			errs["address"] = msg
		}
		return s.renderDestinations(w, r, http.StatusBadRequest, destinationsPage{Kind: kind, Address: address, Errors: errs})
	}
	return s.redirect(w, r, fmt.Sprintf("/destinations?done=added&id=%d#destination-%d", d.ID, d.ID))
}

// attachRulesForm adds a destination to the rules ticked in its offer: the
// user's answer to "send these rules here too?", asked when a destination
// is added or confirmed while no rule sends to it.
func (s *Server) attachRulesForm(w http.ResponseWriter, r *http.Request) error {
	u := userFrom(r.Context())
	id, err := pathID(r)
	if err != nil {
		return err
	}
	if err := r.ParseForm(); err != nil {
		return apperr.Invalid("rules", "the form could not be read")
	}
	rs, err := s.Store.ListRules(r.Context(), u.ID)
	if err != nil {
		return err
	}
	var ids []int64
	for _, v := range r.PostForm["rule"] {
		rid, err := strconv.ParseInt(v, 10, 64)
		if err != nil || slices.Contains(ids, rid) {
			continue
		}
		i := slices.IndexFunc(rs, func(x rules.Rule) bool { return x.ID == rid })
		if i < 0 {
			return apperr.ErrNotFound
		}
		// The rule as it would be, judged by the rules package's own limits.
		next := rs[i]
		if !slices.Contains(next.Destinations, id) {
			next.Destinations = append(slices.Clone(next.Destinations), id)
		}
		if err := next.Validate(); err != nil {
			msg, ok := invalidMessage(err)
			if !ok {
				return err
			}
			return s.renderDestinations(w, r, http.StatusBadRequest, destinationsPage{ErrorFor: id,
				Errors: map[string]string{"rules": fmt.Sprintf("Rule “%s”: %s", next.Name, msg)}})
		}
		ids = append(ids, rid)
	}
	if len(ids) == 0 {
		return s.renderDestinations(w, r, http.StatusBadRequest, destinationsPage{ErrorFor: id,
			Errors: map[string]string{"rules": "Tick the rules that should send here, or leave this for later."}})
	}
	if _, err := s.Store.AttachDestination(r.Context(), u.ID, id, ids); err != nil {
		return err
	}
	return s.redirect(w, r, fmt.Sprintf("/destinations?done=attached#destination-%d", id))
}

func (s *Server) patchDestinationForm(w http.ResponseWriter, r *http.Request, p store.DestinationPatch) error {
	id, err := pathID(r)
	if err != nil {
		return err
	}
	if _, err := s.Store.UpdateDestination(r.Context(), userFrom(r.Context()).ID, id, p); err != nil {
		return err
	}
	return s.back(w, r, fmt.Sprintf("/destinations?done=saved#destination-%d", id))
}

func (s *Server) toggleDestination(w http.ResponseWriter, r *http.Request) error {
	on := r.PostFormValue("enabled") == "true"
	return s.patchDestinationForm(w, r, store.DestinationPatch{Enabled: &on})
}

// muteForm mutes a destination for a while, or unmutes it.
func (s *Server) muteForm(w http.ResponseWriter, r *http.Request) error {
	var until *time.Time
	if v := r.PostFormValue("for"); v != "" {
		d, err := time.ParseDuration(v)
		if err != nil || d <= 0 || d > 90*24*time.Hour {
			return apperr.Invalid("for", "choose how long to mute for")
		}
		t := time.Now().Add(d).UTC().Truncate(time.Minute)
		until = &t
	}
	return s.patchDestinationForm(w, r, store.DestinationPatch{MutedUntil: &until})
}

// resendForm sends an unconfirmed destination its confirmation again,
// within the same limits as the first.
func (s *Server) resendForm(w http.ResponseWriter, r *http.Request) error {
	id, err := pathID(r)
	if err != nil {
		return err
	}
	_, err = s.resendConfirmation(r.Context(), userFrom(r.Context()), id)
	switch {
	case errors.Is(err, apperr.ErrRateLimited):
		return s.renderDestinations(w, r, http.StatusTooManyRequests, destinationsPage{ErrorFor: id,
			Errors: map[string]string{"resend": "Several confirmations went to this address lately. Use the newest one, or try again later."}})
	case err != nil:
		msg, ok := invalidMessage(err)
		if !ok {
			return err
		}
		return s.renderDestinations(w, r, http.StatusBadRequest, destinationsPage{ErrorFor: id,
			Errors: map[string]string{"resend": msg}})
	}
	return s.redirect(w, r, fmt.Sprintf("/destinations?done=resent#destination-%d", id))
}

// askDeleteDestination asks before a destination is deleted, naming the
// rules that will be left sending nowhere.
func (s *Server) askDeleteDestination(w http.ResponseWriter, r *http.Request) error {
	u := userFrom(r.Context())
	id, err := pathID(r)
	if err != nil {
		return err
	}
	d, err := s.Store.GetDestination(r.Context(), u.ID, id)
	if err != nil {
		return err
	}
	rs, err := s.Store.ListRules(r.Context(), u.ID)
	if err != nil {
		return err
	}
	var details []string
	for _, rule := range rs {
		if slices.Equal(rule.Destinations, []int64{id}) {
			details = append(details, fmt.Sprintf("Rule “%s” sends only here: afterwards its matches only fill your history.", rule.Name))
		}
	}
	s.renderStatus(w, http.StatusOK, "ask.html", askPage{Page: s.base(r, "Delete "+d.Address+"?"),
		Question: "Nothing more is sent there; what is still waiting to go there is dropped. Its notifications stay in your history.",
		Details:  details, Action: fmt.Sprintf("/destinations/%d/delete", id), Button: "Delete the destination",
		Cancel: fmt.Sprintf("/destinations#destination-%d", id)})
	return nil
}

func (s *Server) deleteDestinationForm(w http.ResponseWriter, r *http.Request) error {
	id, err := pathID(r)
	if err != nil {
		return err
	}
	if err := s.Store.DeleteDestination(r.Context(), userFrom(r.Context()).ID, id); err != nil {
		return err
	}
	return s.redirect(w, r, "/destinations?done=deleted")
}

func (s *Server) testSendForm(w http.ResponseWriter, r *http.Request) error {
	id, err := pathID(r)
	if err != nil {
		return err
	}
	d, err := s.Store.GetDestination(r.Context(), userFrom(r.Context()).ID, id)
	if err != nil {
		return err
	}
	if ok, why := delivery.Testable(d); !ok {
		return s.renderDestinations(w, r, http.StatusBadRequest, destinationsPage{ErrorFor: id,
			Errors: map[string]string{"test": untestable(delivery.Refused(d), why)}})
	}
	if err := (delivery.Queue{Client: s.Jobs}).Test(r.Context(), d); err != nil {
		return err
	}
	return s.redirect(w, r, "/destinations?done=test")
}

// untestable puts in the page's words why delivery.Testable refused a
// test: ref is delivery.Refused's name for it and why Testable's reason.
// A refusal the page has no words for (Testable refusing for a reason
// beyond Reachable's) is shown as Testable gave it.
func untestable(ref delivery.Refusal, why string) string {
	switch ref {
	case delivery.NotConfirmed:
		return "Confirm this destination first: nothing is sent to it before."
	case delivery.Disabled:
		return "This destination is turned off: turn it on to send a test."
	case delivery.Failing:
		return "Delivery here is failing. Once that is fixed, turn the destination off and on again, then send a test."
	}
	return "No test can be sent here: " + why + "."
}

// ---- settings ----

type settingsPage struct {
	Page
	Settings   store.UserSettings
	Tokens     []store.Token
	NewToken   string
	HasFeed    bool
	FeedURL    string
	Errors     map[string]string
	TimeZones  []string
	QuietStart string
	QuietEnd   string
	Saved      bool
	// NameBound: the name comes from the identity provider, not this page.
	NameBound bool
	Name      string // the name typed, shown again beside its error
	Groups    []store.Membership
}

// commonZones feed the time zone picker; any IANA name is accepted.
var commonZones = []string{"UTC", "Europe/London", "Europe/Paris", "Europe/Berlin", "Europe/Prague", "Europe/Warsaw",
	"Europe/Moscow", "America/New_York", "America/Chicago", "America/Denver", "America/Los_Angeles",
	"America/Sao_Paulo", "Asia/Kolkata", "Asia/Shanghai", "Asia/Tokyo", "Australia/Sydney", "Pacific/Auckland"}

func (s *Server) renderSettings(w http.ResponseWriter, r *http.Request, status int, data settingsPage) error {
	u := userFrom(r.Context())
	var err error
	if data.Settings.Timezone == "" {
		if data.Settings, err = s.Store.GetUserSettings(r.Context(), u.ID); err != nil {
			return err
		}
		if data.Settings.QuietStart != nil {
			data.QuietStart, data.QuietEnd = *data.Settings.QuietStart, *data.Settings.QuietEnd
		}
	}
	if data.Tokens, err = s.Store.ListTokens(r.Context(), u.ID); err != nil {
		return err
	}
	if data.HasFeed, err = s.Store.HasFeed(r.Context(), u.ID); err != nil {
		return err
	}
	if data.NameBound, err = s.Store.NameBound(r.Context(), u.ID); err != nil {
		return err
	}
	if data.Groups, err = s.Store.ListMemberships(r.Context(), u.Name); err != nil {
		return err
	}
	if data.Name == "" {
		data.Name = u.Name
	}
	data.Page, data.TimeZones = s.base(r, "Settings"), commonZones
	data.Saved = data.Saved || r.URL.Query().Get("done") == "saved"
	s.renderStatus(w, status, "settings.html", data)
	return nil
}

func (s *Server) settingsPage(w http.ResponseWriter, r *http.Request) error {
	return s.renderSettings(w, r, http.StatusOK, settingsPage{})
}

func (s *Server) saveSettingsForm(w http.ResponseWriter, r *http.Request) error {
	us := store.UserSettings{Timezone: strings.TrimSpace(r.PostFormValue("timezone"))}
	qs, qe := r.PostFormValue("quiet_start"), r.PostFormValue("quiet_end")
	if qs != "" {
		us.QuietStart = &qs
	}
	if qe != "" {
		us.QuietEnd = &qe
	}
	if err := s.Store.UpdateUserSettings(r.Context(), userFrom(r.Context()).ID, us); err != nil {
		errs, err := fieldErrors(err)
		if err != nil {
			return err
		}
		return s.renderSettings(w, r, http.StatusBadRequest, settingsPage{Settings: us, QuietStart: qs, QuietEnd: qe, Errors: errs})
	}
	return s.redirect(w, r, "/settings?done=saved")
}

// renameForm changes the user's bus name. The rules follow at once: the
// users trigger logs each of the user's rules, so every matcher refiles
// "mine" and "owned" under the new name.
func (s *Server) renameForm(w http.ResponseWriter, r *http.Request) error {
	name := strings.TrimSpace(r.PostFormValue("name"))
	if _, err := s.Store.RenameUser(r.Context(), userFrom(r.Context()).ID, name); err != nil {
		errs, err := fieldErrors(err)
		if err != nil {
			return err
		}
		return s.renderSettings(w, r, http.StatusBadRequest, settingsPage{Name: name, Errors: errs})
	}
	return s.redirect(w, r, "/settings?done=saved")
}

// createTokenForm shows the new token once, on the page itself: it is not
// stored anywhere it could be shown again.
func (s *Server) createTokenForm(w http.ResponseWriter, r *http.Request) error {
	label := strings.TrimSpace(r.PostFormValue("label"))
	if len([]rune(label)) > 100 || strings.ContainsAny(label, "\r\n") {
		return s.renderSettings(w, r, http.StatusBadRequest, settingsPage{Errors: map[string]string{"label": "A label is one line of at most 100 characters."}})
	}
	tok, err := s.Store.CreateToken(r.Context(), userFrom(r.Context()).ID, label)
	if err != nil {
		return err
	}
	return s.renderSettings(w, r, http.StatusOK, settingsPage{NewToken: tok})
}

func (s *Server) revokeTokenForm(w http.ResponseWriter, r *http.Request) error {
	id, err := pathID(r)
	if err != nil {
		return err
	}
	if err := s.Store.RevokeToken(r.Context(), userFrom(r.Context()).ID, id); err != nil {
		return err
	}
	return s.redirect(w, r, "/settings")
}

func (s *Server) newFeedForm(w http.ResponseWriter, r *http.Request) error {
	tok, err := s.Store.NewFeedToken(r.Context(), userFrom(r.Context()).ID)
	if err != nil {
		return err
	}
	return s.renderSettings(w, r, http.StatusOK, settingsPage{FeedURL: s.BaseURL + "/feed/" + tok})
}

// deleteAccountForm removes the user and everything of theirs; typing the
// user name guards against a stray click.
func (s *Server) deleteAccountForm(w http.ResponseWriter, r *http.Request) error {
	u := userFrom(r.Context())
	if strings.TrimSpace(r.PostFormValue("confirm")) != u.Name {
		return s.renderSettings(w, r, http.StatusBadRequest, settingsPage{Errors: map[string]string{
			"confirm": fmt.Sprintf("Type your user name, %s, to confirm.", u.Name)}})
	}
	if err := s.Store.DeleteUser(r.Context(), u.ID); err != nil {
		return err
	}
	s.setCookie(w, sessionCookie, "", -1)
	return s.redirect(w, r, "/")
}

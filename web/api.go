package web

import (
	"context"
	"encoding/json"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/go-chi/chi/v5"
	"github.com/jackc/pgx/v5"

	"fmn"
	"fmn/apperr"
	"fmn/delivery"
	"fmn/delivery/push"
	"fmn/rules"
	"fmn/store"
)

func pathID(r *http.Request) (int64, error) {
	id, err := strconv.ParseInt(chi.URLParam(r, "id"), 10, 64)
	if err != nil || id <= 0 {
		return 0, apperr.ErrNotFound
	}
	return id, nil
}

// paging reads limit (1..max, default def) and before (an id to page back
// from) from the query.
func paging(r *http.Request, def, max int) (int, int64, error) {
	limit, before := def, int64(0)
	if v := r.URL.Query().Get("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > max {
			return 0, 0, apperr.Invalid("limit", "limit must be a whole number from 1 to %d", max)
		}
		limit = n
	}
	if v := r.URL.Query().Get("before"); v != "" {
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil || n < 1 {
			return 0, 0, apperr.Invalid("before", "before must be a message or notification id")
		}
		before = n
	}
	return limit, before, nil
}

func (s *Server) getMe(w http.ResponseWriter, r *http.Request) error {
	writeJSON(w, http.StatusOK, userFrom(r.Context()))
	return nil
}

// maintained is GET /api/v1/me/maintained: what dist-git says the user
// maintains, as stored, and their groups. fetched is false until dist-git
// was read for them; asking makes that happen within seconds.
func (s *Server) getMaintained(w http.ResponseWriter, r *http.Request) error {
	u := userFrom(r.Context())
	ms, fetched, err := s.Store.ListMaintained(r.Context(), "user", u.Name)
	if err != nil {
		return err
	}
	if !fetched {
		if err := s.Store.PinPrincipal(r.Context(), "user", u.Name); err != nil {
			return err
		}
	}
	groups, err := s.Store.ListMemberships(r.Context(), u.Name)
	if err != nil {
		return err
	}
	type artifact struct {
		Namespace string `json:"namespace"`
		Name      string `json:"name"`
		Role      string `json:"role"`
	}
	out := struct {
		Fetched   bool               `json:"fetched"`
		Artifacts []artifact         `json:"artifacts"`
		Groups    []store.Membership `json:"groups"`
	}{Fetched: fetched, Artifacts: []artifact{}, Groups: nonNil(groups)}
	for _, m := range ms {
		out.Artifacts = append(out.Artifacts, artifact{m.Namespace, m.Project, m.Role})
	}
	writeJSON(w, http.StatusOK, out)
	return nil
}

func (s *Server) listDestinations(w http.ResponseWriter, r *http.Request) error {
	ds, err := s.Store.ListDestinations(r.Context(), userFrom(r.Context()).ID)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, nonNil(ds))
	return nil
}

type newDestination struct {
	Kind    string `json:"kind"`
	Address string `json:"address"`
}

// createDestination adds a destination (see addDestination).
func (s *Server) createDestination(w http.ResponseWriter, r *http.Request) error {
	var in newDestination
	if err := decodeJSON(w, r, &in); err != nil {
		return err
	}
	d, err := s.addDestination(r.Context(), userFrom(r.Context()), in.Kind, in.Address)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusCreated, d)
	return nil
}

// addDestination validates and stores a destination unconfirmed, with the
// job that sends its confirmation through that very channel, in one
// transaction: either both happen or neither. The API and the page share it.
// Where the request itself proves the address, the destination is confirmed
// at once and nothing is sent: a push subscription made by the signed-in
// browser, or the email address this session signed in with.
func (s *Server) addDestination(ctx context.Context, u store.User, kindName, address string) (fmn.Destination, error) {
	kind := fmn.Kind(kindName)
	if !slices.Contains(s.Channels, kind) {
		if slices.Contains(fmn.Kinds, kind) {
			return fmn.Destination{}, apperr.Invalid("kind", "this fmn does not deliver by %s", kind)
		}
		return fmn.Destination{}, apperr.Invalid("kind", "kind must be one of %s", kindList(s.Channels))
	}
	addr, err := fmn.ValidateAddress(kind, address)
	if err != nil {
		return fmn.Destination{}, err
	}
	var endpoint string
	if kind == fmn.KindPush {
		var sub fmn.Subscription
		_ = json.Unmarshal([]byte(addr), &sub) // ValidateAddress made it
		endpoint = sub.Endpoint
		if err := s.PushGuard.CheckEndpoint(ctx, endpoint); err != nil {
			return fmn.Destination{}, err
		}
	}
	var d fmn.Destination
	err = s.Store.InTx(ctx, func(tx pgx.Tx) error {
		if err := store.CheckDestinationQuota(ctx, tx, u.ID, s.Limits.DestinationsPerUser); err != nil {
			return err
		}
		var err error
		if d, err = store.CreateDestination(ctx, tx, u.ID, kind, addr); err != nil {
			return err
		}
		if kind == fmn.KindPush && viaSession(ctx) && push.KnownService(endpoint) ||
			kind == fmn.KindEmail && u.SignedInEmail != "" && strings.EqualFold(addr, u.SignedInEmail) {
			// A signed-in browser's subscription at its own push service
			// (see push.KnownService), or the address the user signed in
			// with: that is the proof.
			d, err = store.ConfirmNow(ctx, tx, d.ID)
			return err
		}
		return delivery.Queue{Client: s.Jobs}.Confirm(ctx, tx, d)
	})
	if err == apperr.ErrConflict {
		return d, apperr.Invalid("address", "you already have this destination")
	}
	return d, err
}

// resendConfirmation sends an unconfirmed destination a new confirmation
// (the earlier code stops working when the new one is made): for a mail
// that never came or a code that expired.
// It goes through the same limiter as the first (delivery.Queue.Confirm).
func (s *Server) resendConfirmation(ctx context.Context, u store.User, id int64) (fmn.Destination, error) {
	d, err := s.Store.GetDestination(ctx, u.ID, id)
	if err != nil {
		return d, err
	}
	if d.Confirmed {
		return d, apperr.Invalid("destination", "this destination is confirmed already")
	}
	return d, s.Store.InTx(ctx, func(tx pgx.Tx) error { return delivery.Queue{Client: s.Jobs}.Confirm(ctx, tx, d) })
}

// resendDestinationConfirmation is POST /destinations/{id}/resend.
func (s *Server) resendDestinationConfirmation(w http.ResponseWriter, r *http.Request) error {
	id, err := pathID(r)
	if err != nil {
		return err
	}
	d, err := s.resendConfirmation(r.Context(), userFrom(r.Context()), id)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusAccepted, d)
	return nil
}

// deleteDestination is DELETE /destinations/{id}.
func (s *Server) deleteDestination(w http.ResponseWriter, r *http.Request) error {
	id, err := pathID(r)
	if err != nil {
		return err
	}
	if err := s.Store.DeleteDestination(r.Context(), userFrom(r.Context()).ID, id); err != nil {
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

type confirmBody struct {
	Code string `json:"code"`
}

func (s *Server) confirmDestination(w http.ResponseWriter, r *http.Request) error {
	id, err := pathID(r)
	if err != nil {
		return err
	}
	var in confirmBody
	if err := decodeJSON(w, r, &in); err != nil {
		return err
	}
	if in.Code == "" {
		return apperr.Invalid("code", "the confirmation code is required")
	}
	d, err := s.Store.ConfirmDestination(r.Context(), userFrom(r.Context()).ID, id, in.Code)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, d)
	return nil
}

type destinationPatch struct {
	Enabled    *bool           `json:"enabled"`
	Delivery   json.RawMessage `json:"delivery"`
	MutedUntil *string         `json:"muted_until"`
}

func (s *Server) patchDestination(w http.ResponseWriter, r *http.Request) error {
	id, err := pathID(r)
	if err != nil {
		return err
	}
	var in destinationPatch
	if err := decodeJSON(w, r, &in); err != nil {
		return err
	}
	p := store.DestinationPatch{Enabled: in.Enabled}
	if in.Delivery != nil {
		norm, err := fmn.ParsePolicy(in.Delivery)
		if err != nil {
			return err
		}
		p.Delivery = norm
	}
	if in.MutedUntil != nil {
		var t *time.Time
		if *in.MutedUntil != "" {
			v, err := time.Parse(time.RFC3339, *in.MutedUntil)
			if err != nil {
				return apperr.Invalid("muted_until", "muted_until must be an RFC 3339 time like 2026-01-02T15:04:05Z, or empty")
			}
			t = &v
		}
		p.MutedUntil = &t
	}
	d, err := s.Store.UpdateDestination(r.Context(), userFrom(r.Context()).ID, id, p)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, d)
	return nil
}

// ruleBody is the rule shape as the API takes it; enabled defaults to true.
type ruleBody struct {
	Name         string        `json:"name"`
	Enabled      *bool         `json:"enabled"`
	Track        rules.Track   `json:"track"`
	Filters      rules.Filters `json:"filters"`
	Destinations []int64       `json:"destinations"`
}

func (s *Server) readRule(w http.ResponseWriter, r *http.Request) (rules.Rule, error) {
	var in ruleBody
	if err := decodeJSON(w, r, &in); err != nil {
		return rules.Rule{}, err
	}
	rule := rules.Rule{
		UserID: userFrom(r.Context()).ID, Name: in.Name, Enabled: in.Enabled == nil || *in.Enabled,
		Track: in.Track, Filters: in.Filters, Destinations: nonNil(in.Destinations),
	}
	return rule, s.validRule(&rule)
}

// validRule checks a rule's shape and the per-rule pattern limit.
func (s *Server) validRule(rule *rules.Rule) error {
	if err := rule.Validate(); err != nil {
		return err
	}
	return rule.CheckPatterns(s.Limits.PatternsPerRule)
}

func (s *Server) listRules(w http.ResponseWriter, r *http.Request) error {
	rs, err := s.Store.ListRules(r.Context(), userFrom(r.Context()).ID)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, nonNil(rs))
	return nil
}

func (s *Server) createRule(w http.ResponseWriter, r *http.Request) error {
	rule, err := s.readRule(w, r)
	if err != nil {
		return err
	}
	saved, err := s.Store.SaveRuleWithin(r.Context(), rule, s.Limits.RulesPerUser)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusCreated, saved)
	return nil
}

func (s *Server) getRule(w http.ResponseWriter, r *http.Request) error {
	id, err := pathID(r)
	if err != nil {
		return err
	}
	rule, err := s.Store.GetRule(r.Context(), userFrom(r.Context()).ID, id)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, rule)
	return nil
}

func (s *Server) putRule(w http.ResponseWriter, r *http.Request) error {
	id, err := pathID(r)
	if err != nil {
		return err
	}
	if _, err := s.Store.GetRule(r.Context(), userFrom(r.Context()).ID, id); err != nil {
		return err
	}
	rule, err := s.readRule(w, r)
	if err != nil {
		return err
	}
	rule.ID = id
	saved, err := s.Store.SaveRule(r.Context(), rule)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, saved)
	return nil
}

func (s *Server) deleteRule(w http.ResponseWriter, r *http.Request) error {
	id, err := pathID(r)
	if err != nil {
		return err
	}
	if err := s.Store.DeleteRule(r.Context(), userFrom(r.Context()).ID, id); err != nil {
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

func (s *Server) listNotifications(w http.ResponseWriter, r *http.Request) error {
	limit, before, err := paging(r, 50, 500)
	if err != nil {
		return err
	}
	ns, err := s.Store.ListNotifications(r.Context(), userFrom(r.Context()).ID, limit, before)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, nonNil(ns))
	return nil
}

func (s *Server) listMessages(w http.ResponseWriter, r *http.Request) error {
	limit, before, err := paging(r, 50, 1000)
	if err != nil {
		return err
	}
	ms, err := s.Store.RecentMessages(r.Context(), limit, before)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, nonNil(ms))
	return nil
}

// nonNil makes an empty list encode as [] rather than null.
func nonNil[T any](s []T) []T {
	if s == nil {
		return []T{}
	}
	return s
}

// kindList names kinds for a message: "email, irc or push".
func kindList(ks []fmn.Kind) string {
	names := make([]string, len(ks))
	for i, k := range ks {
		names[i] = string(k)
	}
	if len(names) < 2 {
		return strings.Join(names, "")
	}
	return strings.Join(names[:len(names)-1], ", ") + " or " + names[len(names)-1]
}

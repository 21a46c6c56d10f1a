package web

import (
	"net/http"

	"github.com/go-chi/chi/v5"

	"fmn/apperr"
	"fmn/delivery/email"
)

type unsubscribePage struct {
	Page
	Address string
	Action  string
	Done    bool
}

const badUnsubscribeLink = "This unsubscribe link is not valid. Turn the destination off from your destinations page instead."

// unsubscribeGet shows what the link would turn off, with a button: a GET
// changes nothing, because mail scanners and link previews open links on
// their own.
func (s *Server) unsubscribeGet(w http.ResponseWriter, r *http.Request) error {
	tok := chi.URLParam(r, "token")
	id, err := (&email.Unsubscriber{Store: s.Store}).Check(r.Context(), tok)
	if err == apperr.ErrNotFound {
		s.renderStatus(w, http.StatusNotFound, "error.html", errorPage{Page: s.base(r, "Link not valid"), Message: badUnsubscribeLink})
		return nil
	}
	if err != nil {
		return err
	}
	d, err := s.Store.DestinationByID(r.Context(), id)
	if err != nil {
		return err
	}
	s.renderStatus(w, http.StatusOK, "unsubscribe.html", unsubscribePage{
		Page: s.base(r, "Unsubscribe"), Address: d.Address, Action: "/unsubscribe/" + tok, Done: !d.Enabled})
	return nil
}

// unsubscribePost turns the destination off at once, without a login: the
// signed token is the authority (RFC 8058 one-click, POSTed by the mail
// provider with body List-Unsubscribe=One-Click, or by the page's button).
// Posting twice is harmless.
func (s *Server) unsubscribePost(w http.ResponseWriter, r *http.Request) error {
	id, err := (&email.Unsubscriber{Store: s.Store}).Check(r.Context(), chi.URLParam(r, "token"))
	if err == apperr.ErrNotFound {
		s.renderStatus(w, http.StatusNotFound, "error.html", errorPage{Page: s.base(r, "Link not valid"), Message: badUnsubscribeLink})
		return nil
	}
	if err != nil {
		return err
	}
	d, err := s.Store.DisableDestination(r.Context(), id, "")
	if err != nil {
		return err
	}
	s.log.Info("destination unsubscribed by link", "destination_id", d.ID)
	s.renderStatus(w, http.StatusOK, "unsubscribe.html", unsubscribePage{Page: s.base(r, "Unsubscribed"), Address: d.Address, Done: true})
	return nil
}

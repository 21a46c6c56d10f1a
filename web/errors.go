// Package web serves fmn's pages, REST API, health checks and metrics.
package web

import (
	"encoding/json"
	"errors"
	"log/slog"
	"net/http"

	"fmn/apperr"
)

// handlerFunc is a handler that returns its error instead of writing it, so
// that one function, respond, decides what the user sees.
type handlerFunc func(w http.ResponseWriter, r *http.Request) error

// apiError is the JSON error body of the contract.
type apiError struct {
	Error string `json:"error"`
	Field string `json:"field,omitempty"`
}

// statusOf maps domain errors to HTTP statuses; anything unknown is a 500.
func statusOf(err error) (int, apiError) {
	var inv *apperr.InvalidError
	switch {
	case errors.As(err, &inv):
		return http.StatusBadRequest, apiError{Error: inv.Message, Field: inv.Field}
	case errors.Is(err, apperr.ErrNotFound):
		return http.StatusNotFound, apiError{Error: "Not found."}
	case errors.Is(err, apperr.ErrConflict):
		return http.StatusConflict, apiError{Error: "That already exists."}
	case errors.Is(err, apperr.ErrUnauthorized):
		return http.StatusUnauthorized, apiError{Error: "Authentication required."}
	case errors.Is(err, apperr.ErrRateLimited):
		return http.StatusTooManyRequests, apiError{Error: "Too many requests, try again later."}
	case errors.Is(err, errTooLarge):
		return http.StatusRequestEntityTooLarge, apiError{Error: "Request body too large."}
	}
	return http.StatusInternalServerError, apiError{Error: "Internal error."}
}

// api adapts a handlerFunc for the JSON API.
func (s *Server) api(h handlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if err := h(w, r); err != nil {
			status, body := statusOf(err)
			if status >= 500 {
				s.log.Error("request failed", "method", r.Method, "path", logPath(r), "err", err)
			}
			if status == http.StatusUnauthorized {
				w.Header().Set("WWW-Authenticate", `Bearer realm="fmn"`)
			}
			writeJSON(w, status, body)
		}
	}
}

// page adapts a handlerFunc for HTML pages.
func (s *Server) page(h handlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if err := h(w, r); err != nil {
			status, body := statusOf(err)
			if status >= 500 {
				s.log.Error("request failed", "method", r.Method, "path", logPath(r), "err", err)
			}
			s.renderStatus(w, status, "error.html", errorPage{Page: s.base(r, http.StatusText(status)), Message: body.Error})
		}
	}
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.WriteHeader(status)
	enc := json.NewEncoder(w)
	enc.SetEscapeHTML(true)
	if err := enc.Encode(v); err != nil {
		slog.Debug("write response", "err", err)
	}
}

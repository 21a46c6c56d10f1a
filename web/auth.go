package web

import (
	"context"
	"net/http"
	"strings"

	"fmn/apperr"
	"fmn/store"
)

type ctxKey int

const userKey ctxKey = 1

// requireToken authenticates API calls with a personal access token or,
// for the pages' own scripts (preview, live stream), the session cookie.
// Cookie-authenticated unsafe requests are safe from forgery because
// CrossOriginProtection refuses cross-site ones before they get here.
func (s *Server) requireToken(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		auth := r.Header.Get("Authorization")
		if auth == "" {
			if sess := s.cookie(r, sessionCookie); sess != "" {
				u, err := s.Store.UserBySession(r.Context(), sess)
				if err != nil {
					s.api(func(http.ResponseWriter, *http.Request) error { return err })(w, r)
					return
				}
				next.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), userKey, u)))
				return
			}
		}
		tok, ok := strings.CutPrefix(auth, "Bearer ")
		if !ok || tok == "" {
			s.api(func(http.ResponseWriter, *http.Request) error { return apperr.ErrUnauthorized })(w, r)
			return
		}
		u, err := s.Store.UserByToken(r.Context(), strings.TrimSpace(tok))
		if err != nil {
			s.api(func(http.ResponseWriter, *http.Request) error { return err })(w, r)
			return
		}
		next.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), userKey, u)))
	})
}

// userFrom returns the authenticated user; the middleware guarantees one.
func userFrom(ctx context.Context) store.User {
	u, _ := ctx.Value(userKey).(store.User)
	return u
}

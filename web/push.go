package web

import (
	"context"
	"net/http"

	"github.com/go-chi/chi/v5"

	"fmn/apperr"
	"fmn/templates"
)

type sessionMark struct{}

// markSession records that the request was authenticated by a signed-in
// browser session (not a token). The session middleware calls it; a push
// subscription created in such a request needs no confirmation.
func markSession(ctx context.Context) context.Context {
	return context.WithValue(ctx, sessionMark{}, true)
}

// viaSession reports whether markSession was called for this request.
func viaSession(ctx context.Context) bool {
	v, _ := ctx.Value(sessionMark{}).(bool)
	return v
}

// pushRoutes serves what a browser needs to subscribe: the service worker
// at the root (so that its scope is the whole site) and the VAPID public key.
func (s *Server) pushRoutes(r chi.Router) {
	r.Get("/sw.js", func(w http.ResponseWriter, r *http.Request) {
		b, err := templates.FS.ReadFile("static/sw.js")
		if err != nil {
			http.Error(w, "Internal error.", http.StatusInternalServerError)
			return
		}
		h := w.Header()
		h.Set("Content-Type", "text/javascript; charset=utf-8")
		h.Set("Service-Worker-Allowed", "/")
		// A browser checks for a new worker on navigation; let it see one.
		h.Set("Cache-Control", "no-cache")
		_, _ = w.Write(b)
	})
	// The key is public: no token needed, so the page script can fetch it.
	r.Get("/api/v1/push/key", s.api(func(w http.ResponseWriter, r *http.Request) error {
		if s.VAPIDPublicKey == "" {
			return apperr.ErrNotFound
		}
		writeJSON(w, http.StatusOK, map[string]string{"public_key": s.VAPIDPublicKey})
		return nil
	}))
}

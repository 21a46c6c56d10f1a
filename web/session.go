package web

import (
	"context"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"
	"unicode"
	"unicode/utf8"

	"fmn/apperr"
	"fmn/store"
)

// AuthConfig is how people sign in and who administers.
type AuthConfig struct {
	OIDCIssuer        string
	OIDCClientID      string
	OIDCClientSecret  string
	OIDCUsernameClaim string
	// OIDCGroupsClaim names the claim listing the user's groups, read at
	// each sign-in ("" reads none); OIDCScopes are asked for besides
	// openid, profile and email (a provider may give groups only for one).
	OIDCGroupsClaim string
	OIDCScopes      []string
	Admins          []string
}

// OIDC reports whether sign-in goes through an OpenID provider. Emailed links
// are then off: the provider's username claim is the bus name, and a name
// derived from some address must never be able to claim it first.
func (a AuthConfig) OIDC() bool { return a.OIDCIssuer != "" }

// secure reports whether the site is served over https, so cookies carry
// the Secure flag and the __Host- prefix (which also pins them to this host
// and path).
func (s *Server) secure() bool { return strings.HasPrefix(s.BaseURL, "https://") }

func (s *Server) cookieName(name string) string {
	if s.secure() {
		return "__Host-" + name
	}
	return name
}

// setCookie writes an HttpOnly, SameSite=Lax cookie: Lax keeps it off
// cross-site subrequests and form posts, yet lets a mailed link or the
// OpenID provider's redirect arrive signed in.
func (s *Server) setCookie(w http.ResponseWriter, name, value string, maxAge time.Duration) {
	c := &http.Cookie{Name: s.cookieName(name), Value: value, Path: "/", HttpOnly: true,
		Secure: s.secure(), SameSite: http.SameSiteLaxMode, MaxAge: int(maxAge.Seconds())}
	if maxAge < 0 {
		c.MaxAge = -1
	}
	http.SetCookie(w, c)
}

func (s *Server) cookie(r *http.Request, name string) string {
	c, err := r.Cookie(s.cookieName(name))
	if err != nil {
		return ""
	}
	return c.Value
}

const sessionCookie = "fmn_session"

// startSession sets the session cookie for a new session.
func (s *Server) startSession(w http.ResponseWriter, token string) {
	s.setCookie(w, sessionCookie, token, store.SessionTTL)
}

// withSession puts the signed-in user, if any, in the request's context.
// An unknown or expired cookie is cleared and the visitor treated as
// signed out.
func (s *Server) withSession(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		tok := s.cookie(r, sessionCookie)
		if tok == "" {
			next.ServeHTTP(w, r)
			return
		}
		u, err := s.Store.UserBySession(r.Context(), tok)
		if err != nil {
			if err == apperr.ErrUnauthorized {
				s.setCookie(w, sessionCookie, "", -1)
			} else {
				s.log.Error("look up session", "err", err)
			}
			next.ServeHTTP(w, r)
			return
		}
		next.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), userKey, u)))
	})
}

// signedIn reports whether the request carries a user.
func signedIn(r *http.Request) bool { return userFrom(r.Context()).ID != 0 }

// requireUser sends visitors to the sign-in page, remembering where they
// were going when that was a page (a form posted after the session ended
// cannot be replayed; the user signs in and does it again).
func (s *Server) requireUser(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !signedIn(r) {
			to := "/login"
			if r.Method == http.MethodGet || r.Method == http.MethodHead {
				to += "?next=" + url.QueryEscape(r.URL.RequestURI())
			}
			http.Redirect(w, r, to, http.StatusSeeOther)
			return
		}
		next.ServeHTTP(w, r)
	})
}

// isAdmin reports whether the signed-in user is one of FMN_ADMINS, which
// names admins by verified email address or by OIDC issuer#subject, never
// by user name (whoever signs up first gets a name). A user's email is
// verified: it comes from a sign-in link mailed to it, from an OpenID
// provider that says email_verified, or from the operator (fmn token
// create -email).
func (s *Server) isAdmin(r *http.Request) bool {
	u := userFrom(r.Context())
	if u.ID == 0 {
		return false
	}
	for _, a := range s.Auth.Admins {
		if iss, sub, ok := strings.Cut(a, "#"); ok {
			// Issuers are compared as FMN_OIDC_ISSUER is: without a
			// trailing slash. The subject is the provider's, exactly.
			if u.OIDCSubject != "" && sub == u.OIDCSubject && strings.TrimRight(iss, "/") == strings.TrimRight(u.OIDCIssuer, "/") {
				return true
			}
			continue
		}
		if u.Email != "" && strings.EqualFold(a, u.Email) {
			return true
		}
	}
	return false
}

// localPath keeps a post-sign-in redirect on this site. Browsers are
// lenient with Location: they drop tabs and newlines, read a backslash as a
// slash and a leading "//" as another host, so "/\t/evil.example" would
// leave the site. Only a plain same-site path passes: exactly one leading
// slash, no "//", no backslash, no control character, in the text as given
// and once percent-decoded; anything else becomes "/".
func localPath(next string) string {
	decoded, err := url.PathUnescape(next)
	if err != nil || !plainPath(next) || !plainPath(decoded) {
		return "/"
	}
	return next
}

func plainPath(p string) bool {
	if !strings.HasPrefix(p, "/") || strings.Contains(p, "//") || strings.ContainsRune(p, '\\') {
		return false
	}
	if !utf8.ValidString(p) {
		return false
	}
	return strings.IndexFunc(p, unicode.IsControl) < 0
}

// limiter counts attempts per key in fixed windows. It is per process: it
// stops a single client hammering sign-in; the per-address limit in the
// database holds across processes.
type limiter struct {
	max    int
	window time.Duration

	mu    sync.Mutex
	start time.Time
	seen  map[string]int
}

func newLimiter(max int, window time.Duration) *limiter {
	return &limiter{max: max, window: window, seen: map[string]int{}}
}

// allow counts one attempt for key and reports whether it is within bounds.
func (l *limiter) allow(key string) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	now := time.Now()
	if now.Sub(l.start) > l.window {
		l.start, l.seen = now, map[string]int{}
	}
	l.seen[key]++
	return l.seen[key] <= l.max
}

package web

import (
	"context"
	"html/template"
	"io/fs"
	"log/slog"
	"net/http"
	"net/netip"
	"strings"
	"sync"
	"time"

	"github.com/go-chi/chi/v5"
	"github.com/go-chi/chi/v5/middleware"
	"github.com/jackc/pgx/v5"
	"github.com/riverqueue/river"

	"fmn"
	"fmn/config"
	"fmn/consumer"
	"fmn/delivery/push"
	"fmn/metrics"
	"fmn/store"
	"fmn/templates"
)

// Deps is what the web role needs from the rest of the service.
type Deps struct {
	Store   *store.Store
	Jobs    *river.Client[pgx.Tx] // inserts confirmation jobs
	Metrics *metrics.Metrics
	// Endpoints reports the bus endpoints' state; nil when this process does
	// not consume (the web role alone).
	Endpoints func() []consumer.EndpointStatus
	// Ingesting reports the error the bus ingester is retrying after (nil
	// while it stores); nil when this process does not consume.
	Ingesting func() error
	// ChannelStates reports the chat bots' connections in this process
	// (the Matrix bot: "connected", or "signing in" and why), for /readyz;
	// nil when there are none.
	ChannelStates func() map[string]string
	// Hub feeds the live stream; nil disables /api/v1/stream.
	Hub     *Hub
	BaseURL string
	Auth    AuthConfig
	Log     *slog.Logger
	// VAPIDPublicKey is served to browsers subscribing to push; empty
	// when push is not set up in this process.
	VAPIDPublicKey string
	// Retention (FMN_RETENTION) is how long the message log is kept, for
	// the admin page.
	Retention time.Duration
	// TrustedProxies (FMN_TRUSTED_PROXIES) are the only peers whose
	// X-Forwarded-For is believed; see clientIP.
	TrustedProxies []netip.Prefix
	// PushGuard judges push endpoints when they are added (the push
	// workers apply the same guard when they connect).
	PushGuard push.Guard
	// Limits bound what one account may hold; zero fields take the
	// defaults (see Limits).
	Limits Limits
	// Channels are the destination kinds this fmn delivers through (IRC
	// and Matrix only when their server is configured); nil means all.
	// Nothing else is offered or accepted: a destination of another kind
	// would wait for its confirmation forever.
	Channels []fmn.Kind
	// DistgitURL is the dist-git instance ownership is read from, for the
	// pages that say so.
	DistgitURL string
}

// Limits bound what one account may make fmn do (FMN_MAX_*): each rule and
// pattern costs the matcher on every bus message, each destination a
// confirmation and deliveries.
type Limits struct {
	RulesPerUser        int
	PatternsPerRule     int
	DestinationsPerUser int
	StreamsPerUser      int // open /api/v1/stream responses of one user, in this process
	Streams             int // and of everybody
}

// withDefaults fills unset limits with config's defaults (tests build
// Deps without them).
func (l Limits) withDefaults() Limits {
	if l.RulesPerUser == 0 {
		l.RulesPerUser = config.DefaultMaxRulesPerUser
	}
	if l.PatternsPerRule == 0 {
		l.PatternsPerRule = config.DefaultMaxPatternsPerRule
	}
	if l.DestinationsPerUser == 0 {
		l.DestinationsPerUser = config.DefaultMaxDestinationsPerUser
	}
	if l.StreamsPerUser == 0 {
		l.StreamsPerUser = config.DefaultMaxStreamsPerUser
	}
	if l.Streams == 0 {
		l.Streams = config.DefaultMaxStreams
	}
	return l
}

// Server holds the parsed templates and dependencies.
type Server struct {
	Deps
	log   *slog.Logger
	pages map[string]*template.Template
	// shutdown is closed when the server stops, ending open streams so
	// that http.Server.Shutdown need not wait for them.
	shutdown     chan struct{}
	shutdownOnce sync.Once
	loginLimit   *limiter
	previews     *previewGate
	streams      streamCount
	oidc         *oidcClient // nil without FMN_OIDC_ISSUER
	pushJS       bool        // templates/static/push.js exists: offer browser push
}

// Close ends the long-lived responses (event streams).
func (s *Server) Close() { s.shutdownOnce.Do(func() { close(s.shutdown) }) }

// New parses every page template; a broken template fails here, at start.
func New(d Deps) (*Server, error) {
	pages, err := parsePages()
	if err != nil {
		return nil, err
	}
	d.Limits = d.Limits.withDefaults()
	s := &Server{Deps: d, log: d.Log, pages: pages, loginLimit: newLimiter(loginPerClient, 10*time.Minute), previews: newPreviewGate(),
		shutdown: make(chan struct{})}
	if d.Auth.OIDC() {
		if d.Auth.OIDCUsernameClaim == "" {
			s.Auth.OIDCUsernameClaim = "preferred_username"
		}
		s.oidc = &oidcClient{cfg: s.Auth, baseURL: d.BaseURL}
	}
	if s.Channels == nil {
		s.Channels = fmn.Kinds
	}
	_, err = fs.Stat(templates.FS, "static/push.js")
	s.pushJS = err == nil
	return s, nil
}

// Handler returns the router.
func (s *Server) Handler() http.Handler {
	r := chi.NewRouter()
	r.Use(s.logRequests, middleware.Recoverer, securityHeaders)
	cop := http.NewCrossOriginProtection()
	cop.AddInsecureBypassPattern("POST /unsubscribe/{token}") // signed token, RFC 8058 POSTs from mail providers
	r.Use(cop.Handler)

	r.Get("/healthz", healthz)
	r.Get("/readyz", s.readyz)
	r.Handle("/metrics", s.Metrics.Handler())

	static, _ := fs.Sub(templates.FS, "static")
	r.Handle("/static/*", http.StripPrefix("/static/", http.FileServerFS(static)))
	r.Get("/unsubscribe/{token}", s.page(s.unsubscribeGet))
	r.Post("/unsubscribe/{token}", s.page(s.unsubscribePost))
	r.Get("/feed/{token}", s.feed)
	r.Group(func(r chi.Router) {
		r.Use(s.withSession)
		r.Get("/", s.page(s.home))
		r.Get("/confirm/{code}", s.page(s.confirmLink))
		r.Post("/confirm/{code}", s.page(s.confirmPage))
		r.Get("/login", s.page(s.loginForm))
		r.Post("/login", s.page(s.requestLogin))
		r.Get("/login/{token}", s.page(s.loginLink))
		r.Post("/login/{token}", s.page(s.useLoginLink))
		r.Get("/welcome", s.page(s.welcome))
		r.Post("/welcome", s.page(s.chooseName))
		r.Post("/logout", s.page(s.logout))
		r.Get("/oidc/login", s.page(s.oidcStart))
		r.Get("/oidc/callback", s.page(s.oidcCallback))
		r.Group(func(r chi.Router) {
			r.Use(s.requireUser)
			s.userPages(r)
		})
	})
	s.pushRoutes(r)
	r.Get("/api/v1/openapi.json", s.openAPI)

	r.Route("/api/v1", func(r chi.Router) {
		r.Use(s.requireToken)
		r.Get("/me", s.api(s.getMe))
		r.Get("/me/maintained", s.api(s.getMaintained))
		r.Get("/destinations", s.api(s.listDestinations))
		r.Post("/destinations", s.api(s.createDestination))
		r.Patch("/destinations/{id}", s.api(s.patchDestination))
		r.Post("/destinations/{id}/confirm", s.api(s.confirmDestination))
		r.Post("/destinations/{id}/resend", s.api(s.resendDestinationConfirmation))
		r.Delete("/destinations/{id}", s.api(s.deleteDestination))
		r.Get("/rules", s.api(s.listRules))
		r.Post("/rules", s.api(s.createRule))
		r.Post("/rules/preview", s.api(s.previewRule))
		r.Get("/rules/{id}", s.api(s.getRule))
		r.Put("/rules/{id}", s.api(s.putRule))
		r.Delete("/rules/{id}", s.api(s.deleteRule))
		r.Get("/notifications", s.api(s.listNotifications))
		r.Get("/messages", s.api(s.listMessages))
		r.Get("/stream", s.api(s.stream))
	})
	r.NotFound(func(w http.ResponseWriter, r *http.Request) {
		if len(r.URL.Path) >= 4 && r.URL.Path[:4] == "/api" {
			writeJSON(w, http.StatusNotFound, apiError{Error: "Not found."})
			return
		}
		s.withSession(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			s.renderStatus(w, http.StatusNotFound, "error.html", errorPage{Page: s.base(r, "Not found"), Message: "There is no such page."})
		})).ServeHTTP(w, r)
	})
	return r
}

// OpsHandler serves only the process's health and metrics (/healthz,
// /readyz, /metrics): what FMN_METRICS_LISTEN gives the roles without the
// web UI, so that a consumer or a worker can be watched and probed too.
func (s *Server) OpsHandler() http.Handler {
	r := chi.NewRouter()
	r.Get("/healthz", healthz)
	r.Get("/readyz", s.readyz)
	r.Handle("/metrics", s.Metrics.Handler())
	return r
}

func healthz(w http.ResponseWriter, _ *http.Request) {
	writeJSON(w, http.StatusOK, map[string]string{"status": "ok"})
}

// securityHeaders sets a strict policy: pages load nothing from elsewhere
// and run no inline script, so escaped bus content can never execute.
func securityHeaders(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		h.Set("Content-Security-Policy", "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; object-src 'none'; base-uri 'none'; frame-ancestors 'none'; form-action 'self'")
		h.Set("X-Content-Type-Options", "nosniff")
		h.Set("Referrer-Policy", "same-origin")
		h.Set("X-Frame-Options", "DENY")
		next.ServeHTTP(w, r)
	})
}

func (s *Server) logRequests(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		ww := middleware.NewWrapResponseWriter(w, r.ProtoMajor)
		next.ServeHTTP(ww, r)
		s.log.Debug("http request", "method", r.Method, "path", logPath(r), "status", ww.Status(), "duration_ms", time.Since(start).Milliseconds())
	})
}

// logPath is what logs say of a request's path: the route's pattern
// ("/login/{token}"), never the path itself, which for the sign-in, feed,
// confirmation and unsubscribe links is the secret. A path no route
// matched is cut to its first segment, as it may be one of those links
// mistyped.
func logPath(r *http.Request) string {
	if rc := chi.RouteContext(r.Context()); rc != nil {
		if p := rc.RoutePattern(); p != "" && p != "/*" {
			return p
		}
	}
	first, rest, _ := strings.Cut(strings.TrimPrefix(r.URL.Path, "/"), "/")
	if rest != "" {
		return "/" + first + "/…"
	}
	return "/" + first
}

type readiness struct {
	Status   string `json:"status"`
	Database string `json:"database"`
	// Ingest is "ok" while bus messages are being stored, "retrying" while
	// the ingester backs off after a failed store; absent without a
	// consumer.
	Ingest    string                    `json:"ingest,omitempty"`
	Endpoints []consumer.EndpointStatus `json:"endpoints,omitempty"`
	// Channels are the chat bots' connections (ChannelStates). They do not
	// make the process unready: the other channels and the web go on
	// without them, and their jobs wait.
	Channels map[string]string `json:"channels,omitempty"`
}

// readyz is ready when the database answers, the ingester is storing (not
// backing off after a failure: after a database restart it may wait up to
// its backoff before it stores again) and every bus endpoint is connected.
func (s *Server) readyz(w http.ResponseWriter, r *http.Request) {
	ctx, cancel := context.WithTimeout(r.Context(), 2*time.Second)
	defer cancel()
	res := readiness{Status: "ready", Database: "ok"}
	if err := s.Store.Ping(ctx); err != nil {
		res.Status, res.Database = "not ready", "unreachable"
	}
	if s.Ingesting != nil {
		res.Ingest = "ok"
		if s.Ingesting() != nil {
			res.Status, res.Ingest = "not ready", "retrying"
		}
	}
	if s.Endpoints != nil {
		res.Endpoints = s.Endpoints()
		for _, e := range res.Endpoints {
			if !e.Connected {
				res.Status = "not ready"
			}
		}
	}
	if s.ChannelStates != nil {
		res.Channels = s.ChannelStates()
	}
	status := http.StatusOK
	if res.Status != "ready" {
		status = http.StatusServiceUnavailable
	}
	writeJSON(w, status, res)
}

package matrix

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"sync"
	"time"

	"fmn/store"
)

// Login is how the bot signs in: with Token as it is, or with User and
// Password.
type Login struct {
	URL, Token, User, Password string
}

// Setting names the configuration a refused sign-in points at.
func (l Login) Setting() string {
	if l.Token != "" {
		return "FMN_MATRIX_TOKEN"
	}
	return "FMN_MATRIX_USER and FMN_MATRIX_PASSWORD"
}

// ErrSignedOut: the bot has no session yet (the homeserver could not be
// reached, or failed, when fmn started); the job waits and tries again.
var ErrSignedOut = errors.New("the Matrix bot is not signed in yet")

// Session is the bot's sign-in on the homeserver. A homeserver that is
// down or slow when fmn starts (a host rebooting) must not keep email,
// IRC and push from starting, so the sign-in may come later: SignIn tries
// once, and Retry goes on in the background; until then Current answers
// ErrSignedOut, which Matrix jobs wait out without spending attempts, and
// the sync loop waits for Ready.
type Session struct {
	Login Login
	Store *store.Store
	Log   *slog.Logger

	mu      sync.Mutex
	client  *Client
	self    string
	lastErr error
	ready   chan struct{}
	once    sync.Once
}

func (s *Session) init() { s.once.Do(func() { s.ready = make(chan struct{}) }) }

// SignIn signs in as the Login says (for ready-made sessions: tests, the
// benchmark).
func SignIn(ctx context.Context, st *store.Store, l Login) (*Session, error) {
	s := &Session{Login: l, Store: st}
	return s, s.SignIn(ctx)
}

// Refused reports whether the homeserver turned the sign-in down: a wrong
// or revoked token, a wrong password (401, 403: M_UNKNOWN_TOKEN,
// M_FORBIDDEN), or another 4xx but 408 and 429, which says the URL or the
// request is wrong. Trying again will not help; the configuration must
// change. Anything else (no answer, a timeout, 5xx, 429) may pass.
func Refused(err error) bool {
	var ae *APIError
	if !errors.As(err, &ae) {
		return false
	}
	return ae.Status >= 400 && ae.Status < 500 && ae.Status != http.StatusRequestTimeout && ae.Status != http.StatusTooManyRequests
}

// SignIn tries once: with the token, as it is; else with user and
// password, reusing the login kept in the database while it works (the
// homeserver recognises repeated sends per access token), logging in
// afresh and keeping that otherwise. Once signed in, Current has the
// client and Ready is closed.
func (s *Session) SignIn(ctx context.Context) error {
	s.init()
	c, self, err := s.signIn(ctx)
	s.mu.Lock()
	defer s.mu.Unlock()
	if err != nil {
		s.lastErr = err
		return err
	}
	if s.client == nil {
		s.client, s.self, s.lastErr = c, self, nil
		close(s.ready)
	}
	return nil
}

func (s *Session) signIn(ctx context.Context) (*Client, string, error) {
	l := s.Login
	c := &Client{BaseURL: l.URL, Token: l.Token}
	if l.Token != "" {
		id, err := c.WhoAmI(ctx)
		return c, id, err
	}
	if kept, err := s.Store.GetMatrixSession(ctx, l.URL); err == nil && kept.AccessToken != "" && kept.UserID == l.User {
		c.Token = kept.AccessToken
		if id, err := c.WhoAmI(ctx); err == nil {
			return c, id, nil
		}
	}
	id, tok, err := c.Login(ctx, l.User, l.Password)
	if err != nil {
		return nil, "", err
	}
	c.Token = tok
	if err := s.Store.SaveMatrixSession(ctx, l.URL, id, tok); err != nil {
		return nil, "", err
	}
	return c, id, nil
}

// Sign-in retries: a second at first, doubling to a minute.
const (
	retryFirst = time.Second
	retryMax   = time.Minute
	// signInTimeout bounds one try.
	signInTimeout = 30 * time.Second
)

// Retry signs in until it works or ctx ends, after a first try that
// failed: it waits before each try. A refusal now (the homeserver came up
// and does not know the token) is logged as an error naming the setting,
// and tried again at the longest wait: fmn keeps delivering by its other
// channels, and Matrix's jobs wait.
func (s *Session) Retry(ctx context.Context) {
	s.init()
	wait := retryFirst
	for {
		sleep(ctx, wait)
		if ctx.Err() != nil {
			return
		}
		select {
		case <-s.ready:
			return
		default:
		}
		tctx, cancel := context.WithTimeout(ctx, signInTimeout)
		err := s.SignIn(tctx)
		cancel()
		switch {
		case err == nil:
			s.Log.Info("Matrix bot signed in", "homeserver", s.Login.URL)
			return
		case ctx.Err() != nil:
			return
		case Refused(err):
			wait = retryMax
			s.Log.Error("the Matrix homeserver refuses the bot's sign-in: check "+s.Login.Setting(), "homeserver", s.Login.URL, "err", err, "retry_in", wait)
		default:
			wait = min(wait*2, retryMax)
			s.Log.Warn("Matrix bot not signed in yet", "homeserver", s.Login.URL, "err", err, "retry_in", wait)
		}
	}
}

// Ready is closed once the bot is signed in.
func (s *Session) Ready() <-chan struct{} {
	s.init()
	return s.ready
}

// Current is the signed-in client and the bot's user ID, or ErrSignedOut
// (with the last sign-in error).
func (s *Session) Current() (*Client, string, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.client == nil {
		if s.lastErr != nil {
			return nil, "", fmt.Errorf("%w: %w", ErrSignedOut, s.lastErr)
		}
		return nil, "", ErrSignedOut
	}
	return s.client, s.self, nil
}

// State says how the bot stands, for /readyz: "connected" once signed in,
// else "signing in" and the last error.
func (s *Session) State() string {
	if _, _, err := s.Current(); err != nil {
		return "signing in: " + err.Error()
	}
	return "connected"
}

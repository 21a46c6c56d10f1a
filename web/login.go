package web

import (
	"context"
	"crypto/subtle"
	"errors"
	"fmt"
	"net/http"
	"net/mail"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/coreos/go-oidc/v3/oidc"
	"github.com/go-chi/chi/v5"
	"github.com/jackc/pgx/v5"
	"golang.org/x/oauth2"

	"fmn/apperr"
	"fmn/delivery/email"
	"fmn/store"
)

// Sign-in limits: an address gets at most loginPerAddress links an hour (so
// fmn cannot be used to flood a mailbox), a client at most loginPerClient
// requests in ten minutes.
const (
	loginPerAddress = 5
	loginPerClient  = 10
)

type loginPage struct {
	Page
	Email  string
	Next   string
	Errors map[string]string
	Sent   bool
}

func (s *Server) loginForm(w http.ResponseWriter, r *http.Request) error {
	if signedIn(r) {
		http.Redirect(w, r, localPath(r.URL.Query().Get("next")), http.StatusSeeOther)
		return nil
	}
	s.renderStatus(w, http.StatusOK, "login.html", loginPage{Page: s.base(r, "Sign in"), Next: localPath(r.URL.Query().Get("next"))})
	return nil
}

// requestLogin mails a sign-in link. The answer is the same whether or not
// the address has an account: anyone may sign up, and nobody learns who has.
func (s *Server) requestLogin(w http.ResponseWriter, r *http.Request) error {
	if s.Auth.OIDC() {
		return apperr.ErrNotFound
	}
	data := loginPage{Page: s.base(r, "Sign in"), Email: strings.TrimSpace(r.PostFormValue("email")), Errors: map[string]string{}}
	addr, err := mail.ParseAddress(data.Email)
	if err != nil || addr.Name != "" || !strings.Contains(addr.Address, "@") || len(addr.Address) > 254 || strings.ContainsAny(data.Email, "\r\n<>") {
		data.Errors["email"] = "Enter an email address like jane@example.org."
		s.renderStatus(w, http.StatusBadRequest, "login.html", data)
		return nil
	}
	if !s.loginLimit.allow(s.clientIP(r)) {
		return apperr.ErrRateLimited
	}
	err = s.Store.InTx(r.Context(), func(tx pgx.Tx) error {
		id, err := store.RequestLoginLink(r.Context(), tx, addr.Address, loginPerAddress, time.Hour)
		if err != nil {
			return err
		}
		_, err = s.Jobs.InsertTx(r.Context(), tx, email.LoginArgs{LinkID: id}, nil)
		return err
	})
	if errors.Is(err, apperr.ErrRateLimited) {
		data.Errors["email"] = "Several links were sent to this address in the last hour. Use the newest, or try again later."
		s.renderStatus(w, http.StatusTooManyRequests, "login.html", data)
		return nil
	}
	if err != nil {
		return err
	}
	data.Sent = true
	data.Title = "Check your mail"
	s.renderStatus(w, http.StatusOK, "login.html", data)
	return nil
}

// loginLink is what opening a mailed sign-in link shows: a button that
// POSTs to the same address (useLoginLink). Nothing is spent on GET.
func (s *Server) loginLink(w http.ResponseWriter, r *http.Request) error {
	token := chi.URLParam(r, "token")
	live, err := s.Store.LoginTokenLive(r.Context(), token)
	if err != nil {
		return err
	}
	if !live {
		s.loginLinkInvalid(w, r)
		return nil
	}
	s.renderStatus(w, http.StatusOK, "link.html", linkPage{Page: s.base(r, "Sign in to fmn"),
		Intro: "You asked for a link to sign in to fmn.", Action: "/login/" + url.PathEscape(token), Button: "Sign in"})
	return nil
}

func (s *Server) loginLinkInvalid(w http.ResponseWriter, r *http.Request) {
	s.renderStatus(w, http.StatusNotFound, "error.html", errorPage{Page: s.base(r, "Link not valid"),
		Message: "This sign-in link is unknown, was used already, or has expired. Ask for a new one on the sign-in page."})
}

// useLoginLink is the sign-in link's button: it spends the link, signs in
// and goes home. A first sign-in goes to the name step instead (welcome),
// with the sign-up secret in a short-lived cookie of this browser.
func (s *Server) useLoginLink(w http.ResponseWriter, r *http.Request) error {
	_, sess, signup, err := s.Store.UseLoginToken(r.Context(), chi.URLParam(r, "token"))
	if errors.Is(err, apperr.ErrNotFound) {
		s.loginLinkInvalid(w, r)
		return nil
	}
	if err != nil {
		return err
	}
	if signup != "" {
		s.setCookie(w, signupCookie, signup, 30*time.Minute)
		http.Redirect(w, r, "/welcome", http.StatusSeeOther)
		return nil
	}
	s.startSession(w, sess)
	http.Redirect(w, r, "/", http.StatusSeeOther)
	return nil
}

const signupCookie = "fmn_signup"

type welcomePage struct {
	Page
	Email  string
	Name   string
	Errors map[string]string
}

// welcome is the first sign-in's name step: the name is the person's bus
// name (their Fedora account name, say), which fmn cannot guess from an
// address.
func (s *Server) welcome(w http.ResponseWriter, r *http.Request) error {
	su, err := s.Store.GetSignup(r.Context(), s.cookie(r, signupCookie))
	if errors.Is(err, apperr.ErrNotFound) {
		http.Redirect(w, r, "/login", http.StatusSeeOther)
		return nil
	}
	if err != nil {
		return err
	}
	s.renderStatus(w, http.StatusOK, "welcome.html", welcomePage{Page: s.base(r, "Choose your name"), Email: su.Email, Name: su.Suggested})
	return nil
}

// chooseName creates the account with the chosen name and signs it in.
func (s *Server) chooseName(w http.ResponseWriter, r *http.Request) error {
	tok := s.cookie(r, signupCookie)
	su, err := s.Store.GetSignup(r.Context(), tok)
	if errors.Is(err, apperr.ErrNotFound) {
		http.Redirect(w, r, "/login", http.StatusSeeOther)
		return nil
	}
	if err != nil {
		return err
	}
	name := strings.TrimSpace(r.PostFormValue("name"))
	_, sess, err := s.Store.CompleteSignup(r.Context(), tok, name)
	if err != nil {
		errs, err := fieldErrors(err)
		if err != nil {
			return err
		}
		s.renderStatus(w, http.StatusBadRequest, "welcome.html", welcomePage{Page: s.base(r, "Choose your name"),
			Email: su.Email, Name: name, Errors: errs})
		return nil
	}
	s.setCookie(w, signupCookie, "", -1)
	s.startSession(w, sess)
	// A new account: offer a first rule (it is only an offer).
	http.Redirect(w, r, "/welcome/rule", http.StatusSeeOther)
	return nil
}

func (s *Server) logout(w http.ResponseWriter, r *http.Request) error {
	if tok := s.cookie(r, sessionCookie); tok != "" {
		if err := s.Store.DeleteSession(r.Context(), tok); err != nil {
			return err
		}
	}
	s.setCookie(w, sessionCookie, "", -1)
	http.Redirect(w, r, "/", http.StatusSeeOther)
	return nil
}

// oidcClient discovers the provider on first use rather than at start, so a
// provider that is briefly down delays sign-in, not the whole service.
type oidcClient struct {
	cfg     AuthConfig
	baseURL string

	mu       sync.Mutex
	provider *oidc.Provider
}

func (c *oidcClient) get(ctx context.Context) (*oidc.Provider, *oauth2.Config, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.provider == nil {
		dctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		defer cancel()
		p, err := oidc.NewProvider(dctx, c.cfg.OIDCIssuer)
		if err != nil {
			return nil, nil, fmt.Errorf("discover OpenID provider %s: %w", c.cfg.OIDCIssuer, err)
		}
		c.provider = p
	}
	return c.provider, &oauth2.Config{
		ClientID:     c.cfg.OIDCClientID,
		ClientSecret: c.cfg.OIDCClientSecret,
		Endpoint:     c.provider.Endpoint(),
		RedirectURL:  c.baseURL + "/oidc/callback",
		Scopes:       append([]string{oidc.ScopeOpenID, "profile", "email"}, c.cfg.OIDCScopes...),
	}, nil
}

const oidcCookie = "fmn_oidc"

// oidcStart sends the browser to the provider. State, nonce and the PKCE
// verifier ride in a short-lived cookie and must come back intact.
func (s *Server) oidcStart(w http.ResponseWriter, r *http.Request) error {
	if s.oidc == nil {
		return apperr.ErrNotFound
	}
	_, oc, err := s.oidc.get(r.Context())
	if err != nil {
		return err
	}
	state, _ := store.NewSecret("")
	nonce, _ := store.NewSecret("")
	verifier := oauth2.GenerateVerifier()
	next := localPath(r.URL.Query().Get("next"))
	s.setCookie(w, oidcCookie, strings.Join([]string{state, nonce, verifier, next}, " "), 10*time.Minute)
	http.Redirect(w, r, oc.AuthCodeURL(state, oidc.Nonce(nonce), oauth2.S256ChallengeOption(verifier)), http.StatusFound)
	return nil
}

// oidcCallback finishes the code flow: the ID token's signature, issuer,
// audience, expiry and nonce are checked, then the configured claim names
// the user.
func (s *Server) oidcCallback(w http.ResponseWriter, r *http.Request) error {
	if s.oidc == nil {
		return apperr.ErrNotFound
	}
	parts := strings.SplitN(s.cookie(r, oidcCookie), " ", 4)
	s.setCookie(w, oidcCookie, "", -1)
	q := r.URL.Query()
	if len(parts) != 4 || subtle.ConstantTimeCompare([]byte(parts[0]), []byte(q.Get("state"))) != 1 {
		return apperr.Invalid("", "The sign-in took too long or was started elsewhere. Please sign in again.")
	}
	if e := q.Get("error"); e != "" {
		return apperr.Invalid("", "The identity provider refused the sign-in (%s).", e)
	}
	p, oc, err := s.oidc.get(r.Context())
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(r.Context(), 15*time.Second)
	defer cancel()
	tok, err := oc.Exchange(ctx, q.Get("code"), oauth2.VerifierOption(parts[2]))
	if err != nil {
		return fmt.Errorf("exchange OpenID code: %w", err)
	}
	raw, ok := tok.Extra("id_token").(string)
	if !ok {
		return errors.New("OpenID provider sent no id_token")
	}
	idt, err := p.Verifier(&oidc.Config{ClientID: s.Auth.OIDCClientID}).Verify(ctx, raw)
	if err != nil {
		return fmt.Errorf("verify ID token: %w", err)
	}
	if subtle.ConstantTimeCompare([]byte(idt.Nonce), []byte(parts[1])) != 1 {
		return apperr.Invalid("", "The sign-in answer does not belong to this sign-in. Please sign in again.")
	}
	var claims map[string]any
	if err := idt.Claims(&claims); err != nil {
		return fmt.Errorf("read ID token claims: %w", err)
	}
	name, _ := claims[s.Auth.OIDCUsernameClaim].(string)
	if err := store.ValidUserName(name); err != nil {
		s.log.Warn("OpenID username claim unusable", "claim", s.Auth.OIDCUsernameClaim, "sub", idt.Subject)
		return apperr.Invalid("", "Your account has no usable user name (claim %q).", s.Auth.OIDCUsernameClaim)
	}
	// The provider's email counts only when it says it verified it: the
	// address may name an admin (FMN_ADMINS) and is where mail goes.
	email, _ := claims["email"].(string)
	if verified, _ := claims["email_verified"].(bool); !verified {
		email = ""
	}
	id := store.OIDCIdentity{Issuer: idt.Issuer, Subject: idt.Subject, Name: name, Email: email}
	id.Groups, id.GroupsKnown = s.oidcGroups(ctx, p, tok, claims)
	u, moved, err := s.Store.SignInOIDC(r.Context(), id)
	if err != nil {
		return err
	}
	if len(moved) > 0 {
		s.log.Warn("OpenID user name moved to a new subject; the account that held it was renamed",
			"name", name, "sub", idt.Subject, "renamed_to", moved)
	}
	sess, err := s.Store.CreateSession(r.Context(), u.ID, email) // a verified address, or ""
	if err != nil {
		return err
	}
	s.startSession(w, sess)
	next := localPath(parts[3])
	if next == "/" {
		// Landing on the start page with an empty account (a first
		// sign-in): offer a first rule on the way.
		offer, err := s.offerFirstRule(r, u.ID)
		if err != nil {
			return err
		}
		if offer {
			next = "/welcome/rule"
		}
	}
	http.Redirect(w, r, next, http.StatusSeeOther)
	return nil
}

// oidcGroups reads the groups claim from the ID token, else from the
// provider's userinfo endpoint (some providers keep it there). ok is false
// when neither has it: the stored memberships then stay as they are.
func (s *Server) oidcGroups(ctx context.Context, p *oidc.Provider, tok *oauth2.Token, claims map[string]any) ([]string, bool) {
	claim := s.Auth.OIDCGroupsClaim
	if claim == "" {
		return nil, false
	}
	v, ok := claims[claim]
	if !ok {
		info, err := p.UserInfo(ctx, oauth2.StaticTokenSource(tok))
		if err != nil {
			return nil, false
		}
		var more map[string]any
		if info.Claims(&more) != nil {
			return nil, false
		}
		if v, ok = more[claim]; !ok {
			return nil, false
		}
	}
	list, ok := v.([]any)
	if !ok {
		return nil, false
	}
	groups := make([]string, 0, len(list))
	for _, g := range list {
		if name, ok := g.(string); ok {
			groups = append(groups, name)
		}
	}
	return groups, true
}

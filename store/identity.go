package store

import (
	"context"
	"fmt"
	"strconv"
	"strings"

	"github.com/jackc/pgx/v5"

	"fmn/apperr"
)

// A user's name is their bus name: what "mine", "owned" and "not my
// actions" compare with. This file decides who gets which name: an OpenID
// provider (its user-name claim, bound to the provider's subject) or, with
// emailed sign-in, the person at their first sign-in and on the settings
// page.

// OIDCIdentity is what a verified ID token says about the person signing in.
type OIDCIdentity struct {
	Issuer, Subject string
	Name            string // the user-name claim: the bus name
	Email           string // verified address, or ""
	// Groups is the groups claim; GroupsKnown says the provider sent one
	// (an absent claim leaves the stored memberships alone).
	Groups      []string
	GroupsKnown bool
}

// formerName is the name an account is left with when its name moved to
// another subject: valid as a user name, unlike any Fedora account name
// (those have no underscore), and unique by the id.
func formerName(id int64) string { return "former_" + strconv.FormatInt(id, 10) }

// SignInOIDC returns the account bound to the identity's issuer and
// subject, creating it on a first sign-in, and gives it the name the
// provider now says it has.
//
// The name never decides whose account it is. When another account holds
// the name, the provider has given that name to this subject (a released
// name reused, or an account renamed), so the name moves: the other account
// keeps its rules and destinations under formerName, where nothing on the
// bus matches them, rather than passing its owner's notifications to a
// stranger. An account made before accounts were bound (no subject yet) is
// taken over only when the provider vouches for the same email address.
func (s *Store) SignInOIDC(ctx context.Context, id OIDCIdentity) (User, []string, error) {
	if err := ValidUserName(id.Name); err != nil {
		return User{}, nil, err
	}
	if id.Issuer == "" || id.Subject == "" {
		return User{}, nil, fmt.Errorf("OIDC sign-in without issuer or subject")
	}
	var u User
	var moved []string
	err := s.InTx(ctx, func(tx pgx.Tx) error {
		moved = nil
		// One subject, and one name, at a time.
		if _, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock(hashtext('fmn-oidc:' || $1 || '#' || $2)),
			pg_advisory_xact_lock(hashtext('fmn-name:' || $3))`, id.Issuer, id.Subject, id.Name); err != nil {
			return translate(err, "lock identity")
		}
		var self int64
		err := tx.QueryRow(ctx, `SELECT id FROM users WHERE oidc_issuer = $1 AND oidc_subject = $2`,
			id.Issuer, id.Subject).Scan(&self)
		if err != nil && err != pgx.ErrNoRows {
			return translate(err, "find OIDC account")
		}
		var holder int64
		var holderBound bool
		var holderEmail string
		err = tx.QueryRow(ctx, `SELECT id, oidc_subject IS NOT NULL, coalesce(email, '') FROM users WHERE name = $1`,
			id.Name).Scan(&holder, &holderBound, &holderEmail)
		if err != nil && err != pgx.ErrNoRows {
			return translate(err, "find name holder")
		}
		if self == 0 && holder != 0 && !holderBound && id.Email != "" && strings.EqualFold(holderEmail, id.Email) {
			self = holder // an account from before subjects were bound
		}
		if holder != 0 && holder != self {
			if _, err := tx.Exec(ctx, `UPDATE users SET name = $2 WHERE id = $1`, holder, formerName(holder)); err != nil {
				return translate(err, "move name away")
			}
			moved = append(moved, formerName(holder))
		}
		if self == 0 {
			err = tx.QueryRow(ctx, `INSERT INTO users (name, email, oidc_issuer, oidc_subject) VALUES ($1, nullif($2, ''), $3, $4)
				RETURNING id, name, coalesce(email, ''), timezone`, id.Name, id.Email, id.Issuer, id.Subject).
				Scan(&u.ID, &u.Name, &u.Email, &u.Timezone)
			if err != nil {
				return translate(err, "create OIDC account")
			}
		} else {
			err = tx.QueryRow(ctx, `UPDATE users SET name = $2, email = coalesce(email, nullif($3, '')),
					oidc_issuer = $4, oidc_subject = $5
				WHERE id = $1 RETURNING id, name, coalesce(email, ''), timezone`, self, id.Name, id.Email, id.Issuer, id.Subject).
				Scan(&u.ID, &u.Name, &u.Email, &u.Timezone)
			if err != nil {
				return translate(err, "update OIDC account")
			}
		}
		if id.GroupsKnown {
			return setMemberships(ctx, tx, u.Name, id.Groups, "oidc")
		}
		return nil
	})
	return u, moved, err
}

// nameTaken is the error for a name another account has.
func nameTaken(name string) error {
	return apperr.Invalid("name", "the name %q is taken; choose another", name)
}

// RenameUser gives a user a new bus name. An account bound to an OpenID
// provider takes its name from the provider at each sign-in and cannot be
// renamed here.
func (s *Store) RenameUser(ctx context.Context, userID int64, name string) (User, error) {
	if err := ValidUserName(name); err != nil {
		return User{}, apperr.Invalid("name", "a user name is 1–64 letters, digits, '.', '_' or '-', starting with a letter or digit")
	}
	var u User
	var bound bool
	err := s.Pool.QueryRow(ctx, `UPDATE users SET name = $2 WHERE id = $1 AND oidc_subject IS NULL
		RETURNING id, name, coalesce(email, ''), timezone`, userID, name).Scan(&u.ID, &u.Name, &u.Email, &u.Timezone)
	switch err := translate(err, "rename user"); err {
	case nil:
		return u, nil
	case apperr.ErrConflict:
		return User{}, nameTaken(name)
	case apperr.ErrNotFound:
		if e := s.Pool.QueryRow(ctx, `SELECT oidc_subject IS NOT NULL FROM users WHERE id = $1`, userID).Scan(&bound); e == nil && bound {
			return User{}, apperr.Invalid("name", "your name comes from your identity provider; change it there")
		}
		return User{}, err
	default:
		return User{}, err
	}
}

// NameBound reports whether the user's name comes from an OpenID provider.
func (s *Store) NameBound(ctx context.Context, userID int64) (bool, error) {
	var bound bool
	err := s.Pool.QueryRow(ctx, `SELECT oidc_subject IS NOT NULL FROM users WHERE id = $1`, userID).Scan(&bound)
	return bound, translate(err, "read identity")
}

// SignupTTL: the name step follows the link at once, or the link is asked
// for again.
const signupTTL = "30 minutes"

// Signup is a first emailed sign-in waiting for its name.
type Signup struct {
	Email     string
	Suggested string // a free name derived from the address
}

// startSignup keeps, on the spent link, the hash of a new secret that
// lets its browser choose a name.
func startSignup(ctx context.Context, tx pgx.Tx, linkID int64) (string, error) {
	tok, hash := NewSecret("")
	_, err := tx.Exec(ctx, `UPDATE login_links SET signup_hash = $2, signup_expires_at = now() + $3::interval WHERE id = $1`,
		linkID, hash, signupTTL)
	return tok, translate(err, "start sign-up")
}

// GetSignup returns a waiting sign-up; unknown or expired is ErrNotFound.
func (s *Store) GetSignup(ctx context.Context, token string) (Signup, error) {
	var su Signup
	err := s.Pool.QueryRow(ctx, `SELECT email FROM login_links WHERE signup_hash = $1 AND signup_expires_at > now()`,
		HashSecret(token)).Scan(&su.Email)
	if err != nil {
		return su, translate(err, "find sign-up")
	}
	base := NameFromEmail(su.Email)
	su.Suggested = base
	for i := 2; i < 100; i++ {
		var taken bool
		if err := s.Pool.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM users WHERE name = $1)`, su.Suggested).Scan(&taken); err != nil {
			return su, translate(err, "check name")
		}
		if !taken {
			break
		}
		su.Suggested = base + strconv.Itoa(i)
	}
	return su, nil
}

// CompleteSignup creates the user of a waiting sign-up with the chosen name
// and starts a session. A taken or malformed name is an Invalid error on
// field "name", and the sign-up stays open for another try.
func (s *Store) CompleteSignup(ctx context.Context, token, name string) (User, string, error) {
	name = strings.TrimSpace(name)
	if err := ValidUserName(name); err != nil {
		return User{}, "", apperr.Invalid("name", "a user name is 1–64 letters, digits, '.', '_' or '-', starting with a letter or digit")
	}
	var u User
	var email string // where the sign-in link went: the sign-up proves it
	err := s.InTx(ctx, func(tx pgx.Tx) error {
		var id int64
		err := tx.QueryRow(ctx, `SELECT id, email FROM login_links WHERE signup_hash = $1 AND signup_expires_at > now() FOR UPDATE`,
			HashSecret(token)).Scan(&id, &email)
		if err != nil {
			return translate(err, "find sign-up")
		}
		if _, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock(hashtext('fmn-login:' || lower($1)))`, email); err != nil {
			return translate(err, "lock address")
		}
		// Signed up meanwhile from another link: that account it is.
		err = tx.QueryRow(ctx, `SELECT id, name, coalesce(email, ''), timezone FROM users
			WHERE lower(email) = lower($1) ORDER BY id LIMIT 1`, email).Scan(&u.ID, &u.Name, &u.Email, &u.Timezone)
		if err == pgx.ErrNoRows {
			err = tx.QueryRow(ctx, `INSERT INTO users (name, email) VALUES ($1, $2) ON CONFLICT (name) DO NOTHING
				RETURNING id, name, coalesce(email, ''), timezone`, name, email).Scan(&u.ID, &u.Name, &u.Email, &u.Timezone)
			if err == pgx.ErrNoRows {
				return nameTaken(name)
			}
		}
		if err != nil {
			return translate(err, "create user")
		}
		_, err = tx.Exec(ctx, `UPDATE login_links SET signup_hash = NULL, signup_expires_at = NULL WHERE id = $1`, id)
		return translate(err, "finish sign-up")
	})
	if err != nil {
		return User{}, "", err
	}
	sess, err := s.CreateSession(ctx, u.ID, email)
	return u, sess, err
}

package store

import (
	"context"
	"regexp"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"fmn/apperr"
)

// Lifetimes of the web's secrets.
const (
	// SessionTTL: a browser stays signed in for two weeks, then signs in
	// again; long enough not to annoy, short enough that a forgotten
	// session on a shared machine dies.
	SessionTTL = 14 * 24 * time.Hour
	// LoginLinkTTL: a sign-in link is read within minutes or not at all.
	LoginLinkTTL = 15 * time.Minute
)

// CreateSession starts a session for the user and returns its secret (the
// cookie value); only the hash is stored. signedInEmail is the address the
// sign-in proved ("" when it proved none): the emailed link went there, or
// the OpenID provider verified it. Proving an address confirms the user's
// email destinations with that address, in the same transaction (a
// confirmation mail would prove nothing more), and lets one added later be
// confirmed at once (User.SignedInEmail). Expired sessions of anyone are
// swept on the way, so the table does not grow without bound.
func (s *Store) CreateSession(ctx context.Context, userID int64, signedInEmail string) (string, error) {
	tok, hash := NewSecret("")
	err := s.InTx(ctx, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `DELETE FROM sessions WHERE expires_at < now()`); err != nil {
			return translate(err, "sweep sessions")
		}
		_, err := tx.Exec(ctx, `INSERT INTO sessions (user_id, token_hash, expires_at, signed_in_email)
			VALUES ($1, $2, now() + $3::interval, nullif($4, ''))`, userID, hash, SessionTTL.String(), signedInEmail)
		if err != nil {
			return translate(err, "create session")
		}
		if signedInEmail == "" {
			return nil
		}
		_, err = tx.Exec(ctx, `UPDATE destinations SET confirmed_at = now(), confirm_hash = NULL, confirm_expires_at = NULL
			WHERE user_id = $1 AND kind = 'email' AND lower(address) = lower($2) AND confirmed_at IS NULL`, userID, signedInEmail)
		return translate(err, "confirm the signed-in address")
	})
	if err != nil {
		return "", err
	}
	return tok, nil
}

// UserBySession returns the user a live session belongs to; an unknown or
// expired session is ErrUnauthorized. The lookup is by hash, so no
// comparison ever touches the secret itself.
func (s *Store) UserBySession(ctx context.Context, token string) (User, error) {
	var u User
	err := s.Pool.QueryRow(ctx, `
		UPDATE sessions se SET last_seen_at = now()
		FROM users u WHERE se.token_hash = $1 AND se.expires_at > now() AND u.id = se.user_id
		RETURNING u.id, u.name, coalesce(u.email, ''), u.timezone, coalesce(u.oidc_issuer, ''), coalesce(u.oidc_subject, ''),
			coalesce(se.signed_in_email, '')`,
		HashSecret(token)).Scan(&u.ID, &u.Name, &u.Email, &u.Timezone, &u.OIDCIssuer, &u.OIDCSubject, &u.SignedInEmail)
	if err := translate(err, "look up session"); err != nil {
		if err == apperr.ErrNotFound {
			return User{}, apperr.ErrUnauthorized
		}
		return User{}, err
	}
	return u, nil
}

// DeleteSession ends a session (sign out).
func (s *Store) DeleteSession(ctx context.Context, token string) error {
	_, err := s.Pool.Exec(ctx, `DELETE FROM sessions WHERE token_hash = $1`, HashSecret(token))
	return translate(err, "delete session")
}

// RequestLoginLink records that an address asked to sign in, in tx (the
// caller queues the mailing job in the same transaction). It refuses with
// ErrRateLimited when the mailbox asked more than max times in the window,
// so nobody can make fmn mail-bomb an address: "Jane+1@X" and "jane+2@x"
// count as jane@x (see mailboxKey).
func RequestLoginLink(ctx context.Context, tx pgx.Tx, email string, max int, window time.Duration) (int64, error) {
	// Old requests matter to nobody once past the window and their link's
	// life: sweep them here so the table stays small.
	if _, err := tx.Exec(ctx, `DELETE FROM login_links WHERE created_at < now() - interval '1 day'`); err != nil {
		return 0, translate(err, "sweep sign-in requests")
	}
	var recent int
	if err := tx.QueryRow(ctx, `SELECT count(*) FROM login_links WHERE `+mailboxKey("email")+` = `+mailboxKey("$1")+`
		AND created_at > now() - $2::interval`, email, window.String()).Scan(&recent); err != nil {
		return 0, translate(err, "count sign-in requests")
	}
	if recent >= max {
		return 0, apperr.ErrRateLimited
	}
	var id int64
	err := tx.QueryRow(ctx, `INSERT INTO login_links (email) VALUES ($1) RETURNING id`, email).Scan(&id)
	return id, translate(err, "record sign-in request")
}

// NewLoginToken makes the secret of a sign-in link, valid for LoginLinkTTL,
// and returns it with the address to mail it to. Making a new one voids the
// old (a retried job never leaves two live links).
func (s *Store) NewLoginToken(ctx context.Context, linkID int64) (token, email string, err error) {
	tok, hash := NewSecret("")
	err = s.Pool.QueryRow(ctx, `UPDATE login_links SET token_hash = $2, expires_at = now() + $3::interval
		WHERE id = $1 AND used_at IS NULL RETURNING email`, linkID, hash, LoginLinkTTL.String()).Scan(&email)
	if err != nil {
		return "", "", translate(err, "make sign-in token")
	}
	return tok, email, nil
}

// LoginTokenLive reports whether a sign-in link would work, without
// spending it (the page a mailed link opens asks this).
func (s *Store) LoginTokenLive(ctx context.Context, token string) (bool, error) {
	var live bool
	err := s.Pool.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM login_links
		WHERE token_hash = $1 AND used_at IS NULL AND expires_at > now())`, HashSecret(token)).Scan(&live)
	return live, translate(err, "check sign-in link")
}

// UseLoginToken spends a sign-in link. For an address with an account it
// returns the user and a new session. For a first sign-in it creates no
// user yet: it returns a sign-up secret instead, with which the person
// chooses their name (CompleteSignup), because the name is their bus name
// and the address's local part is often not it. A link works once and only
// until it expires; anything else is ErrNotFound.
func (s *Store) UseLoginToken(ctx context.Context, token string) (u User, session, signup string, err error) {
	var email string // where the link was mailed: the sign-in proves it
	err = s.InTx(ctx, func(tx pgx.Tx) error {
		var id int64
		err := tx.QueryRow(ctx, `UPDATE login_links SET used_at = now()
			WHERE token_hash = $1 AND used_at IS NULL AND expires_at > now() RETURNING id, email`, HashSecret(token)).Scan(&id, &email)
		if err != nil {
			return translate(err, "use sign-in link")
		}
		err = tx.QueryRow(ctx, `SELECT id, name, coalesce(email, ''), timezone FROM users
			WHERE lower(email) = lower($1) ORDER BY id LIMIT 1`, email).Scan(&u.ID, &u.Name, &u.Email, &u.Timezone)
		if err == pgx.ErrNoRows {
			signup, err = startSignup(ctx, tx, id)
			return err
		}
		return translate(err, "find user by email")
	})
	if err != nil || signup != "" {
		return User{}, "", signup, err
	}
	session, err = s.CreateSession(ctx, u.ID, email)
	return u, session, "", err
}

// mailboxKey is the SQL expression folding an address to the mailbox it
// reaches, for per-address limits: lower case, and without a "+tag" in the
// local part, which most providers deliver to the same mailbox (so
// victim+1@, victim+2@, … would each get a fresh allowance otherwise).
func mailboxKey(expr string) string {
	return `lower(regexp_replace(` + expr + `, '\+[^@]*@', '@'))`
}

var notNameChar = regexp.MustCompile(`[^A-Za-z0-9_.-]+`)

// NameFromEmail derives a name to suggest from an address's local part:
// "Jane.Doe+fmn@example.org" gives "jane.doe". Bus names are lower case,
// so it is kept close to what the person typed; they choose in the end.
func NameFromEmail(email string) string {
	local, _, _ := strings.Cut(strings.ToLower(email), "@")
	local, _, _ = strings.Cut(local, "+")
	name := strings.TrimLeft(notNameChar.ReplaceAllString(local, ""), "_.-")
	if len(name) > 56 {
		name = name[:56]
	}
	if name == "" {
		name = "user"
	}
	return name
}

// Token is an API token as its owner sees it: never the secret.
type Token struct {
	ID         int64
	Label      string
	CreatedAt  time.Time
	LastUsedAt *time.Time
}

// ListTokens returns a user's API tokens, newest first.
func (s *Store) ListTokens(ctx context.Context, userID int64) ([]Token, error) {
	rows, err := s.Pool.Query(ctx, `SELECT id, label, created_at, last_used_at FROM api_tokens WHERE user_id = $1 ORDER BY id DESC`, userID)
	if err != nil {
		return nil, translate(err, "list tokens")
	}
	ts, err := pgx.CollectRows(rows, pgx.RowToStructByPos[Token])
	return ts, translate(err, "list tokens")
}

// RevokeToken deletes one of a user's tokens.
func (s *Store) RevokeToken(ctx context.Context, userID, id int64) error {
	tag, err := s.Pool.Exec(ctx, `DELETE FROM api_tokens WHERE id = $1 AND user_id = $2`, id, userID)
	if err != nil {
		return translate(err, "revoke token")
	}
	if tag.RowsAffected() == 0 {
		return apperr.ErrNotFound
	}
	return nil
}

// NewFeedToken gives the user a new secret feed address, voiding the old.
func (s *Store) NewFeedToken(ctx context.Context, userID int64) (string, error) {
	tok, hash := NewSecret("")
	_, err := s.Pool.Exec(ctx, `UPDATE users SET feed_token_hash = $2 WHERE id = $1`, userID, hash)
	if err != nil {
		return "", translate(err, "make feed address")
	}
	return tok, nil
}

// HasFeed reports whether the user has a feed address.
func (s *Store) HasFeed(ctx context.Context, userID int64) (bool, error) {
	var has bool
	err := s.Pool.QueryRow(ctx, `SELECT feed_token_hash IS NOT NULL FROM users WHERE id = $1`, userID).Scan(&has)
	return has, translate(err, "read feed state")
}

// UserByFeedToken returns the owner of a feed address; unknown is
// ErrNotFound.
func (s *Store) UserByFeedToken(ctx context.Context, token string) (User, error) {
	var u User
	err := s.Pool.QueryRow(ctx, `SELECT id, name, coalesce(email, ''), timezone FROM users WHERE feed_token_hash = $1`,
		HashSecret(token)).Scan(&u.ID, &u.Name, &u.Email, &u.Timezone)
	return u, translate(err, "find feed")
}

// DeleteUser removes a user and, through the foreign keys' cascades, all of
// their data: sessions, tokens, destinations, rules, notifications.
func (s *Store) DeleteUser(ctx context.Context, userID int64) error {
	tag, err := s.Pool.Exec(ctx, `DELETE FROM users WHERE id = $1`, userID)
	if err != nil {
		return translate(err, "delete user")
	}
	if tag.RowsAffected() == 0 {
		return apperr.ErrNotFound
	}
	return nil
}

// Seen is what the bus carried lately, for the rule editor's suggestions.
type Seen struct {
	Apps, Packages, Users, Containers, Modules, Flatpaks []string
}

// SeenValues returns the distinct apps, users and artifacts of the newest
// recent messages, at most max of each, sorted.
func (s *Store) SeenValues(ctx context.Context, recent, max int) (Seen, error) {
	var v Seen
	err := s.Pool.QueryRow(ctx, `
		WITH m AS (SELECT app, packages, usernames, containers, modules, flatpaks FROM messages ORDER BY id DESC LIMIT $1)
		SELECT
			coalesce((SELECT array_agg(a ORDER BY a) FROM (SELECT DISTINCT app AS a FROM m WHERE app <> '' LIMIT $2) x), '{}'),
			coalesce((SELECT array_agg(a ORDER BY a) FROM (SELECT DISTINCT unnest(packages) AS a FROM m LIMIT $2) x), '{}'),
			coalesce((SELECT array_agg(a ORDER BY a) FROM (SELECT DISTINCT unnest(usernames) AS a FROM m LIMIT $2) x), '{}'),
			coalesce((SELECT array_agg(a ORDER BY a) FROM (SELECT DISTINCT unnest(containers) AS a FROM m LIMIT $2) x), '{}'),
			coalesce((SELECT array_agg(a ORDER BY a) FROM (SELECT DISTINCT unnest(modules) AS a FROM m LIMIT $2) x), '{}'),
			coalesce((SELECT array_agg(a ORDER BY a) FROM (SELECT DISTINCT unnest(flatpaks) AS a FROM m LIMIT $2) x), '{}')`,
		recent, max).Scan(&v.Apps, &v.Packages, &v.Users, &v.Containers, &v.Modules, &v.Flatpaks)
	return v, translate(err, "read values seen on the bus")
}

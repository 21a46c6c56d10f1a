package store

import (
	"context"
	"fmt"
	"regexp"
	"time"

	"fmn/apperr"
)

// User is an fmn account. Name is the bus username (FAS name on Fedora): it is
// what "mine" and "not my actions" compare with.
type User struct {
	ID       int64  `json:"id"`
	Name     string `json:"name"`
	Email    string `json:"email,omitempty"`
	Timezone string `json:"timezone"`
	// OIDCIssuer and OIDCSubject name the OpenID identity the account is
	// bound to ("" for emailed sign-in accounts). Filled by UserBySession
	// and UserByToken, the lookups that authenticate a request, for
	// FMN_ADMINS' issuer#subject entries.
	OIDCIssuer  string `json:"-"`
	OIDCSubject string `json:"-"`
	// SignedInEmail is, for a user found by session, the address that
	// session's sign-in proved (see CreateSession); empty otherwise.
	SignedInEmail string `json:"-"`
}

var userNameRE = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$`)

// ValidUserName reports whether name may be a user name.
func ValidUserName(name string) error {
	if !userNameRE.MatchString(name) {
		return apperr.Invalid("user", "a user name is 1–64 letters, digits, '.', '_' or '-'")
	}
	return nil
}

// EnsureUser returns the user called name, creating it if needed. An email
// given for an existing user without one is recorded.
func (s *Store) EnsureUser(ctx context.Context, name, email string) (User, error) {
	if err := ValidUserName(name); err != nil {
		return User{}, err
	}
	var u User
	err := s.Pool.QueryRow(ctx, `
		INSERT INTO users (name, email) VALUES ($1, nullif($2, ''))
		ON CONFLICT (name) DO UPDATE SET email = coalesce(users.email, excluded.email)
		RETURNING id, name, coalesce(email, ''), timezone`, name, email).
		Scan(&u.ID, &u.Name, &u.Email, &u.Timezone)
	return u, translate(err, "ensure user")
}

// CreateToken makes a personal access token for the user and returns it; only
// its hash is stored.
func (s *Store) CreateToken(ctx context.Context, userID int64, label string) (string, error) {
	tok, hash := NewSecret("fmn_")
	_, err := s.Pool.Exec(ctx, `INSERT INTO api_tokens (user_id, token_hash, label) VALUES ($1, $2, $3)`, userID, hash, label)
	if err != nil {
		return "", translate(err, "create token")
	}
	return tok, nil
}

// UserByToken finds the owner of a token; an unknown token is ErrUnauthorized.
func (s *Store) UserByToken(ctx context.Context, token string) (User, error) {
	var u User
	err := s.Pool.QueryRow(ctx, `
		UPDATE api_tokens t SET last_used_at = now()
		FROM users u WHERE t.token_hash = $1 AND u.id = t.user_id
		RETURNING u.id, u.name, coalesce(u.email, ''), u.timezone, coalesce(u.oidc_issuer, ''), coalesce(u.oidc_subject, '')`,
		HashSecret(token)).Scan(&u.ID, &u.Name, &u.Email, &u.Timezone, &u.OIDCIssuer, &u.OIDCSubject)
	if err := translate(err, "look up token"); err != nil {
		if err == apperr.ErrNotFound {
			return User{}, apperr.ErrUnauthorized
		}
		return User{}, fmt.Errorf("authenticate: %w", err)
	}
	return u, nil
}

// UserName returns a user's name.
func (s *Store) UserName(ctx context.Context, id int64) (string, error) {
	var name string
	err := s.Pool.QueryRow(ctx, `SELECT name FROM users WHERE id = $1`, id).Scan(&name)
	return name, translate(err, "get user name")
}

// UserSettings are the per-user delivery settings.
type UserSettings struct {
	Timezone   string  `json:"timezone"`
	QuietStart *string `json:"quiet_start"` // "22:00", nil = no quiet hours
	QuietEnd   *string `json:"quiet_end"`
}

// GetUserSettings reads a user's settings.
func (s *Store) GetUserSettings(ctx context.Context, userID int64) (UserSettings, error) {
	var us UserSettings
	err := s.Pool.QueryRow(ctx, `SELECT timezone, to_char(quiet_start, 'HH24:MI'), to_char(quiet_end, 'HH24:MI')
		FROM users WHERE id = $1`, userID).Scan(&us.Timezone, &us.QuietStart, &us.QuietEnd)
	return us, translate(err, "get user settings")
}

// UpdateUserSettings stores validated settings: the time zone must be known
// to Go's tz database, quiet hours are both set (HH:MM) or both nil.
func (s *Store) UpdateUserSettings(ctx context.Context, userID int64, us UserSettings) error {
	if _, err := time.LoadLocation(us.Timezone); err != nil || us.Timezone == "" {
		return apperr.Invalid("timezone", "%q is not a time zone like Europe/Paris or UTC", us.Timezone)
	}
	if (us.QuietStart == nil) != (us.QuietEnd == nil) {
		return apperr.Invalid("quiet_start", "give both the start and the end of quiet hours, or neither")
	}
	for _, f := range []struct {
		name string
		v    *string
	}{{"quiet_start", us.QuietStart}, {"quiet_end", us.QuietEnd}} {
		if f.v != nil {
			if _, err := time.Parse("15:04", *f.v); err != nil {
				return apperr.Invalid(f.name, "%q is not a time like 22:00", *f.v)
			}
		}
	}
	_, err := s.Pool.Exec(ctx, `UPDATE users SET timezone = $2, quiet_start = $3::time, quiet_end = $4::time WHERE id = $1`,
		userID, us.Timezone, us.QuietStart, us.QuietEnd)
	return translate(err, "update user settings")
}

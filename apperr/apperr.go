// Package apperr holds the domain errors every layer speaks. Stores translate
// driver errors into these at their edge; the web package maps these, and only
// these, to HTTP statuses. Anything else is an internal error and is never
// shown to a user.
package apperr

import (
	"errors"
	"fmt"
)

var (
	// ErrNotFound: the object does not exist, or belongs to somebody else
	// (the two are indistinguishable on purpose).
	ErrNotFound = errors.New("not found")
	// ErrConflict: the object already exists.
	ErrConflict = errors.New("already exists")
	// ErrUnauthorized: no valid credentials.
	ErrUnauthorized = errors.New("authentication required")
	// ErrRateLimited: try again later.
	ErrRateLimited = errors.New("too many requests, try again later")
)

// InvalidError says which input field is wrong and why, in words for the user.
type InvalidError struct {
	Field   string
	Message string
}

func (e *InvalidError) Error() string {
	if e.Field == "" {
		return e.Message
	}
	return fmt.Sprintf("%s: %s", e.Field, e.Message)
}

// Invalid builds an *InvalidError.
func Invalid(field, format string, args ...any) error {
	return &InvalidError{Field: field, Message: fmt.Sprintf(format, args...)}
}

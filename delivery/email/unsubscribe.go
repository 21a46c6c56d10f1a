package email

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"fmt"
	"strconv"
	"strings"
	"sync"

	"fmn/apperr"
	"fmn/store"
)

// Unsubscriber signs and checks the tokens of one-click unsubscribe links
// (RFC 8058): "{destination id}.{HMAC}", so that a POST to the link turns
// the destination off without a login, and nobody can forge one for
// another destination. The key is kept in the database (table secrets),
// made on first use, so every fmn process sharing it agrees.
type Unsubscriber struct {
	Store *store.Store

	mu  sync.Mutex
	key []byte
}

const unsubscribeSecret = "unsubscribe-hmac"

func (u *Unsubscriber) loadKey(ctx context.Context) ([]byte, error) {
	u.mu.Lock()
	defer u.mu.Unlock()
	if u.key == nil {
		k, err := u.Store.Secret(ctx, unsubscribeSecret)
		if err != nil {
			return nil, fmt.Errorf("load unsubscribe key: %w", err)
		}
		u.key = k
	}
	return u.key, nil
}

func mac(key []byte, destID int64) string {
	h := hmac.New(sha256.New, key)
	fmt.Fprintf(h, "fmn unsubscribe destination %d", destID)
	// 128 bits are plenty for a token that can only switch mail off.
	return base64.RawURLEncoding.EncodeToString(h.Sum(nil)[:16])
}

// Token returns the unsubscribe token of a destination.
func (u *Unsubscriber) Token(ctx context.Context, destID int64) (string, error) {
	key, err := u.loadKey(ctx)
	if err != nil {
		return "", err
	}
	return strconv.FormatInt(destID, 10) + "." + mac(key, destID), nil
}

// Check returns the destination a token was made for; a malformed or
// forged token is ErrNotFound.
func (u *Unsubscriber) Check(ctx context.Context, token string) (int64, error) {
	idPart, sig, ok := strings.Cut(token, ".")
	id, err := strconv.ParseInt(idPart, 10, 64)
	if !ok || err != nil || id <= 0 {
		return 0, apperr.ErrNotFound
	}
	key, err := u.loadKey(ctx)
	if err != nil {
		return 0, err
	}
	if !hmac.Equal([]byte(sig), []byte(mac(key, id))) {
		return 0, apperr.ErrNotFound
	}
	return id, nil
}

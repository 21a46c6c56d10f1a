// Package pushtest is a Web Push service for tests: it checks each request as
// a real push service would (VAPID, RFC 8292) and decrypts the payload as the
// browser would (RFC 8291), with its own code written from the RFCs.
// Subscriptions are made by the test and may be told to fail first.
package pushtest

import (
	"bytes"
	"crypto/aes"
	"crypto/cipher"
	"crypto/ecdh"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/hkdf"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/big"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// Service is a running push service.
type Service struct {
	t        testing.TB
	srv      *httptest.Server
	vapidKey []byte // the VAPID public key every request must carry
	subject  string

	mu       sync.Mutex
	subs     map[string]*Browser
	received map[string][]Push
	signal   chan struct{}
}

// Browser is one push subscription: the keys a browser would keep.
type Browser struct {
	id    string
	key   *ecdh.PrivateKey
	auth  []byte
	fails []int // statuses to answer before accepting, in order
}

// Push is one accepted push, decrypted.
type Push struct {
	Payload map[string]any
	TTL     int
	Urgency string
}

// Start runs a push service accepting VAPID key vapidPublic and JWT
// subject; it stops at the test's end.
func Start(t testing.TB, vapidPublic, subject string) *Service {
	k, err := base64.RawURLEncoding.DecodeString(vapidPublic)
	if err != nil {
		t.Fatal(err)
	}
	p := &Service{t: t, vapidKey: k, subject: subject, subs: map[string]*Browser{},
		received: map[string][]Push{}, signal: make(chan struct{}, 1)}
	p.srv = httptest.NewServer(http.HandlerFunc(p.serve))
	t.Cleanup(p.srv.Close)
	return p
}

// Subscribe makes a browser subscription answering the statuses in fails
// first, and returns it with its subscription JSON.
func (p *Service) Subscribe(fails ...int) (*Browser, string) {
	key, err := ecdh.P256().GenerateKey(rand.Reader)
	if err != nil {
		p.t.Fatal(err)
	}
	b := &Browser{id: rand.Text(), key: key, auth: make([]byte, 16), fails: fails}
	rand.Read(b.auth)
	p.mu.Lock()
	p.subs[b.id] = b
	p.mu.Unlock()
	js, _ := json.Marshal(map[string]any{
		"endpoint":       p.srv.URL + "/push/" + b.id,
		"expirationTime": nil,
		"keys": map[string]string{
			"p256dh": base64.RawURLEncoding.EncodeToString(key.PublicKey().Bytes()),
			"auth":   base64.RawURLEncoding.EncodeToString(b.auth),
		},
	})
	return b, string(js)
}

func (p *Service) serve(w http.ResponseWriter, r *http.Request) {
	id, ok := strings.CutPrefix(r.URL.Path, "/push/")
	p.mu.Lock()
	b := p.subs[id]
	p.mu.Unlock()
	if !ok || b == nil || r.Method != http.MethodPost {
		http.NotFound(w, r)
		return
	}
	if err := p.checkVAPID(r); err != nil {
		p.t.Errorf("push request with a bad VAPID header: %v", err)
		http.Error(w, err.Error(), http.StatusUnauthorized)
		return
	}
	ttl, err := strconv.Atoi(r.Header.Get("TTL"))
	if err != nil || ttl <= 0 {
		p.t.Errorf("push request without a TTL: %q", r.Header.Get("TTL"))
	}
	if r.Header.Get("Content-Encoding") != "aes128gcm" {
		p.t.Errorf("Content-Encoding %q", r.Header.Get("Content-Encoding"))
	}
	body, _ := io.ReadAll(r.Body)
	plain, err := decrypt(b, body)
	if err != nil {
		p.t.Errorf("push payload does not decrypt: %v", err)
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	var payload map[string]any
	if err := json.Unmarshal(plain, &payload); err != nil {
		p.t.Errorf("push payload is not JSON: %q", plain)
	}
	p.mu.Lock()
	if len(b.fails) > 0 {
		status := b.fails[0]
		b.fails = b.fails[1:]
		p.mu.Unlock()
		if status == http.StatusTooManyRequests {
			w.Header().Set("Retry-After", "1")
		}
		http.Error(w, "test says no", status)
		return
	}
	p.received[id] = append(p.received[id], Push{Payload: payload, TTL: ttl, Urgency: r.Header.Get("Urgency")})
	p.mu.Unlock()
	select {
	case p.signal <- struct{}{}:
	default:
	}
	w.WriteHeader(http.StatusCreated)
}

// checkVAPID verifies "vapid t=JWT, k=KEY" per RFC 8292: the key is fmn's,
// the JWT is ES256-signed by it, for this origin, expiring within a day,
// with a contact subject.
func (p *Service) checkVAPID(r *http.Request) error {
	h, ok := strings.CutPrefix(r.Header.Get("Authorization"), "vapid ")
	if !ok {
		return fmt.Errorf("authorization %q is not vapid", r.Header.Get("Authorization"))
	}
	var tok, key string
	for _, part := range strings.Split(h, ",") {
		k, v, _ := strings.Cut(strings.TrimSpace(part), "=")
		switch k {
		case "t":
			tok = v
		case "k":
			key = v
		}
	}
	kb, err := base64.RawURLEncoding.DecodeString(key)
	if err != nil || !bytes.Equal(kb, p.vapidKey) {
		return fmt.Errorf("k=%q is not fmn's VAPID key", key)
	}
	pub, err := ecdsa.ParseUncompressedPublicKey(elliptic256(), kb)
	if err != nil {
		return err
	}
	parts := strings.Split(tok, ".")
	if len(parts) != 3 {
		return errors.New("t is not a JWT")
	}
	var head struct{ Alg, Typ string }
	if err := decodeJSONPart(parts[0], &head); err != nil || head.Alg != "ES256" {
		return fmt.Errorf("JWT header %+v %v", head, err)
	}
	sig, err := base64.RawURLEncoding.DecodeString(parts[2])
	if err != nil || len(sig) != 64 {
		return errors.New("JWT signature is not 64 bytes of ES256")
	}
	digest := sha256.Sum256([]byte(parts[0] + "." + parts[1]))
	if !ecdsa.Verify(pub, digest[:], new(big.Int).SetBytes(sig[:32]), new(big.Int).SetBytes(sig[32:])) {
		return errors.New("JWT signature does not verify with the VAPID key")
	}
	var claims struct {
		Aud string
		Exp int64
		Sub string
	}
	if err := decodeJSONPart(parts[1], &claims); err != nil {
		return err
	}
	if claims.Aud != p.srv.URL {
		return fmt.Errorf("aud %q, want the endpoint's origin %q", claims.Aud, p.srv.URL)
	}
	exp := time.Unix(claims.Exp, 0)
	if exp.Before(time.Now()) || exp.After(time.Now().Add(24*time.Hour)) {
		return fmt.Errorf("exp %v is not within the next 24 hours", exp)
	}
	if claims.Sub != p.subject {
		return fmt.Errorf("sub %q, want %q", claims.Sub, p.subject)
	}
	return nil
}

func decodeJSONPart(s string, v any) error {
	b, err := base64.RawURLEncoding.DecodeString(s)
	if err != nil {
		return err
	}
	return json.Unmarshal(b, v)
}

// decrypt opens an aes128gcm body (RFC 8188) with the Web Push key
// derivation (RFC 8291 section 3.4).
func decrypt(b *Browser, body []byte) ([]byte, error) {
	if len(body) < 21 {
		return nil, errors.New("body shorter than its header")
	}
	salt, rs, idlen := body[:16], binary.BigEndian.Uint32(body[16:20]), int(body[20])
	if len(body) < 21+idlen || idlen != 65 {
		return nil, fmt.Errorf("keyid of %d bytes, want the 65-byte sender key", idlen)
	}
	senderPub, ct := body[21:21+idlen], body[21+idlen:]
	if uint32(len(ct)) > rs {
		return nil, fmt.Errorf("more than one record (%d > rs %d)", len(ct), rs)
	}
	sk, err := ecdh.P256().NewPublicKey(senderPub)
	if err != nil {
		return nil, err
	}
	secret, err := b.key.ECDH(sk)
	if err != nil {
		return nil, err
	}
	info := append(append([]byte("WebPush: info\x00"), b.key.PublicKey().Bytes()...), senderPub...)
	ikm, err := hkdf.Key(sha256.New, secret, b.auth, string(info), 32)
	if err != nil {
		return nil, err
	}
	prk, err := hkdf.Extract(sha256.New, ikm, salt)
	if err != nil {
		return nil, err
	}
	cek, err := hkdf.Expand(sha256.New, prk, "Content-Encoding: aes128gcm\x00", 16)
	if err != nil {
		return nil, err
	}
	nonce, err := hkdf.Expand(sha256.New, prk, "Content-Encoding: nonce\x00", 12)
	if err != nil {
		return nil, err
	}
	block, err := aes.NewCipher(cek)
	if err != nil {
		return nil, err
	}
	gcm, err := cipher.NewGCM(block)
	if err != nil {
		return nil, err
	}
	plain, err := gcm.Open(nil, nonce, ct, nil)
	if err != nil {
		return nil, fmt.Errorf("AES-GCM: %w", err)
	}
	// The last record ends with the delimiter 2, then zero padding.
	end := bytes.TrimRight(plain, "\x00")
	if len(end) == 0 || end[len(end)-1] != 2 {
		return nil, errors.New("no last-record delimiter")
	}
	return end[:len(end)-1], nil
}

// Wait waits until the subscription has n pushes and returns them.
func (p *Service) Wait(b *Browser, n int, within time.Duration) []Push {
	p.t.Helper()
	deadline := time.NewTimer(within)
	defer deadline.Stop()
	for {
		p.mu.Lock()
		got := append([]Push(nil), p.received[b.id]...)
		p.mu.Unlock()
		if len(got) >= n {
			return got
		}
		select {
		case <-p.signal:
		case <-time.After(50 * time.Millisecond): // the signal is shared between subscriptions
		case <-deadline.C:
			p.t.Fatalf("subscription got %d pushes after %s, want %d", len(got), within, n)
		}
	}
}

// Pushes returns the pushes accepted so far.
func (p *Service) Pushes(b *Browser) []Push {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]Push(nil), p.received[b.id]...)
}

func elliptic256() elliptic.Curve { return elliptic.P256() }

// Total is the number of pushes accepted for all subscriptions.
func (p *Service) Total() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	n := 0
	for _, r := range p.received {
		n += len(r)
	}
	return n
}

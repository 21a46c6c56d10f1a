// Package dendritetest runs a real Matrix homeserver for tests: Dendrite
// (github.com/matrix-org/dendrite v0.13.8, Apache-2.0), built once by
// scripts/ensure-dendrite.sh into a cache outside the clone, started on a
// free loopback port with SQLite in a temporary folder, federation off and
// registration by shared secret only. Users are registered through the
// shared-secret admin endpoint and speak the client-server API.
package dendritetest

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha1"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// ServerName is the homeserver's name: user IDs are @name:localhost.
const ServerName = "localhost"

// Server is a Dendrite of a test's own.
type Server struct {
	URL    string
	secret string

	bin, dir, addr string
	// log is the homeserver's output, read only while it is not running
	// (its process writes it).
	log  bytes.Buffer
	stop func() // nil while not running
}

var (
	binOnce sync.Once
	binPath string
	binErr  error
)

// binary returns the Dendrite binary: $FMN_DENDRITE, or the one
// scripts/ensure-dendrite.sh builds (once per test binary).
func binary() (string, error) {
	binOnce.Do(func() {
		if p := os.Getenv("FMN_DENDRITE"); p != "" {
			binPath = p
			return
		}
		dir, err := os.Getwd()
		if err != nil {
			binErr = err
			return
		}
		for !fileExists(filepath.Join(dir, "go.mod")) {
			parent := filepath.Dir(dir)
			if parent == dir {
				binErr = fmt.Errorf("no go.mod above the test's folder")
				return
			}
			dir = parent
		}
		var out bytes.Buffer
		cmd := exec.Command(filepath.Join(dir, "scripts", "ensure-dendrite.sh"))
		cmd.Stdout, cmd.Stderr = &out, os.Stderr
		if err := cmd.Run(); err != nil {
			binErr = fmt.Errorf("scripts/ensure-dendrite.sh: %w", err)
			return
		}
		binPath = strings.TrimSpace(out.String())
	})
	return binPath, binErr
}

func fileExists(p string) bool { _, err := os.Stat(p); return err == nil }

// Start runs a Dendrite of the test's own until the test ends.
func Start(t testing.TB) *Server {
	t.Helper()
	s := New(t)
	s.Run(t)
	return s
}

// New prepares a Dendrite of the test's own (its configuration, its data
// folder, its loopback address: URL) without starting it; Run starts it.
func New(t testing.TB) *Server {
	t.Helper()
	bin, err := binary()
	if err != nil {
		t.Fatalf("Dendrite: %v", err)
	}
	dir := t.TempDir()
	seed := make([]byte, ed25519.SeedSize)
	_, _ = rand.Read(seed)
	key := pem.EncodeToMemory(&pem.Block{Type: "MATRIX PRIVATE KEY", Headers: map[string]string{"Key-ID": "ed25519:test"}, Bytes: seed})
	if err := os.WriteFile(filepath.Join(dir, "matrix_key.pem"), key, 0o600); err != nil {
		t.Fatal(err)
	}
	secret := hex.EncodeToString(seed[:16])
	db := func(name string) string { return "\n    connection_string: file:" + filepath.Join(dir, name+".db") }
	cfg := `version: 2
global:
  server_name: ` + ServerName + `
  private_key: ` + filepath.Join(dir, "matrix_key.pem") + `
  disable_federation: true
  trusted_third_party_id_servers: []
  jetstream:
    in_memory: true
    storage_path: ` + dir + `
  presence:
    enable_inbound: false
    enable_outbound: false
  report_stats:
    enabled: false
client_api:
  registration_disabled: true
  guests_disabled: true
  registration_shared_secret: "` + secret + `"
  rate_limiting:
    enabled: false
federation_api:
  database:` + db("federation") + `
key_server:
  database:` + db("keys") + `
media_api:
  base_path: ` + filepath.Join(dir, "media") + `
  database:` + db("media") + `
mscs:
  database:` + db("mscs") + `
relay_api:
  database:` + db("relay") + `
room_server:
  database:` + db("roomserver") + `
sync_api:
  database:` + db("syncapi") + `
  search:
    enabled: false
user_api:
  bcrypt_cost: 4
  account_database:` + db("userapi") + `
logging:
  - type: std
    level: warn
`
	if err := os.WriteFile(filepath.Join(dir, "dendrite.yaml"), []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	s := &Server{URL: "http://" + addr, secret: secret, bin: bin, dir: dir, addr: addr}
	t.Cleanup(func() {
		s.Stop()
		if t.Failed() {
			t.Logf("Dendrite log:\n%s", s.log.String())
		}
	})
	return s
}

// Run starts the homeserver (again, after Stop: on the same address and
// data) and waits until it answers.
func (s *Server) Run(t testing.TB) {
	t.Helper()
	cmd := exec.Command(s.bin, "--config", filepath.Join(s.dir, "dendrite.yaml"), "--http-bind-address", s.addr,
		"--https-bind-address", "")
	cmd.Dir = s.dir
	cmd.Stdout, cmd.Stderr = &s.log, &s.log
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() { _ = cmd.Wait(); close(done) }()
	s.stop = func() { _ = cmd.Process.Kill(); <-done }
	deadline := time.Now().Add(60 * time.Second)
	for {
		resp, err := http.Get(s.URL + "/_matrix/client/versions")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				return
			}
		}
		select {
		case <-done:
			s.stop = nil
			t.Fatalf("Dendrite exited at start:\n%s", s.log.String())
		default:
		}
		if time.Now().After(deadline) {
			s.Stop()
			t.Fatalf("Dendrite did not answer within 60 s:\n%s", s.log.String())
		}
		time.Sleep(100 * time.Millisecond) // polling a starting server with a deadline
	}
}

// Stop kills the homeserver, as a crash or a host going down does; Run
// starts it again.
func (s *Server) Stop() {
	if s.stop != nil {
		s.stop()
		s.stop = nil
	}
}

// User is a registered account with its access token.
type User struct {
	ID, Token string
	s         *Server
	since     string
}

// Register makes the account name (and password) through the shared-secret
// admin endpoint, as an operator's tool does.
func (s *Server) Register(t testing.TB, name, password string) *User {
	t.Helper()
	var nonce struct {
		Nonce string `json:"nonce"`
	}
	if err := s.do(context.Background(), "GET", "/_synapse/admin/v1/register", "", nil, &nonce); err != nil {
		t.Fatal(err)
	}
	mac := hmac.New(sha1.New, []byte(s.secret))
	mac.Write([]byte(nonce.Nonce + "\x00" + name + "\x00" + password + "\x00notadmin"))
	var out struct {
		UserID      string `json:"user_id"`
		AccessToken string `json:"access_token"`
	}
	if err := s.do(context.Background(), "POST", "/_synapse/admin/v1/register", "", map[string]any{
		"nonce": nonce.Nonce, "username": name, "password": password, "admin": false, "mac": hex.EncodeToString(mac.Sum(nil)),
	}, &out); err != nil {
		t.Fatalf("register %s: %v", name, err)
	}
	if out.AccessToken == "" {
		// Some servers return no token here: log in.
		if err := s.do(context.Background(), "POST", "/_matrix/client/v3/login", "", map[string]any{
			"type": "m.login.password", "identifier": map[string]string{"type": "m.id.user", "user": name}, "password": password,
		}, &out); err != nil {
			t.Fatal(err)
		}
	}
	return &User{ID: out.UserID, Token: out.AccessToken, s: s}
}

func (s *Server) do(ctx context.Context, method, path, token string, in, out any) error {
	var body io.Reader
	if in != nil {
		b, _ := json.Marshal(in)
		body = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, s.URL+path, body)
	if err != nil {
		return err
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 200 {
		return fmt.Errorf("%s %s: %d %s", method, path, resp.StatusCode, raw)
	}
	if out != nil {
		return json.Unmarshal(raw, out)
	}
	return nil
}

// Event is a room message a user saw.
type Event struct {
	Room, Sender, ID, Body, FormattedBody, TxnID string
}

// Sync reads what happened since the last Sync: it joins the rooms the
// user is invited to and returns the m.room.message events of joined
// rooms.
func (u *User) Sync(t testing.TB, timeout time.Duration) []Event {
	t.Helper()
	// A large timeline limit: a test counts every message, and a
	// limited timeline would skip some.
	q := url.Values{"timeout": {fmt.Sprint(timeout.Milliseconds())}, "filter": {`{"room":{"timeline":{"limit":1000}}}`}}
	if u.since != "" {
		q.Set("since", u.since)
	}
	var r struct {
		NextBatch string `json:"next_batch"`
		Rooms     struct {
			Join map[string]struct {
				Timeline struct {
					Events []struct {
						Type     string `json:"type"`
						Sender   string `json:"sender"`
						EventID  string `json:"event_id"`
						Unsigned struct {
							TxnID string `json:"transaction_id"`
						} `json:"unsigned"`
						Content struct {
							Body          string `json:"body"`
							FormattedBody string `json:"formatted_body"`
						} `json:"content"`
					} `json:"events"`
				} `json:"timeline"`
			} `json:"join"`
			Invite map[string]json.RawMessage `json:"invite"`
		} `json:"rooms"`
	}
	ctx, cancel := context.WithTimeout(context.Background(), timeout+30*time.Second)
	defer cancel()
	if err := u.s.do(ctx, "GET", "/_matrix/client/v3/sync?"+q.Encode(), u.Token, nil, &r); err != nil {
		t.Fatal(err)
	}
	u.since = r.NextBatch
	for room := range r.Rooms.Invite {
		if err := u.s.do(ctx, "POST", "/_matrix/client/v3/rooms/"+url.PathEscape(room)+"/join", u.Token, map[string]any{}, nil); err != nil {
			t.Fatal(err)
		}
	}
	var out []Event
	for room, j := range r.Rooms.Join {
		for _, e := range j.Timeline.Events {
			if e.Type == "m.room.message" {
				out = append(out, Event{Room: room, Sender: e.Sender, ID: e.EventID, Body: e.Content.Body,
					FormattedBody: e.Content.FormattedBody, TxnID: e.Unsigned.TxnID})
			}
		}
	}
	return out
}

// Say sends a plain message to room.
func (u *User) Say(t testing.TB, room, text string) {
	t.Helper()
	txn := fmt.Sprintf("t%d", time.Now().UnixNano())
	if err := u.s.do(context.Background(), "PUT", "/_matrix/client/v3/rooms/"+url.PathEscape(room)+"/send/m.room.message/"+txn,
		u.Token, map[string]string{"msgtype": "m.text", "body": text}, nil); err != nil {
		t.Fatal(err)
	}
}

// Leave leaves room.
func (u *User) Leave(t testing.TB, room string) {
	t.Helper()
	if err := u.s.do(context.Background(), "POST", "/_matrix/client/v3/rooms/"+url.PathEscape(room)+"/leave", u.Token, map[string]any{}, nil); err != nil {
		t.Fatal(err)
	}
}

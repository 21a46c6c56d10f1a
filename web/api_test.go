package web

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/riverqueue/river"
	"github.com/riverqueue/river/riverdriver/riverpgxv5"

	"fmn/metrics"
	"fmn/store"
	"fmn/store/storetest"
)

type apiFixture struct {
	st  *store.Store
	srv *httptest.Server
}

// newAPIFixture serves the API on a fresh database with an insert-only job
// client (confirmation jobs are stored, not worked).
func newAPIFixture(t *testing.T) *apiFixture {
	t.Helper()
	st := storetest.New(t)
	jobs, err := river.NewClient(riverpgxv5.New(st.Pool), &river.Config{})
	if err != nil {
		t.Fatal(err)
	}
	ws, err := New(Deps{Store: st, Jobs: jobs, Metrics: metrics.New(), BaseURL: "http://fmn.test",
		Log: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(ws.Handler())
	t.Cleanup(srv.Close)
	return &apiFixture{st: st, srv: srv}
}

func (f *apiFixture) token(t *testing.T, name string) string {
	t.Helper()
	u, err := f.st.EnsureUser(context.Background(), name, "")
	if err != nil {
		t.Fatal(err)
	}
	tok, err := f.st.CreateToken(context.Background(), u.ID, "test")
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

func (f *apiFixture) do(t *testing.T, token, method, path, body string) (int, map[string]any, []byte) {
	t.Helper()
	req, _ := http.NewRequest(method, f.srv.URL+path, strings.NewReader(body))
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	var m map[string]any
	json.Unmarshal(raw, &m)
	return resp.StatusCode, m, raw
}

func TestAPIRequiresToken(t *testing.T) {
	t.Parallel()
	f := newAPIFixture(t)
	for _, tok := range []string{"", "fmn_not-a-real-token"} {
		st, body, _ := f.do(t, tok, "GET", "/api/v1/me", "")
		if st != 401 || body["error"] == nil {
			t.Errorf("token %q: %d %v", tok, st, body)
		}
	}
}

// Bad input gets a 400 naming the field, and changes nothing.
func TestAPIBadInput(t *testing.T) {
	t.Parallel()
	f := newAPIFixture(t)
	tok := f.token(t, "alice")
	cases := []struct {
		method, path, body, field string
	}{
		{"POST", "/api/v1/destinations", `{"kind":"email","address":"a@example.org\r\nBcc: x@example.org"}`, "address"},
		{"POST", "/api/v1/destinations", `{"kind":"email","address":"no-domain"}`, "address"},
		{"POST", "/api/v1/destinations", `{"kind":"email","address":"` + strings.Repeat("a", 250) + `@example.org"}`, "address"},
		{"POST", "/api/v1/destinations", `{"kind":"email","address":"Alice <a@example.org>"}`, "address"},
		{"POST", "/api/v1/destinations", `{"kind":"pigeon","address":"a@example.org"}`, "kind"},
		{"POST", "/api/v1/destinations", `{"kind":"email","address":"a@example.org","extra":1}`, "extra"},
		{"POST", "/api/v1/rules", `{"name":"x","track":{"topics":"one"}}`, "track.topics"},
		{"POST", "/api/v1/rules", `{"name":"","track":{"mine":true}}`, "name"},
		{"POST", "/api/v1/rules", `{"name":"x"}`, "track"},
		{"POST", "/api/v1/rules", `{"name":"x","track":{"packages":["has space"]}}`, "track.packages"},
		{"POST", "/api/v1/rules", `{"name":"x","track":{"mine":true},"destinations":[999]}`, "destinations"},
		{"POST", "/api/v1/rules", `{"name":"x","track":{"mine":true}`, ""},
		{"GET", "/api/v1/messages?limit=0", ``, "limit"},
	}
	for _, c := range cases {
		st, body, raw := f.do(t, tok, c.method, c.path, c.body)
		if st != 400 || body["field"] != nilIfEmpty(c.field) || body["error"] == "" {
			t.Errorf("%s %s %s: %d %s", c.method, c.path, c.body, st, raw)
		}
	}
	for _, p := range []string{"/api/v1/destinations", "/api/v1/rules"} {
		if _, _, raw := f.do(t, tok, "GET", p, ""); string(bytes.TrimSpace(raw)) != "[]" {
			t.Errorf("%s after bad input: %s", p, raw)
		}
	}
}

func nilIfEmpty(s string) any {
	if s == "" {
		return nil
	}
	return s
}

// Another user's objects are invisible: 404, never 403, so ids leak nothing.
func TestAPIOtherUsersObjects(t *testing.T) {
	t.Parallel()
	f := newAPIFixture(t)
	alice, bob := f.token(t, "alice"), f.token(t, "bob")
	st, dest, raw := f.do(t, alice, "POST", "/api/v1/destinations", `{"kind":"email","address":"alice@example.org"}`)
	if st != 201 {
		t.Fatalf("create destination: %d %s", st, raw)
	}
	did := int64(dest["id"].(float64))
	st, rule, raw := f.do(t, alice, "POST", "/api/v1/rules", `{"name":"mine","track":{"mine":true},"destinations":[`+itoa(did)+`]}`)
	if st != 201 {
		t.Fatalf("create rule: %d %s", st, raw)
	}
	rid := itoa(int64(rule["id"].(float64)))
	for _, c := range []struct{ method, path, body string }{
		{"GET", "/api/v1/rules/" + rid, ""},
		{"PUT", "/api/v1/rules/" + rid, `{"name":"stolen","track":{"mine":true}}`},
		{"DELETE", "/api/v1/rules/" + rid, ""},
		{"PATCH", "/api/v1/destinations/" + itoa(did), `{"enabled":false}`},
		{"POST", "/api/v1/destinations/" + itoa(did) + "/confirm", `{"code":"whatever-whatever"}`},
	} {
		st, _, raw := f.do(t, bob, c.method, c.path, c.body)
		if st != 404 && !(st == 400 && strings.Contains(c.path, "confirm")) {
			t.Errorf("bob %s %s: %d %s", c.method, c.path, st, raw)
		}
	}
	// Bob cannot attach alice's destination to a rule of his own.
	if st, body, _ := f.do(t, bob, "POST", "/api/v1/rules", `{"name":"x","track":{"mine":true},"destinations":[`+itoa(did)+`]}`); st != 400 || body["field"] != "destinations" {
		t.Errorf("bob using alice's destination: %d %v", st, body)
	}
	// Alice's rule is untouched.
	if st, got, _ := f.do(t, alice, "GET", "/api/v1/rules/"+rid, ""); st != 200 || got["name"] != "mine" {
		t.Errorf("alice's rule after bob's attempts: %d %v", st, got)
	}
}

func TestAPIRuleLifecycle(t *testing.T) {
	t.Parallel()
	f := newAPIFixture(t)
	tok := f.token(t, "alice")
	st, rule, raw := f.do(t, tok, "POST", "/api/v1/rules", `{"name":" bodhi ","track":{"topics":["org.fedoraproject.*.bodhi.*"]},"filters":{"not_my_actions":true}}`)
	if st != 201 || rule["name"] != "bodhi" || rule["enabled"] != true {
		t.Fatalf("create: %d %s", st, raw)
	}
	id := itoa(int64(rule["id"].(float64)))
	if st, got, raw := f.do(t, tok, "PUT", "/api/v1/rules/"+id, `{"name":"b2","enabled":false,"track":{"apps":["bodhi"]}}`); st != 200 || got["enabled"] != false || got["name"] != "b2" {
		t.Fatalf("put: %d %s", st, raw)
	}
	if st, _, _ := f.do(t, tok, "DELETE", "/api/v1/rules/"+id, ""); st != 204 {
		t.Fatalf("delete: %d", st)
	}
	if st, _, _ := f.do(t, tok, "GET", "/api/v1/rules/"+id, ""); st != 404 {
		t.Fatalf("get deleted: %d", st)
	}
}

// Creating a destination queues its confirmation in the same transaction.
func TestAPIDestinationQueuesConfirmation(t *testing.T) {
	t.Parallel()
	f := newAPIFixture(t)
	tok := f.token(t, "alice")
	if st, _, raw := f.do(t, tok, "POST", "/api/v1/destinations", `{"kind":"email","address":"alice@example.org"}`); st != 201 {
		t.Fatalf("%d %s", st, raw)
	}
	if st, body, _ := f.do(t, tok, "POST", "/api/v1/destinations", `{"kind":"email","address":"alice@example.org"}`); st != 400 || body["field"] != "address" {
		t.Fatalf("duplicate destination: %d %v", st, body)
	}
	var kinds []string
	err := f.st.InTx(context.Background(), func(tx pgx.Tx) error {
		rows, err := tx.Query(context.Background(), `SELECT kind || ' on ' || queue FROM river_job`)
		if err != nil {
			return err
		}
		kinds, err = pgx.CollectRows(rows, pgx.RowTo[string])
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(kinds) != 1 || kinds[0] != "confirm on email" {
		t.Fatalf("queued jobs: %v", kinds)
	}
}

func itoa(n int64) string { b, _ := json.Marshal(n); return string(b) }

package web

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
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

// TestFinding4Limits: an account's rules, a rule's patterns and an
// account's destinations are bounded (defaults 100, 300, 20); past a
// limit the API answers 400 naming the field, and nothing changes. Before,
// a script could add any number of maximal rules (1,000 cost the consumer
// 41 ms per message).
func TestFinding4Limits(t *testing.T) {
	t.Parallel()
	f := newAPIFixture(t)
	tok := f.token(t, "alice")
	for i := range 100 {
		if st, _, raw := f.do(t, tok, "POST", "/api/v1/rules", fmt.Sprintf(`{"name":"r%d","track":{"packages":["p%d"]}}`, i, i)); st != 201 {
			t.Fatalf("rule %d: %d %s", i+1, st, raw)
		}
	}
	st, body, raw := f.do(t, tok, "POST", "/api/v1/rules", `{"name":"one too many","track":{"mine":true}}`)
	if st != 400 || body["field"] != "rules" || !strings.Contains(fmt.Sprint(body["error"]), "100 rules") {
		t.Errorf("rule 101: %d %s", st, raw)
	}
	_, _, raw = f.do(t, tok, "GET", "/api/v1/rules", "")
	var rs []map[string]any
	if err := json.Unmarshal(raw, &rs); err != nil || len(rs) != 100 {
		t.Errorf("rules after the refusal: %d (%v)", len(rs), err)
	}
	// Replacing a rule stays possible at the limit.
	if st, _, raw := f.do(t, tok, "PUT", fmt.Sprintf("/api/v1/rules/%v", rs[0]["id"]), `{"name":"renamed","track":{"mine":true}}`); st != 200 {
		t.Errorf("replace at the limit: %d %s", st, raw)
	}

	// Patterns: 200 users and 101 packages pass each list's own limit but
	// not the rule's, and the error names the list where it tipped over.
	bob := f.token(t, "bob")
	users, pkgs := make([]string, 200), make([]string, 101)
	for i := range users {
		users[i] = fmt.Sprintf("u%d", i)
	}
	for i := range pkgs {
		pkgs[i] = fmt.Sprintf("p%d", i)
	}
	big, _ := json.Marshal(map[string]any{"name": "big", "track": map[string]any{"users": users, "packages": pkgs}})
	for _, path := range []string{"/api/v1/rules", "/api/v1/rules/preview"} {
		st, body, raw := f.do(t, bob, "POST", path, string(big))
		if st != 400 || body["field"] != "track.packages" || !strings.Contains(fmt.Sprint(body["error"]), "at most 300 patterns") {
			t.Errorf("POST %s with 301 patterns: %d %s", path, st, raw)
		}
	}

	// Destinations: 20 stored, the 21st refused (before its confirmation is
	// queued: nothing is mailed).
	carol := f.token(t, "carol")
	u, _ := f.st.EnsureUser(context.Background(), "carol", "")
	err := f.st.InTx(context.Background(), func(tx pgx.Tx) error {
		for i := range 20 {
			if _, err := store.CreateDestination(context.Background(), tx, u.ID, "email", fmt.Sprintf("c%d@example.org", i)); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	st, body, raw = f.do(t, carol, "POST", "/api/v1/destinations", `{"kind":"email","address":"c20@example.org"}`)
	if st != 400 || body["field"] != "destinations" || !strings.Contains(fmt.Sprint(body["error"]), "20 destinations") {
		t.Errorf("destination 21: %d %s", st, raw)
	}
	var jobs int
	f.st.Pool.QueryRow(context.Background(), `SELECT count(*) FROM river_job`).Scan(&jobs)
	if jobs != 0 {
		t.Errorf("%d jobs queued by refused requests", jobs)
	}
}

// The limits come from the settings (FMN_MAX_*), not only the defaults.
func TestLimitsFromSettings(t *testing.T) {
	t.Parallel()
	st := storetest.New(t)
	jobs, err := river.NewClient(riverpgxv5.New(st.Pool), &river.Config{})
	if err != nil {
		t.Fatal(err)
	}
	ws, err := New(Deps{Store: st, Jobs: jobs, Metrics: metrics.New(), BaseURL: "http://fmn.test",
		Log: slog.New(slog.NewTextHandler(io.Discard, nil)), Limits: Limits{RulesPerUser: 2, PatternsPerRule: 3, DestinationsPerUser: 1}})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(ws.Handler())
	t.Cleanup(srv.Close)
	f := &apiFixture{st: st, srv: srv}
	tok := f.token(t, "alice")
	steps := []struct {
		path, body string
		status     int
		field      string
	}{
		{"/api/v1/rules", `{"name":"a","track":{"users":["x","y","z"]}}`, 201, ""},
		{"/api/v1/rules", `{"name":"b","track":{"users":["x","y"]},"filters":{"apps_exclude":["k","l"]}}`, 400, "filters.apps_exclude"},
		{"/api/v1/rules", `{"name":"b","track":{"mine":true}}`, 201, ""},
		{"/api/v1/rules", `{"name":"c","track":{"mine":true}}`, 400, "rules"},
		{"/api/v1/destinations", `{"kind":"email","address":"a@example.org"}`, 201, ""},
		{"/api/v1/destinations", `{"kind":"email","address":"b@example.org"}`, 400, "destinations"},
	}
	for _, s := range steps {
		st, body, raw := f.do(t, tok, "POST", s.path, s.body)
		if st != s.status || (s.field != "" && body["field"] != s.field) {
			t.Errorf("POST %s %s: %d %s, want %d %s", s.path, s.body, st, raw, s.status, s.field)
		}
	}
}

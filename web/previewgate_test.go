package web

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"fmn/store"
)

// fillMessages stores n synthetic messages received in the last day (50
// apps, 1,000 users, 3,000 packages), straight in SQL. The table's plain
// indexes (GIN and trigram ones are slow to fill row by row) are dropped
// first and built again after, from their own definitions.
func fillMessages(t testing.TB, st *store.Store, n int) {
	t.Helper()
	ctx := context.Background()
	rows, err := st.Pool.Query(ctx, `SELECT indexname, replace(indexdef, ' ON ONLY ', ' ON ') FROM pg_indexes
		WHERE schemaname = current_schema() AND tablename = 'messages'
		  AND indexname NOT IN (SELECT conname FROM pg_constraint WHERE conrelid = 'messages'::regclass)`)
	if err != nil {
		t.Fatal(err)
	}
	type index struct{ Name, Def string }
	idx, err := pgx.CollectRows(rows, pgx.RowToStructByPos[index])
	if err != nil {
		t.Fatal(err)
	}
	for _, i := range idx {
		if _, err := st.Pool.Exec(ctx, `DROP INDEX `+pgx.Identifier{i.Name}.Sanitize()); err != nil {
			t.Fatal(err)
		}
	}
	_, err = st.Pool.Exec(ctx, `
		INSERT INTO messages (msg_id, topic, app, agent, usernames, packages, summary, received_at, envelope)
		SELECT 'gen-' || g, 'org.fedoraproject.prod.app' || (g % 50) || '.thing.event' || (g % 7), 'app' || (g % 50),
			'user' || (g % 1000), ARRAY['user' || (g % 1000)], ARRAY['pkg' || (g % 3000)], 'synthetic message ' || g,
			now() - make_interval(secs => g % 86400), '{}'::jsonb
		FROM generate_series(1, $1::int) g`, n)
	if err != nil {
		t.Fatalf("fill messages: %v", err)
	}
	for _, i := range idx {
		if _, err := st.Pool.Exec(ctx, `SET maintenance_work_mem = '256MB'; `+i.Def); err != nil {
			t.Fatalf("rebuild %s: %v", i.Name, err)
		}
	}
	if _, err := st.Pool.Exec(ctx, `ANALYZE messages`); err != nil {
		t.Fatal(err)
	}
}

// heavyRule is the review's rule: it tracks every topic and excludes 200
// patterns that match nothing, so every message of the window is tested
// against all 200.
func heavyRule() string {
	ex := make([]string, 200)
	for i := range ex {
		ex[i] = fmt.Sprintf("*.nomatch%03d.*", i)
	}
	b, _ := json.Marshal(map[string]any{"name": "heavy", "track": map[string]any{"topics": []string{"org.*"}},
		"filters": map[string]any{"topics_exclude": ex}})
	return string(b)
}

// TestFinding2PreviewsStayInTheirBudget: one user's flood of heavy previews
// runs one at a time, on the previews' own small pool (application_name
// "fmn preview"), so it holds none of the connections everyone else needs,
// and another user's requests and previews go through meanwhile. Before,
// every preview took a connection of the shared pool: six parallel previews
// of such a rule held it for seconds and another user's GET /api/v1/me took
// 5–12 s instead of 3 ms.
func TestFinding2PreviewsStayInTheirBudget(t *testing.T) {
	t.Parallel()
	f := newAPIFixture(t)
	fillMessages(t, f.st, 20000)
	flooder, other := f.token(t, "flooder"), f.token(t, "other")
	rule := heavyRule()

	// Watch the database: how many of the flooder's previews (the only ones
	// excluding topics) run at once, and on which pool.
	done := make(chan struct{})
	type sample struct {
		active int
		apps   []string
	}
	var peak sample
	var watched sync.WaitGroup
	watched.Add(1)
	go func() {
		defer watched.Done()
		for {
			select {
			case <-done:
				return
			default:
			}
			rows, err := f.st.Pool.Query(context.Background(), `SELECT application_name FROM pg_stat_activity
				WHERE datname = current_database() AND state = 'active' AND query LIKE '%FROM messages m WHERE%NOT (m.topic LIKE ANY%' AND pid <> pg_backend_pid()`)
			if err != nil {
				continue
			}
			var s sample
			for rows.Next() {
				var app string
				rows.Scan(&app)
				s.active++
				s.apps = append(s.apps, app)
			}
			rows.Close()
			if s.active > peak.active || (s.active > 0 && peak.apps == nil) {
				peak = s
			}
			time.Sleep(5 * time.Millisecond)
		}
	}()

	var wg sync.WaitGroup
	statuses := make([]int, 6)
	for i := range statuses {
		wg.Add(1)
		go func() {
			defer wg.Done()
			statuses[i], _, _ = f.do(t, flooder, "POST", "/api/v1/rules/preview", rule)
		}()
	}
	// Meanwhile another user is served, previews included.
	if st, _, raw := f.do(t, other, "GET", "/api/v1/me", ""); st != 200 {
		t.Errorf("another user's /me during the flood: %d %s", st, raw)
	}
	if st, _, raw := f.do(t, other, "POST", "/api/v1/rules/preview", `{"track":{"packages":["pkg7"]}}`); st != 200 {
		t.Errorf("another user's preview during the flood: %d %s", st, raw)
	}
	wg.Wait()
	close(done)
	watched.Wait()
	for i, st := range statuses {
		if st != 200 && st != 400 && st != http.StatusTooManyRequests {
			t.Errorf("flood preview %d: %d", i, st)
		}
	}
	if peak.active == 0 {
		t.Fatal("no preview was seen running: the data is too small to test anything")
	}
	if peak.active > 1 {
		t.Errorf("one user had %d previews running at once, want 1", peak.active)
	}
	for _, app := range peak.apps {
		if app != "fmn preview" {
			t.Errorf("a preview ran on a connection of application %q, not the previews' own pool", app)
		}
	}
}

// TestFinding2PreviewRate: a user's previews are rate limited (a burst,
// then one a second); past it the API answers 429, and other users are
// not affected.
func TestFinding2PreviewRate(t *testing.T) {
	t.Parallel()
	f := newAPIFixture(t)
	a, b := f.token(t, "a"), f.token(t, "b")
	limited := 0
	for range previewBurst + 5 {
		st, _, raw := f.do(t, a, "POST", "/api/v1/rules/preview", `{"track":{"mine":true}}`)
		switch st {
		case 200:
		case http.StatusTooManyRequests:
			limited++
		default:
			t.Fatalf("preview: %d %s", st, raw)
		}
	}
	if limited == 0 {
		t.Errorf("%d previews in a row were all served", previewBurst+5)
	}
	if st, _, raw := f.do(t, b, "POST", "/api/v1/rules/preview", `{"track":{"mine":true}}`); st != 200 {
		t.Errorf("another user's preview: %d %s", st, raw)
	}
}

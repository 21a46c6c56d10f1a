package web

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"

	"fmn/metrics"
	"fmn/rules/meta"
	"fmn/store"
	"fmn/store/storetest"
)

func TestPreviewAPI(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	st := storetest.New(t)
	u, err := st.EnsureUser(ctx, "alice", "")
	if err != nil {
		t.Fatal(err)
	}
	tok, err := st.CreateToken(ctx, u.ID, "test")
	if err != nil {
		t.Fatal(err)
	}
	msgs := []store.NewMessage{
		{MsgID: "1", Envelope: []byte(`{}`), Meta: meta.Metadata{Topic: "org.fedoraproject.prod.bodhi.update.comment", App: "bodhi", Agent: "bob",
			Usernames: []string{"alice", "bob"}, Packages: []string{"kernel"}, Summary: "bob commented on kernel"}},
		{MsgID: "2", Envelope: []byte(`{}`), Meta: meta.Metadata{Topic: "org.fedoraproject.prod.buildsys.build.state.change", App: "koji", Agent: "alice",
			Usernames: []string{"alice"}, Packages: []string{"python-requests"}, Summary: "alice built python-requests"}},
		{MsgID: "3", Envelope: []byte(`{}`), Meta: meta.Metadata{Topic: "org.fedoraproject.prod.git.receive", App: "dist-git", Agent: "carol",
			Usernames: []string{"carol"}, Packages: []string{"gcc"}, Summary: "carol pushed to gcc"}},
	}
	if err := st.InTx(ctx, func(tx pgx.Tx) error { _, err := store.InsertMessages(ctx, tx, msgs); return err }); err != nil {
		t.Fatal(err)
	}
	s, err := New(Deps{Store: st, Metrics: metrics.New(), Log: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(s.Handler())
	defer srv.Close()

	post := func(query, body string) (int, map[string]any) {
		t.Helper()
		req, _ := http.NewRequest("POST", srv.URL+"/api/v1/rules/preview"+query, strings.NewReader(body))
		req.Header.Set("Authorization", "Bearer "+tok)
		req.Header.Set("Content-Type", "application/json")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var out map[string]any
		if err := json.NewDecoder(resp.Body).Decode(&out); err != nil {
			t.Fatal(err)
		}
		return resp.StatusCode, out
	}
	summaries := func(out map[string]any) []string {
		var ss []string
		for _, m := range out["messages"].([]any) {
			ss = append(ss, m.(map[string]any)["summary"].(string))
		}
		return ss
	}

	code, out := post("", `{"track":{"mine":true},"filters":{"not_my_actions":true}}`)
	if code != 200 || out["count"] != float64(1) || out["days"] != float64(7) || strings.Join(summaries(out), "|") != "bob commented on kernel" {
		t.Fatalf("mine, not my actions: %d %v", code, out)
	}
	code, out = post("?days=30", `{"name":"x","track":{"packages":["python-*","gcc"]},"filters":{"apps_exclude":["koji"]}}`)
	if code != 200 || out["count"] != float64(1) || strings.Join(summaries(out), "|") != "carol pushed to gcc" {
		t.Fatalf("packages: %d %v", code, out)
	}
	code, out = post("", `{"track":{"topics":["org.fedoraproject.*"]}}`)
	if code != 200 || out["count"] != float64(3) || len(summaries(out)) != 3 || summaries(out)[0] != "carol pushed to gcc" {
		t.Fatalf("everything, newest first: %d %v", code, out)
	}
	code, out = post("", `{"track":{"apps":["nothing"]}}`)
	if code != 200 || out["count"] != float64(0) || len(out["messages"].([]any)) != 0 {
		t.Fatalf("no match: %d %v", code, out)
	}
	for _, c := range []struct{ query, body, field string }{
		{"?days=0", `{"track":{"mine":true}}`, "days"},
		{"?days=abc", `{"track":{"mine":true}}`, "days"},
		{"", `{"track":{}}`, "track"},
		{"", `{"track":{"mine":true},"filters":{"severity_at_least":"loud"}}`, "filters.severity_at_least"},
		{"", `{"track":{"mine":true},"extra":1}`, "extra"},
	} {
		code, out := post(c.query, c.body)
		if code != 400 || out["field"] != c.field {
			t.Errorf("%s %s: %d %v, want 400 on %s", c.query, c.body, code, out, c.field)
		}
	}
}

package web

import (
	"context"
	"encoding/json"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"

	"fmn/rules/meta"
	"fmn/store"
)

// TestEditorOwnership: without any JavaScript, the editor offers every
// kind in words — "Packages I maintain (2)" with the resolved list, the
// user's groups, these groups', these people's, what they did, typed
// artifacts — saves them, refuses a pattern where a name belongs beside
// its field, and the preview API resolves what the user maintains.
func TestEditorOwnership(t *testing.T) {
	t.Parallel()
	s := newSite(t, AuthConfig{}, "")
	c := s.signIn("alice@example.org")
	ctx := context.Background()
	for _, q := range []string{
		`INSERT INTO distgit_principals (kind, name, fetched_at) VALUES ('user', 'alice', now())`,
		`INSERT INTO distgit_access VALUES ('rpms', 'python-foo', 'user', 'alice', 'owner'), ('container', 'fedora-toolbox', 'user', 'alice', 'commit')`,
		`INSERT INTO group_members (user_name, group_name, source) VALUES ('alice', 'python-sig', 'bus')`,
	} {
		if _, err := s.st.Pool.Exec(ctx, q); err != nil {
			t.Fatal(err)
		}
	}
	b := body(t, s.get(c, "/rules/new?preset=mine"))
	for _, want := range []string{
		`id="track.owned" name="track.owned" type="checkbox" value="on" checked`, // the preset follows what I maintain
		`Packages I maintain <span class="count" id="owned-count">(2)</span>`,
		`<details id="owned-list">`, `python-foo`, `<span class="muted">container/</span>fedora-toolbox`,
		`Packages my groups maintain`, `(python-sig)`,
		`Packages these groups maintain`, `Packages these people maintain`, `Things these people did`,
		`id="track.containers"`, `id="track.modules"`, `id="track.flatpaks"`,
	} {
		if !strings.Contains(b, want) {
			t.Fatalf("editor lacks %q:\n%s", want, b)
		}
	}

	// A pattern where names belong: refused beside the field, nothing saved.
	resp := s.postForm(c, "/rules", url.Values{"name": {"x"}, "track.owned_by": {"bo*"}})
	if b := body(t, resp); resp.StatusCode != 400 || !strings.Contains(b, `id="track.owned_by-error"`) {
		t.Fatalf("owned_by pattern: %d\n%s", resp.StatusCode, b)
	}
	resp = s.postForm(c, "/rules", url.Values{"name": {"everything mine"}, "track.owned": {"on"}, "track.my_groups": {"on"},
		"track.groups": {"kde-sig, python-sig"}, "track.owned_by": {"bob"}, "track.agents": {"carol"},
		"track.containers": {"fedora-toolbox"}, "track.modules": {"nodejs"}, "track.flatpaks": {"org.gnome.Maps"}})
	if resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("save: %d %s", resp.StatusCode, body(t, resp))
	}
	var rs []struct {
		ID    int64
		Track map[string]any
	}
	if err := json.NewDecoder(s.get(c, "/api/v1/rules").Body).Decode(&rs); err != nil || len(rs) != 1 {
		t.Fatalf("rules: %v %v", rs, err)
	}
	tr, _ := json.Marshal(rs[0].Track)
	for _, want := range []string{`"owned":true`, `"my_groups":true`, `"groups":["kde-sig","python-sig"]`, `"owned_by":["bob"]`,
		`"agents":["carol"]`, `"containers":["fedora-toolbox"]`, `"modules":["nodejs"]`, `"flatpaks":["org.gnome.Maps"]`} {
		if !strings.Contains(string(tr), want) {
			t.Fatalf("saved track %s lacks %s", tr, want)
		}
	}
	if b := body(t, s.get(c, "/rules")); !strings.Contains(b, "what I maintain") || !strings.Contains(b, "what these people did: carol") {
		t.Fatalf("rules list does not say what the rule follows:\n%s", b)
	}
	// The edit form shows the saved kinds again.
	if b := body(t, s.get(c, "/rules/"+strconv.FormatInt(rs[0].ID, 10))); !strings.Contains(b, `value="kde-sig, python-sig"`) || !strings.Contains(b, `<details class="more" id="more-artifacts" open>`) {
		t.Fatalf("edit form:\n%s", b)
	}

	// The preview resolves "owned" and "my_groups" on the server.
	err := s.st.InTx(ctx, func(tx pgx.Tx) error {
		_, err := store.InsertMessages(ctx, tx, []store.NewMessage{
			{MsgID: "m1", Envelope: []byte(`{}`), Meta: meta.Extract("org.fedoraproject.prod.git.receive",
				map[string]any{"commit": map[string]any{"repo": "python-foo", "username": "zed", "namespace": "rpms"}}, "")},
			{MsgID: "m2", Envelope: []byte(`{}`), Meta: meta.Extract("org.fedoraproject.prod.git.receive",
				map[string]any{"commit": map[string]any{"repo": "gcc", "username": "zed", "namespace": "rpms"}}, "")},
		})
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	req, _ := http.NewRequest("POST", s.srv.URL+"/api/v1/rules/preview", strings.NewReader(`{"track":{"owned":true}}`))
	req.Header.Set("Content-Type", "application/json")
	presp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	var p struct{ Count int }
	if err := json.NewDecoder(presp.Body).Decode(&p); err != nil || presp.StatusCode != 200 || p.Count != 1 {
		t.Fatalf("preview of owned: %d %+v %v", presp.StatusCode, p, err)
	}
}

package web

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"

	"fmn/rules"
	"fmn/rules/meta"
	"fmn/store"
)

// TestEditorShowsEveryFilter (issue 14, finding 3): a rule made through
// the API with filters.apps and severity_at_least shows both in the
// editor, and saving the editor unchanged keeps them.
func TestEditorShowsEveryFilter(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s := newSite(t, AuthConfig{}, "")
	c := s.signIn("ora@example.org")
	var uid int64
	s.st.Pool.QueryRow(ctx, `SELECT id FROM users`).Scan(&uid)
	tok, _ := s.st.CreateToken(ctx, uid, "script")
	st, b := s.apiCall("POST", "/api/v1/rules", tok,
		`{"name":"bodhi news","track":{"packages":["python-foo"]},"filters":{"apps":["bodhi"],"severity_at_least":"warning"}}`)
	if st != 201 {
		t.Fatalf("create: %d %s", st, b)
	}
	var made rules.Rule
	json.Unmarshal([]byte(b), &made)
	page := body(t, s.get(c, fmt.Sprintf("/rules/%d", made.ID)))
	for _, want := range []string{`id="filters.apps" name="filters.apps" type="text" value="bodhi"`, `<option value="warning" selected>warning</option>`} {
		if !strings.Contains(page, want) {
			t.Fatalf("editor lacks %q:\n%s", want, page)
		}
	}
	// Post the form back as the editor shows it.
	form := editorValues(t, page)
	if resp := s.postForm(c, fmt.Sprintf("/rules/%d", made.ID), form); resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("save unchanged: %d %s", resp.StatusCode, body(t, resp))
	}
	got, err := s.st.GetRule(ctx, uid, made.ID)
	if err != nil {
		t.Fatal(err)
	}
	if fmt.Sprint(got.Filters.Apps) != "[bodhi]" || got.Filters.SeverityAtLeast != "warning" || fmt.Sprint(got.Track.Packages) != "[python-foo]" {
		t.Fatalf("after saving the editor unchanged: %+v", got)
	}
	// And a bad severity is refused beside its field.
	form.Set("filters.severity_at_least", "loud")
	resp := s.postForm(c, fmt.Sprintf("/rules/%d", made.ID), form)
	if b := body(t, resp); resp.StatusCode != 400 || !strings.Contains(b, `id="filters.severity_at_least-error"`) {
		t.Fatalf("bad severity: %d\n%s", resp.StatusCode, b)
	}
}

var (
	inputRE  = regexp.MustCompile(`<input id="[^"]*" name="([^"]+)" type="(text|checkbox)"[^>]*?(?: value="([^"]*)")?([^>]*)>`)
	selectRE = regexp.MustCompile(`(?s)<select id="[^"]*" name="([^"]+)".*?</select>`)
	chosenRE = regexp.MustCompile(`<option value="([^"]*)" selected>`)
)

// editorValues reads the editor's form as a browser would submit it.
func editorValues(t *testing.T, page string) url.Values {
	t.Helper()
	v := url.Values{}
	for _, m := range inputRE.FindAllStringSubmatch(page, -1) {
		if m[2] == "checkbox" && !strings.Contains(m[0], " checked") {
			continue
		}
		val := m[3]
		if vm := regexp.MustCompile(`value="([^"]*)"`).FindStringSubmatch(m[0]); vm != nil {
			val = vm[1]
		}
		v.Add(m[1], val)
	}
	for _, m := range selectRE.FindAllStringSubmatch(page, -1) {
		chosen := ""
		if c := chosenRE.FindStringSubmatch(m[0]); c != nil {
			chosen = c[1]
		}
		v.Set(m[1], chosen)
	}
	if v.Get("name") == "" {
		t.Fatalf("no form read from the editor:\n%s", page)
	}
	return v
}

// TestEditorPreviewEqualsAPI (issue 14, finding 3): the editor's preview
// (the form posted to /rules/preview) counts exactly what the preview
// endpoint counts for the same rule, every filter included: it used to
// ignore filters.apps and severity_at_least (530 where the endpoint said 0).
func TestEditorPreviewEqualsAPI(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s := newSite(t, AuthConfig{}, "")
	c := s.signIn("pia@example.org")
	var uid int64
	s.st.Pool.QueryRow(ctx, `SELECT id FROM users`).Scan(&uid)
	tok, _ := s.st.CreateToken(ctx, uid, "script")
	var msgs []store.NewMessage
	for i := range 12 {
		md := meta.Metadata{Topic: "org.fedoraproject.prod.git.receive", App: "dist-git", Agent: "bob",
			Usernames: []string{"bob"}, Packages: []string{"python-foo"}, Summary: fmt.Sprintf("push %d", i)}
		if i%3 == 0 {
			md = meta.Metadata{Topic: "org.fedoraproject.prod.bodhi.update.comment", App: "bodhi", Agent: "carol",
				Usernames: []string{"carol"}, Packages: []string{"python-foo"}, Summary: fmt.Sprintf("comment %d", i)}
		}
		if i%6 == 0 {
			md.Severity = "error"
		}
		msgs = append(msgs, store.NewMessage{MsgID: fmt.Sprintf("m%d", i), Meta: md, Envelope: []byte(`{}`)})
	}
	if err := s.st.InTx(ctx, func(tx pgx.Tx) error { _, err := store.InsertMessages(ctx, tx, msgs); return err }); err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		form url.Values
		json string
	}{
		{url.Values{"track.packages": {"python-foo"}}, `{"track":{"packages":["python-foo"]}}`},
		{url.Values{"track.packages": {"python-foo"}, "filters.apps": {"bodhi"}}, `{"track":{"packages":["python-foo"]},"filters":{"apps":["bodhi"]}}`},
		{url.Values{"track.packages": {"python-foo"}, "filters.apps": {"bodhi"}, "filters.severity_at_least": {"warning"}},
			`{"track":{"packages":["python-foo"]},"filters":{"apps":["bodhi"],"severity_at_least":"warning"}}`},
		{url.Values{"track.packages": {"python-foo"}, "filters.apps": {"bodhi"}, "filters.severity_at_least": {"critical"}},
			`{"track":{"packages":["python-foo"]},"filters":{"apps":["bodhi"],"severity_at_least":"critical"}}`},
		{url.Values{"track.packages": {"python-*"}, "filters.apps_exclude": {"bodhi"}, "filters.topics_exclude": {"*.comment"}, "filters.not_my_actions": {"on"}},
			`{"track":{"packages":["python-*"]},"filters":{"apps_exclude":["bodhi"],"topics_exclude":["*.comment"],"not_my_actions":true}}`},
		{url.Values{"track.users": {"carol"}, "track.apps": {"dist-git"}, "filters.severity_at_least": {"error"}},
			`{"track":{"users":["carol"],"apps":["dist-git"]},"filters":{"severity_at_least":"error"}}`},
	}
	var counts []int64
	for _, cs := range cases {
		cs.form.Set("name", "preview")
		resp := s.postForm(c, "/rules/preview", cs.form)
		var fromForm editorPreview
		if err := json.Unmarshal([]byte(body(t, resp)), &fromForm); err != nil || resp.StatusCode != 200 {
			t.Fatalf("editor preview %v: %d %v", cs.form, resp.StatusCode, err)
		}
		st, b := s.apiCall("POST", "/api/v1/rules/preview", tok, cs.json)
		var fromAPI store.Preview
		if err := json.Unmarshal([]byte(b), &fromAPI); err != nil || st != 200 {
			t.Fatalf("API preview %s: %d %s", cs.json, st, b)
		}
		if fromForm.Count != fromAPI.Count || len(fromForm.Messages) != len(fromAPI.Messages) {
			t.Fatalf("%s: the editor counts %d (%d shown), the API %d (%d shown)", cs.json, fromForm.Count, len(fromForm.Messages), fromAPI.Count, len(fromAPI.Messages))
		}
		counts = append(counts, fromAPI.Count)
	}
	// The filters do cut: 12 tracked, 4 from bodhi, 2 of those at error,
	// none critical.
	if fmt.Sprint(counts[:4]) != "[12 4 2 0]" {
		t.Fatalf("counts %v", counts)
	}
	// Items are what the page shows: links, topics, times.
	resp := s.postForm(c, "/rules/preview", url.Values{"name": {"p"}, "track.packages": {"python-foo"}})
	var p editorPreview
	json.Unmarshal([]byte(body(t, resp)), &p)
	if len(p.Messages) == 0 || p.Messages[0].Topic == "" || !strings.HasSuffix(p.Messages[0].When, "UTC") {
		t.Fatalf("editor preview items: %+v", p.Messages)
	}
	// A form not yet a rule says why, naming the field, for the box to say
	// so (an ordinary state while typing: 200).
	resp = s.postForm(c, "/rules/preview", url.Values{"name": {"p"}})
	if b := body(t, resp); resp.StatusCode != 200 || !strings.Contains(b, `"invalid":{"error":`) || !strings.Contains(b, `"field":"track"`) {
		t.Fatalf("empty rule: %d %s", resp.StatusCode, b)
	}
}

package owners_test

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"fmn/owners"
	"fmn/owners/pagurtest"
	"fmn/rules"
	"fmn/store"
	"fmn/store/storetest"
)

func names(ps []owners.Project) []string {
	var out []string
	for _, p := range ps {
		out = append(out, p.Namespace+"/"+p.Name)
	}
	slices.Sort(out)
	return out
}

// TestClientReadsPagure: the client follows pagination.next across pages,
// keeps the maintaining levels only (owner, admin, commit, collaborator
// for users; admin, commit, collaborator for groups), and leaves out forks
// and projects outside dist-git's four namespaces.
func TestClientReadsPagure(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	pg := pagurtest.Start(t)
	var want []string
	for i := range 250 {
		name := fmt.Sprintf("python-p%03d", i)
		pg.SetUser("rpms", name, "alice", []string{"owner", "admin", "commit", "collaborator"}[i%4])
		want = append(want, "rpms/"+name)
	}
	pg.SetUser("rpms", "ticketed", "alice", "ticket")
	pg.SetUser("tests", "python-p001", "alice", "commit")
	pg.Fork("rpms", "kernel", "alice")
	pg.SetUser("container", "fedora-toolbox", "alice", "admin")
	pg.SetUser("modules", "nodejs", "alice", "commit")
	pg.SetUser("flatpaks", "org.gnome.Maps", "alice", "collaborator")
	want = append(want, "container/fedora-toolbox", "flatpaks/org.gnome.Maps", "modules/nodejs")
	slices.Sort(want)

	c := owners.NewClient(pg.URL)
	before := pg.Requests.Load()
	ps, err := c.UserProjects(ctx, "alice")
	if err != nil {
		t.Fatal(err)
	}
	if got := names(ps); !slices.Equal(got, want) {
		t.Fatalf("alice's projects: %d, want %d\n%v", len(got), len(want), got)
	}
	if n := pg.Requests.Load() - before; n != 3 {
		t.Fatalf("%d requests for 257 projects, want 3 pages of 100", n)
	}
	if ps, err := c.UserProjects(ctx, "nobody"); err != nil || len(ps) != 0 {
		t.Fatalf("a user without projects: %v %v", ps, err)
	}

	pg.SetGroup("rpms", "python-baz", "python-sig", "commit")
	pg.SetGroup("rpms", "python-qux", "python-sig", "collaborator")
	pg.SetGroup("rpms", "python-tkt", "python-sig", "ticket")
	pg.SetGroup("rpms", "kernel", "kernel-sig", "admin")
	ps, err = c.GroupProjects(ctx, "python-sig")
	if err != nil {
		t.Fatal(err)
	}
	if got := names(ps); !slices.Equal(got, []string{"rpms/python-baz", "rpms/python-qux"}) {
		t.Fatalf("python-sig's projects: %v", got)
	}
	if _, err := c.GroupProjects(ctx, "no-such-group"); err != owners.ErrNotFound {
		t.Fatalf("unknown group: %v", err)
	}
	p, err := c.GetProject(ctx, "rpms", "python-baz")
	if err != nil || p.AccessGroups["commit"][0] != "python-sig" {
		t.Fatalf("project: %+v %v", p, err)
	}
	if _, err := c.GetProject(ctx, "rpms", "gone"); err != owners.ErrNotFound {
		t.Fatalf("unknown project: %v", err)
	}
	pg.SetDown(true)
	if _, err := c.UserProjects(ctx, "alice"); err == nil || !strings.Contains(err.Error(), "503") {
		t.Fatalf("dist-git down: %v", err)
	}
}

// harness is a store and a test Pagure with a refresher between them.
type harness struct {
	t      *testing.T
	st     *store.Store
	pg     *pagurtest.Server
	rounds chan owners.Round
	ctx    context.Context
}

func newHarness(t *testing.T) *harness {
	t.Helper()
	h := &harness{t: t, st: storetest.New(t), pg: pagurtest.Start(t), rounds: make(chan owners.Round, 100)}
	ctx, cancel := context.WithCancel(context.Background())
	h.ctx = ctx
	r := &owners.Refresher{Store: h.st, Client: owners.NewClient(h.pg.URL), Every: time.Hour, Poll: 50 * time.Millisecond,
		Retry: time.Hour, Log: slog.New(slog.NewTextHandler(io.Discard, nil)),
		Rounds: func(rd owners.Round) {
			select {
			case h.rounds <- rd:
			default:
			}
		}}
	done := make(chan struct{})
	go func() { defer close(done); r.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-done })
	return h
}

// user makes an fmn user with a confirmed destination and a rule.
func (h *harness) user(name string, track rules.Track) {
	h.t.Helper()
	u, err := h.st.EnsureUser(h.ctx, name, "")
	if err != nil {
		h.t.Fatal(err)
	}
	d := storetest.ConfirmedDestination(h.t, h.st, u.ID, name+"@example.org")
	if _, err := h.st.SaveRule(h.ctx, rules.Rule{UserID: u.ID, Name: "r", Enabled: true, Track: track, Destinations: []int64{d}}); err != nil {
		h.t.Fatal(err)
	}
}

// maintained returns what the store says a principal maintains.
func (h *harness) maintained(kind, name string) []string {
	h.t.Helper()
	ms, _, err := h.st.ListMaintained(h.ctx, kind, name)
	if err != nil {
		h.t.Fatal(err)
	}
	var out []string
	for _, m := range ms {
		out = append(out, m.Namespace+"/"+m.Project)
	}
	return out
}

// waitFor polls until ok, with a deadline.
func (h *harness) waitFor(what string, ok func() bool) {
	h.t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for !ok() {
		if time.Now().After(deadline) {
			h.t.Fatalf("timed out waiting for %s", what)
		}
		select {
		case <-h.rounds:
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// bus stores one message through the watcher, as the ingester would.
func (h *harness) bus(topic string, body map[string]any) {
	h.t.Helper()
	w := owners.Watcher{DistgitURL: h.pg.URL}
	if err := h.st.InTx(h.ctx, func(tx pgx.Tx) error { return w.InTx(h.ctx, tx, topic, body) }); err != nil {
		h.t.Fatal(err)
	}
}

func projectBody(h *harness, ns, name string, extra map[string]any) map[string]any {
	b := map[string]any{"agent": "maintainer1", "project": map[string]any{"name": name, "namespace": ns, "fullname": ns + "/" + name,
		"full_url": h.pg.URL + "/" + ns + "/" + name, "parent": nil}}
	for k, v := range extra {
		b[k] = v
	}
	return b
}

// TestRefresherFollowsWhatRulesName: a rule naming a user or a group gets
// their projects read promptly; bus messages about a project change its
// rows within seconds; a principal no rule names is dropped; dist-git down
// changes nothing stored and is recorded.
func TestRefresherFollowsWhatRulesName(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	h.pg.SetUser("rpms", "python-foo", "alice", "owner")
	h.pg.SetUser("rpms", "python-foo", "bob", "ticket")
	h.pg.SetGroup("rpms", "python-baz", "python-sig", "commit")
	h.pg.SetUser("rpms", "python-unfollowed", "carol", "owner")

	h.user("alice", rules.Track{Owned: true})
	h.waitFor("alice's packages", func() bool { return slices.Equal(h.maintained("user", "alice"), []string{"rpms/python-foo"}) })
	h.user("sig", rules.Track{Groups: []string{"python-sig"}})
	h.waitFor("python-sig's packages", func() bool { return slices.Equal(h.maintained("group", "python-sig"), []string{"rpms/python-baz"}) })
	if got := h.maintained("user", "carol"); got != nil {
		t.Fatalf("carol is followed by no rule but has rows: %v", got)
	}

	// The bus: alice gets commit on python-bar.
	h.pg.SetUser("rpms", "python-bar", "alice", "commit")
	h.bus("org.fedoraproject.prod.pagure.project.user.added", projectBody(h, "rpms", "python-bar", map[string]any{"new_user": "alice"}))
	h.waitFor("python-bar after user.added", func() bool {
		return slices.Equal(h.maintained("user", "alice"), []string{"rpms/python-bar", "rpms/python-foo"})
	})
	// ... and loses it again.
	h.pg.SetUser("rpms", "python-bar", "alice", "")
	h.bus("org.fedoraproject.prod.pagure.project.user.removed", projectBody(h, "rpms", "python-bar", map[string]any{"removed_user": "alice"}))
	h.waitFor("python-bar after user.removed", func() bool { return slices.Equal(h.maintained("user", "alice"), []string{"rpms/python-foo"}) })
	// Another instance's project, and a fork, are not read.
	reqs := h.pg.Requests.Load()
	h.bus("io.pagure.prod.pagure.project.user.added", map[string]any{"project": map[string]any{"name": "python-foo", "namespace": "rpms",
		"full_url": "https://pagure.io/rpms/python-foo"}})
	fork := projectBody(h, "rpms", "python-foo", nil)
	fork["project"].(map[string]any)["parent"] = map[string]any{"name": "python-foo"}
	h.bus("org.fedoraproject.prod.pagure.project.user.added", fork)
	var pending int
	h.st.Pool.QueryRow(h.ctx, `SELECT count(*) FROM distgit_requests`).Scan(&pending)
	if pending != 0 {
		t.Fatalf("%d requests for messages of another instance or a fork", pending)
	}

	// A group change on the bus.
	h.pg.SetGroup("rpms", "python-qux", "python-sig", "admin")
	h.bus("org.fedoraproject.prod.pagure.project.group.added", projectBody(h, "rpms", "python-qux", map[string]any{"new_group": "python-sig"}))
	h.waitFor("python-qux after group.added", func() bool {
		return slices.Equal(h.maintained("group", "python-sig"), []string{"rpms/python-baz", "rpms/python-qux"})
	})

	// dist-git down: a bus request fails, nothing stored changes, the
	// error is recorded; it is answered once dist-git is back.
	h.pg.SetDown(true)
	h.pg.SetUser("rpms", "python-foo", "alice", "")
	h.bus("org.fedoraproject.prod.pagure.project.user.removed", projectBody(h, "rpms", "python-foo", nil))
	h.waitFor("the failure recorded", func() bool {
		s, err := h.st.GetDistgitStatus(h.ctx)
		return err == nil && strings.Contains(s.Error, "503") && s.PendingRequests == 1
	})
	if got := h.maintained("user", "alice"); !slices.Equal(got, []string{"rpms/python-foo"}) {
		t.Fatalf("dist-git down changed alice's rows: %v", got)
	}
	h.pg.SetDown(false)
	h.bus("org.fedoraproject.prod.pagure.project.user.removed", projectBody(h, "rpms", "python-foo", nil))
	h.waitFor("python-foo removed once dist-git is back", func() bool { return h.maintained("user", "alice") == nil })
	if reqs == h.pg.Requests.Load() {
		t.Fatal("no request reached dist-git")
	}

	// The rule goes: alice is no longer followed, her rows go with her.
	h.pg.SetUser("rpms", "python-foo", "alice", "owner")
	if _, err := h.st.Pool.Exec(h.ctx, `DELETE FROM rules WHERE user_id = (SELECT id FROM users WHERE name = 'alice')`); err != nil {
		t.Fatal(err)
	}
	h.waitFor("alice dropped", func() bool {
		var n int
		h.st.Pool.QueryRow(h.ctx, `SELECT count(*) FROM distgit_principals WHERE name = 'alice'`).Scan(&n)
		return n == 0
	})
}

// TestMembershipFromTheBus: the account system's sponsorship and removal
// messages change group_members, for fmn's users only; a my_groups rule
// then makes the group followed.
func TestMembershipFromTheBus(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	h.pg.SetGroup("rpms", "python-baz", "python-sig", "commit")
	h.user("dora", rules.Track{MyGroups: true})
	// Noggin over fedora-messaging, then FAS's legacy shape.
	h.bus("fas.group.member.sponsor", map[string]any{"msg": map[string]any{"agent": "sponsor1", "user": "dora", "group": "python-sig"}})
	h.bus("org.fedoraproject.prod.fas.group.member.sponsor", map[string]any{"agent": "s", "user": "stranger", "group": "python-sig"})
	ms, err := h.st.ListMemberships(h.ctx, "dora")
	if err != nil || len(ms) != 1 || ms[0].Group != "python-sig" || ms[0].Source != "bus" {
		t.Fatalf("dora's groups: %+v %v", ms, err)
	}
	if ms, _ := h.st.ListMemberships(h.ctx, "stranger"); len(ms) != 0 {
		t.Fatalf("a user fmn does not know was recorded: %+v", ms)
	}
	h.waitFor("python-sig followed through my_groups", func() bool {
		return slices.Equal(h.maintained("group", "python-sig"), []string{"rpms/python-baz"})
	})
	h.bus("org.fedoraproject.prod.fas.group.member.remove", map[string]any{
		"agent": map[string]any{"username": "toshio"}, "user": map[string]any{"username": "dora"}, "group": map[string]any{"name": "python-sig"}})
	if ms, _ := h.st.ListMemberships(h.ctx, "dora"); len(ms) != 0 {
		t.Fatalf("after removal: %+v", ms)
	}
}

// TestNewerProjectReadingWins: a principal's listing begun before a bus
// request read the project whole does not undo what that reading said.
func TestNewerProjectReadingWins(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	st := storetest.New(t)
	if _, err := st.Pool.Exec(ctx, `INSERT INTO distgit_principals (kind, name) VALUES ('user', 'alice')`); err != nil {
		t.Fatal(err)
	}
	begun := time.Now()
	// The bus request's reading, after the listing began: alice lost bar.
	if err := st.ApplyProject(ctx, store.ProjectRequest{Namespace: "rpms", Project: "bar"}, nil, nil, begun.Add(time.Second)); err != nil {
		t.Fatal(err)
	}
	// The listing, begun earlier, still has bar.
	if err := st.ApplyPrincipal(ctx, "user", "alice", []store.AccessRow{{Namespace: "rpms", Project: "foo", Role: "owner"}, {Namespace: "rpms", Project: "bar", Role: "commit"}}, begun); err != nil {
		t.Fatal(err)
	}
	ms, _, err := st.ListMaintained(ctx, "user", "alice")
	if err != nil || len(ms) != 1 || ms[0].Project != "foo" {
		t.Fatalf("alice maintains %+v (%v), want only foo", ms, err)
	}
	// A full refresh applies diffs: the same listing again writes nothing.
	var v1, v2 int64
	st.Pool.QueryRow(ctx, `SELECT version FROM rules_version`).Scan(&v1)
	if err := st.ApplyPrincipal(ctx, "user", "alice", []store.AccessRow{{Namespace: "rpms", Project: "foo", Role: "owner"}}, time.Now()); err != nil {
		t.Fatal(err)
	}
	st.Pool.QueryRow(ctx, `SELECT version FROM rules_version`).Scan(&v2)
	if v1 != v2 {
		t.Fatalf("an unchanged listing bumped the version %d → %d", v1, v2)
	}
}

// TestClientStaysOnItsInstance: a next page on another host is refused,
// not followed.
func TestClientStaysOnItsInstance(t *testing.T) {
	t.Parallel()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Write([]byte(`{"projects": [], "pagination": {"next": "https://evil.example/api/0/projects?page=2", "page": 1, "pages": 2}}`))
	}))
	defer srv.Close()
	if _, err := owners.NewClient(srv.URL).UserProjects(context.Background(), "alice"); err == nil || !strings.Contains(err.Error(), "not on") {
		t.Fatalf("a next page elsewhere: %v", err)
	}
}

// TestPinnedPrincipalIsRead: the rule editor's pin has a user read within
// seconds, before any rule names them, and kept meanwhile.
func TestPinnedPrincipalIsRead(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	h.pg.SetUser("rpms", "python-foo", "frank", "admin")
	if err := h.st.PinPrincipal(h.ctx, "user", "frank"); err != nil {
		t.Fatal(err)
	}
	h.waitFor("frank read", func() bool { return slices.Equal(h.maintained("user", "frank"), []string{"rpms/python-foo"}) })
	if _, removed, err := h.st.SyncPrincipals(h.ctx); err != nil || removed != 0 {
		t.Fatalf("a pinned principal was dropped: %d %v", removed, err)
	}
}

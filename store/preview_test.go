package store_test

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"os"
	"slices"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"fmn"
	"fmn/rules"
	"fmn/rules/meta"
	"fmn/store"
	"fmn/store/storetest"
)

// storeCorpus stores the corpus's messages, plus a few whose names hold
// LIKE's metacharacters, and returns them as stored.
func storeCorpus(t *testing.T, st *store.Store) []fmn.Message {
	t.Helper()
	f, err := os.Open("../testdata/fedmsg-meta.jsonl")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var msgs []store.NewMessage
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 0, 1<<20), 16<<20)
	for sc.Scan() {
		var line struct {
			Msg struct {
				Topic    string `json:"topic"`
				Username string `json:"username"`
				Msg      any    `json:"msg"`
			} `json:"msg"`
		}
		if err := json.Unmarshal(sc.Bytes(), &line); err != nil {
			t.Fatal(err)
		}
		msgs = append(msgs, store.NewMessage{MsgID: fmt.Sprint("c", len(msgs)), Envelope: []byte(`{}`),
			Meta: meta.Extract(line.Msg.Topic, line.Msg.Msg, line.Msg.Username)})
	}
	for i, p := range []string{"a_b%c", "axbyc", `back\slash`, "a_b"} {
		msgs = append(msgs, store.NewMessage{MsgID: fmt.Sprint("odd", i), Envelope: []byte(`{}`), Meta: meta.Metadata{
			Topic: "org.test.prod.odd_topic%" + p, App: "odd", Usernames: []string{}, Packages: []string{p}, Summary: "odd " + p}})
	}
	// Every severity, debug included, on copies of corpus messages (so the
	// random rules track them).
	sevs := append(rules.Severities(), "", "loud")
	for i := range 3 * len(sevs) {
		c := msgs[i*7%len(msgs)]
		c.MsgID, c.Meta.Severity = fmt.Sprint("csev", i), sevs[i%len(sevs)]
		msgs = append(msgs, c)
	}
	// Copies about the other artifact kinds.
	for i, a := range []string{"fedora-toolbox", "nodejs", "org.gnome.Maps", "python-foo"} {
		c := msgs[i*11%len(msgs)]
		c.MsgID = fmt.Sprint("typed", i)
		c.Meta.Containers, c.Meta.Modules, c.Meta.Flatpaks = []string{a}, []string{a + "-mod"}, []string{"org." + a}
		msgs = append(msgs, c)
	}
	ctx := context.Background()
	err = st.InTx(ctx, func(tx pgx.Tx) error { _, err := store.InsertMessages(ctx, tx, msgs); return err })
	if err != nil {
		t.Fatal(err)
	}
	stored, err := st.RecentMessages(ctx, 1000, 0)
	if err != nil {
		t.Fatal(err)
	}
	return stored
}

// TestPreviewEqualsMatcher checks, on random rules over the stored corpus,
// that the SQL translation finds exactly the messages the matcher matches.
func TestPreviewEqualsMatcher(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	st := storetest.New(t)
	stored := storeCorpus(t, st)
	var users, pkgs, apps, topics []string
	for _, m := range stored {
		users = append(users, m.Usernames...)
		pkgs = append(pkgs, m.Packages...)
		apps = append(apps, m.App)
		topics = append(topics, m.Topic)
	}
	rnd := rand.New(rand.NewPCG(4, 4))
	pick := func(xs []string) string {
		s := xs[rnd.IntN(len(xs))]
		if s == "" || rnd.IntN(2) == 0 {
			return s
		}
		i := rnd.IntN(len(s))
		switch rnd.IntN(4) {
		case 0:
			return s[:i] + "*"
		case 1:
			return "*" + s[i:]
		case 2:
			return s[:i] + "?" + s[i+1:]
		}
		return "*" + s[i/2:i] + "*"
	}
	some := func(xs []string, n int) []string {
		var out []string
		for range rnd.IntN(n + 1) {
			if p := pick(xs); p != "" {
				out = append(out, p)
			}
		}
		return out
	}
	owners := []string{"ralph", "lmacken", "pingou", "nobody"}
	// Who maintains what: each owner some packages and artifacts, two
	// groups some more; ralph and pingou are in groups.
	groups := []string{"python-sig", "kernel-sig", "empty-sig"}
	var containers []string
	for _, m := range stored {
		containers = append(containers, m.Containers...)
	}
	for i, p := range pkgs {
		if i%3 != 0 {
			continue
		}
		kind, who := "user", owners[i%len(owners)]
		if i%2 == 0 {
			kind, who = "group", groups[i%2]
		}
		if _, err := st.Pool.Exec(ctx, `INSERT INTO distgit_access VALUES ('rpms', $1, $2, $3, 'commit') ON CONFLICT DO NOTHING`, p, kind, who); err != nil {
			t.Fatal(err)
		}
	}
	for i, c := range containers {
		if _, err := st.Pool.Exec(ctx, `INSERT INTO distgit_access VALUES ('container', $1, 'user', $2, 'admin') ON CONFLICT DO NOTHING`, c, owners[i%2]); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := st.Pool.Exec(ctx, `INSERT INTO group_members (user_name, group_name, source) VALUES
		('ralph', 'python-sig', 'bus'), ('pingou', 'kernel-sig', 'oidc'), ('pingou', 'empty-sig', 'oidc')`); err != nil {
		t.Fatal(err)
	}
	var state rules.Changes
	if err := st.InTx(ctx, func(tx pgx.Tx) error { var err error; state, err = store.LoadMatchState(ctx, tx); return err }); err != nil {
		t.Fatal(err)
	}
	names := func(xs []string, n int) []string {
		var out []string
		for range rnd.IntN(n + 1) {
			out = append(out, xs[rnd.IntN(len(xs))])
		}
		return out
	}
	checked, hits := 0, 0
	for i := range 150 {
		r := rules.Rule{ID: 1, UserID: 1, Owner: owners[rnd.IntN(len(owners))], Name: "p", Enabled: true, Destinations: []int64{1}}
		r.Track = rules.Track{Mine: rnd.IntN(5) == 0, Users: some(users, 1), Packages: some(pkgs, 2), Apps: some(apps, 1), Topics: some(topics, 1)}
		if rnd.IntN(2) == 0 {
			r.Track.Owned, r.Track.MyGroups = rnd.IntN(2) == 0, rnd.IntN(2) == 0
			r.Track.OwnedBy, r.Track.Groups = names(owners, 1), names(groups, 1)
			r.Track.Agents, r.Track.Containers = some(users, 1), some(containers, 1)
			r.Track.Modules, r.Track.Flatpaks = some([]string{"nodejs-mod", "python-foo-mod"}, 1), some([]string{"org.gnome.Maps", "org.fedora-toolbox"}, 1)
		}
		if rnd.IntN(3) == 0 {
			r.Filters = rules.Filters{Apps: some(apps, 1), AppsExclude: some(apps, 1), TopicsExclude: some(topics, 1),
				NotMyActions: rnd.IntN(2) == 0, SeverityAtLeast: []string{"", "debug", "info", "warning", "error"}[rnd.IntN(5)]}
		}
		if i%10 == 0 {
			r.Track.Packages = append(r.Track.Packages, "a_b*", `back\*`)
		}
		if r.Validate() != nil {
			continue
		}
		ch := state
		ch.Upserts = []rules.Rule{r}
		set := rules.NewSetFrom(ch)
		var want []int64
		for _, m := range stored {
			md := meta.Metadata{Topic: m.Topic, App: m.App, Agent: m.Agent, Usernames: m.Usernames, Packages: m.Packages, Severity: m.Severity,
				Containers: m.Containers, Modules: m.Modules, Flatpaks: m.Flatpaks}
			if len(set.Match(md)) > 0 {
				want = append(want, m.ID)
			}
		}
		p, err := st.PreviewRule(ctx, r, r.Owner, 7, 1000)
		if err != nil {
			t.Fatalf("rule %+v: %v", r, err)
		}
		var got []int64
		for _, m := range p.Messages {
			got = append(got, m.ID)
		}
		slices.Sort(got)
		slices.Sort(want)
		checked++
		if len(want) > 0 {
			hits++
		}
		if !slices.Equal(got, want) || p.Count != int64(len(want)) {
			t.Fatalf("rule track %+v filters %+v owner %s:\npreview (count %d) %v\nmatcher %v", r.Track, r.Filters, r.Owner, p.Count, got, want)
		}
	}
	if checked < 100 || hits < checked/2 {
		t.Fatalf("only %d rules checked, %d with matches: the generator needs a look", checked, hits)
	}
}

func TestPreviewWindowAndLimit(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	st := storetest.New(t)
	storeCorpus(t, st)
	r := rules.Rule{Name: "all", Track: rules.Track{Topics: []string{"*"}}}
	p, err := st.PreviewRule(ctx, r, "x", 7, 20)
	if err != nil {
		t.Fatal(err)
	}
	if p.Count < 300 || len(p.Messages) != 20 || p.Messages[0].ID < p.Messages[19].ID || p.Messages[0].Summary == "" {
		t.Fatalf("count %d, %d messages", p.Count, len(p.Messages))
	}
	if err := st.MakePartitions(ctx, time.Now().AddDate(0, 0, -11), time.Now()); err != nil {
		t.Fatal(err)
	}
	if _, err := st.Pool.Exec(ctx, `UPDATE messages SET received_at = now() - interval '10 days' WHERE msg_id LIKE 'c%'`); err != nil {
		t.Fatal(err)
	}
	if p, err = st.PreviewRule(ctx, r, "x", 7, 20); err != nil || p.Count != 8 {
		t.Fatalf("last 7 days: count %d, err %v; want the 8 recent messages (odd and typed)", p.Count, err)
	}
	if p, err = st.PreviewRule(ctx, r, "x", 30, 20); err != nil || p.Count < 300 {
		t.Fatalf("last 30 days: count %d, err %v", p.Count, err)
	}
}

// TestPreviewGlobsSeeEveryStoredName: a glob is matched against the names
// the log's trigger collects (migration 0014), so a message stored by any
// statement, or changed later, is found by a glob over its names and topic.
func TestPreviewGlobsSeeEveryStoredName(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	st := storetest.New(t)
	if _, err := st.Pool.Exec(ctx, `INSERT INTO messages (msg_id, topic, usernames, packages, containers, envelope)
		VALUES ('raw-1', 'org.test.prod.zz_raw.made', '{zz-someone}', '{zz-new-pkg}', '{zz-box}', '{}')`); err != nil {
		t.Fatal(err)
	}
	count := func(tr rules.Track) int64 {
		t.Helper()
		p, err := st.PreviewRule(ctx, rules.Rule{Name: "g", Track: tr}, "x", 7, 20)
		if err != nil {
			t.Fatal(err)
		}
		return p.Count
	}
	for _, tr := range []rules.Track{{Packages: []string{"zz-new-*"}}, {Users: []string{"*-someone"}},
		{Topics: []string{"*.zz?raw.*"}}, {Containers: []string{"zz-b?x"}}} {
		if n := count(tr); n != 1 {
			t.Fatalf("%+v found %d messages, want the one stored by hand", tr, n)
		}
	}
	if n := count(rules.Track{Packages: []string{"zz-upd*"}}); n != 0 {
		t.Fatalf("a glob matching no name found %d", n)
	}
	if _, err := st.Pool.Exec(ctx, `UPDATE messages SET packages = '{zz-updated}' WHERE msg_id = 'raw-1'`); err != nil {
		t.Fatal(err)
	}
	if n := count(rules.Track{Packages: []string{"zz-upd*"}}); n != 1 {
		t.Fatalf("after an update the glob found %d messages, want 1", n)
	}
	if n := count(rules.Track{Packages: []string{"zz-new-*"}}); n != 0 {
		t.Fatalf("the old name still finds %d messages", n)
	}
}

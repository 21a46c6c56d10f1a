package e2e

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"fmn/owners/pagurtest"
	"fmn/store/storetest"
)

// TestOwnershipAcceptance is issue 11's acceptance with the real binary, a
// real SMTP server, ZeroMQ and a test Pagure standing in for dist-git:
//
//   - dist-git says alice maintains rpms/python-foo; her track.owned rule
//     mails her a message about python-foo, and nobody else;
//   - a pagure.project.user.added message adds her to rpms/python-bar: the
//     next python-bar message reaches her within 10 s, no restart; the
//     removal likewise;
//   - python-sig has commit on rpms/python-baz: carol's track.groups rule
//     hears of python-baz;
//   - bob's track.agents ["bob"] hears only what bob did.
func TestOwnershipAcceptance(t *testing.T) {
	t.Parallel()
	pg := pagurtest.Start(t)
	pg.SetUser("rpms", "python-foo", "alice", "owner")
	pg.SetUser("rpms", "python-foo", "dave", "ticket") // ticket access maintains nothing
	pg.SetUser("rpms", "python-bar", "erin", "owner")
	pg.SetGroup("rpms", "python-baz", "python-sig", "commit")

	s, pub, mailSrv := startWithBus(t, "FMN_DISTGIT_URL="+pg.URL)
	var dbURL string
	for _, kv := range s.env {
		if v, ok := strings.CutPrefix(kv, "FMN_DATABASE_URL="); ok {
			dbURL = v
		}
	}
	st := openStore(t, dbURL)
	ctx := context.Background()

	// Each user: an account, a confirmed mailbox, one rule made through the API.
	dests := map[string]int64{}
	rule := func(name string, track map[string]any) {
		t.Helper()
		s.token = strings.TrimSpace(s.run("token", "create", "-user", name, "-email", name+"@example.org"))
		u, err := st.EnsureUser(ctx, name, "")
		if err != nil {
			t.Fatal(err)
		}
		dests[name] = storetest.ConfirmedDestination(t, st, u.ID, name+"@example.org")
		var e apiErr
		if code := s.call("POST", "/api/v1/rules", map[string]any{"name": name + "'s", "track": track,
			"destinations": []int64{dests[name]}}, &e); code != 201 {
			t.Fatalf("rule of %s: %d %+v", name, code, e)
		}
	}
	// A malformed ownership rule is refused, naming the field.
	s.token = strings.TrimSpace(s.run("token", "create", "-user", "zoe"))
	var e apiErr
	if code := s.call("POST", "/api/v1/rules", map[string]any{"name": "x", "track": map[string]any{"owned_by": []string{"ali*"}}}, &e); code != 400 || e.Field != "track.owned_by" {
		t.Fatalf("owned_by pattern: %d %+v", code, e)
	}
	rule("alice", map[string]any{"owned": true})
	rule("bob", map[string]any{"agents": []string{"bob"}})
	rule("carol", map[string]any{"groups": []string{"python-sig"}})
	rule("dave", map[string]any{"owned": true})
	rule("erin", map[string]any{"packages": []string{"never-published"}})

	eventually(t, 30*time.Second, "dist-git read for alice, dave and python-sig", func() bool {
		var n int
		st.Pool.QueryRow(ctx, `SELECT count(*) FROM distgit_principals WHERE fetched_at IS NOT NULL
			AND (kind, name) IN (('user', 'alice'), ('user', 'dave'), ('group', 'python-sig'))`).Scan(&n)
		return n == 3
	})

	seq := 0
	push := func(pkg, agent string) string {
		t.Helper()
		seq++
		summary := fmt.Sprintf("change %d to %s by %s", seq, pkg, agent)
		err := pub.Publish(map[string]any{
			"topic": "org.fedoraproject.prod.git.receive",
			"msg": map[string]any{"commit": map[string]any{
				"branch": "rawhide", "email": agent + "@example.org", "message": summary + "\n", "name": agent, "namespace": "rpms",
				"repo": pkg, "rev": fmt.Sprintf("%040d", seq), "summary": summary, "username": agent,
				"stats": map[string]any{"files": map[string]any{}, "total": map[string]any{"deletions": 1, "files": 1, "insertions": 1, "lines": 2}},
			}},
		}, true)
		if err != nil {
			t.Fatal(err)
		}
		return summary
	}
	// recipients waits for the mail about summary (it must come) and
	// returns who got it so far.
	recipients := func(summary string) []string {
		t.Helper()
		var to []string
		eventually(t, 30*time.Second, "mail about "+summary, func() bool {
			to = nil
			ms := mailSrv.Messages()
			for _, m := range ms {
				if strings.Contains(string(m.Data), summary) {
					to = append(to, m.To...)
				}
			}
			return len(to) > 0
		})
		slices.Sort(to)
		return to
	}
	// notified lists who was notified of the message with summary: the
	// notification rows are written with the message, so this is final
	// once the message is stored.
	notified := func(summary string) []string {
		t.Helper()
		rows, err := st.Pool.Query(ctx, `SELECT u.name FROM notifications n JOIN messages m ON m.id = n.message_id
			JOIN users u ON u.id = n.user_id WHERE m.summary LIKE '%' || $1 || '%' ORDER BY u.name`, summary)
		if err != nil {
			t.Fatal(err)
		}
		var out []string
		for rows.Next() {
			var n string
			rows.Scan(&n)
			out = append(out, n)
		}
		return out
	}
	stored := func(summary string) {
		t.Helper()
		eventually(t, 30*time.Second, "stored: "+summary, func() bool {
			var n int
			st.Pool.QueryRow(ctx, `SELECT count(*) FROM messages WHERE summary LIKE '%' || $1 || '%'`, summary).Scan(&n)
			return n == 1
		})
	}

	// 1. python-foo: alice maintains it; dave only triages tickets.
	foo := push("python-foo", "zed")
	if to := recipients(foo); !slices.Equal(to, []string{"alice@example.org"}) {
		t.Fatalf("python-foo mailed to %v, want alice only", to)
	}
	if n := notified(foo); !slices.Equal(n, []string{"alice"}) {
		t.Fatalf("python-foo notified %v", n)
	}

	// 2. python-baz: python-sig has commit, carol follows the group.
	baz := push("python-baz", "zed")
	if to := recipients(baz); !slices.Equal(to, []string{"carol@example.org"}) {
		t.Fatalf("python-baz mailed to %v, want carol only", to)
	}
	if n := notified(baz); !slices.Equal(n, []string{"carol"}) {
		t.Fatalf("python-baz notified %v", n)
	}

	// 3. What bob did reaches bob, and only that.
	bobs := push("some-package", "bob")
	if to := recipients(bobs); !slices.Equal(to, []string{"bob@example.org"}) {
		t.Fatalf("bob's push mailed to %v, want bob only", to)
	}
	if n := notified(bobs); !slices.Equal(n, []string{"bob"}) {
		t.Fatalf("bob's push notified %v", n)
	}
	notBob := push("some-package", "robert")
	stored(notBob)
	if n := notified(notBob); len(n) != 0 {
		t.Fatalf("robert's push notified %v", n)
	}

	// 4. The bus adds alice to python-bar.
	projectMsg := func(topic string, extra map[string]any) {
		t.Helper()
		body := map[string]any{"agent": "erin", "project": map[string]any{"name": "python-bar", "namespace": "rpms", "fullname": "rpms/python-bar",
			"full_url": pg.URL + "/rpms/python-bar", "parent": nil}}
		for k, v := range extra {
			body[k] = v
		}
		if err := pub.Publish(map[string]any{"topic": topic, "msg": body}, true); err != nil {
			t.Fatal(err)
		}
	}
	before := push("python-bar", "zed")
	stored(before)
	if n := notified(before); len(n) != 0 {
		t.Fatalf("python-bar before alice was added notified %v", n)
	}
	pg.SetUser("rpms", "python-bar", "alice", "commit")
	added := time.Now()
	projectMsg("org.fedoraproject.prod.pagure.project.user.added", map[string]any{"new_user": "alice", "access": "commit"})
	var reached time.Duration
	for {
		bar := push("python-bar", "zed")
		stored(bar)
		if n := notified(bar); slices.Equal(n, []string{"alice"}) {
			reached = time.Since(added)
			if to := recipients(bar); !slices.Equal(to, []string{"alice@example.org"}) {
				t.Fatalf("python-bar after user.added mailed to %v", to)
			}
			break
		} else if len(n) != 0 {
			t.Fatalf("python-bar notified %v", n)
		}
		if time.Since(added) > 10*time.Second {
			t.Fatalf("10 s after pagure.project.user.added, python-bar still does not reach alice")
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Logf("bench-ish: the first python-bar message reached alice %v after user.added", reached.Round(time.Millisecond))

	// 5. ... and removes her.
	pg.SetUser("rpms", "python-bar", "alice", "")
	removed := time.Now()
	projectMsg("org.fedoraproject.prod.pagure.project.user.removed", map[string]any{"removed_user": "alice"})
	var gone time.Duration
	for {
		bar := push("python-bar", "zed")
		stored(bar)
		if n := notified(bar); len(n) == 0 {
			gone = time.Since(removed)
			break
		}
		if time.Since(removed) > 10*time.Second {
			t.Fatalf("10 s after pagure.project.user.removed, python-bar still reaches alice")
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Logf("bench-ish: python-bar stopped reaching alice %v after user.removed", gone.Round(time.Millisecond))
	// python-foo still does.
	if to := recipients(push("python-foo", "zed")); !slices.Equal(to, []string{"alice@example.org"}) {
		t.Fatalf("python-foo after the python-bar removal mailed to %v", to)
	}

	// Nothing reached erin, whose rule names a package nobody published,
	// or dave, who only triages.
	for _, m := range mailSrv.Messages() {
		for _, to := range m.To {
			if to == "erin@example.org" || to == "dave@example.org" {
				t.Fatalf("mail to %s:\n%s", to, m.Data)
			}
		}
	}
	if status, err := st.GetDistgitStatus(ctx); err != nil || status.Principals != 3 {
		t.Fatalf("dist-git status: %+v %v", status, err)
	}
}

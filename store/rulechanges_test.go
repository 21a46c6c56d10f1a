package store_test

import (
	"context"
	"io"
	"log/slog"
	"reflect"
	"slices"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"fmn/rules"
	"fmn/rules/meta"
	"fmn/store"
	"fmn/store/storetest"
)

// TestLiveFollowsEveryKindOfChange walks a Live through each change the
// triggers log (a rule saved, disabled, deleted; a destination disabled,
// confirmed or deleted; the owner renamed) and checks after each that the
// incrementally updated Set answers as a Set freshly loaded from scratch.
func TestLiveFollowsEveryKindOfChange(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	st := storetest.New(t)
	alice, err := st.EnsureUser(ctx, "alice", "")
	if err != nil {
		t.Fatal(err)
	}
	bob, err := st.EnsureUser(ctx, "bob", "")
	if err != nil {
		t.Fatal(err)
	}
	da := storetest.ConfirmedDestination(t, st, alice.ID, "a@example.org")
	db := storetest.ConfirmedDestination(t, st, bob.ID, "b@example.org")
	db2 := storetest.ConfirmedDestination(t, st, bob.ID, "b2@example.org")

	msgs := []meta.Metadata{
		{Topic: "org.fedoraproject.prod.bodhi.update.comment", App: "bodhi", Agent: "alice", Usernames: []string{"alice", "bob"}, Packages: []string{"kernel"}},
		{Topic: "org.fedoraproject.prod.buildsys.build.state.change", App: "koji", Agent: "bob", Usernames: []string{"bob"}, Packages: []string{"python-requests"}},
		{Topic: "org.fedoraproject.prod.git.receive", App: "dist-git", Agent: "robert", Usernames: []string{"robert"}, Packages: []string{"gcc"}},
	}
	live := rules.NewLive(store.RuleSource{})
	step := func(name string, wantTotal int) {
		t.Helper()
		var inc, full *rules.Set
		err := st.InTx(ctx, func(tx pgx.Tx) error {
			var err error
			if inc, err = live.Current(ctx, tx); err != nil {
				return err
			}
			all, err := store.LoadMatchState(ctx, tx)
			full = rules.NewSetFrom(all)
			return err
		})
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		total := 0
		for _, md := range msgs {
			a, b := sortMatches(inc.Match(md)), sortMatches(full.Match(md))
			if !reflect.DeepEqual(a, b) {
				t.Fatalf("%s: %s: incremental %v, full load %v", name, md.Topic, a, b)
			}
			total += len(a)
		}
		if total != wantTotal {
			t.Fatalf("%s: %d matches over the messages, want %d", name, total, wantTotal)
		}
	}
	step("empty", 0)
	r1, err := st.SaveRule(ctx, rules.Rule{UserID: bob.ID, Name: "mine", Enabled: true, Track: rules.Track{Mine: true}, Filters: rules.Filters{NotMyActions: true}, Destinations: []int64{db}})
	if err != nil {
		t.Fatal(err)
	}
	step("rule created", 1) // message 1 (alice acted); message 2 is bob's own action
	r2, err := st.SaveRule(ctx, rules.Rule{UserID: alice.ID, Name: "pkgs", Enabled: true, Track: rules.Track{Packages: []string{"python-*", "gcc"}}, Destinations: []int64{da}})
	if err != nil {
		t.Fatal(err)
	}
	step("second rule", 3)
	r1.UserID, r1.Destinations = bob.ID, []int64{db, db2}
	if _, err := st.SaveRule(ctx, r1); err != nil {
		t.Fatal(err)
	}
	step("destination added", 4)
	if _, err := st.UpdateDestination(ctx, bob.ID, db2, store.DestinationPatch{Enabled: ptr(false)}); err != nil {
		t.Fatal(err)
	}
	step("destination disabled", 3)
	if _, err := st.Pool.Exec(ctx, `UPDATE users SET name = 'robert' WHERE id = $1`, bob.ID); err != nil {
		t.Fatal(err)
	}
	step("owner renamed", 2) // "mine" is now robert's: message 3, which robert did himself, so filtered
	if _, err := st.Pool.Exec(ctx, `UPDATE users SET name = 'bob' WHERE id = $1`, bob.ID); err != nil {
		t.Fatal(err)
	}
	step("owner renamed back", 3)
	if _, err := st.Pool.Exec(ctx, `UPDATE rules SET enabled = false WHERE id = $1`, r2.ID); err != nil {
		t.Fatal(err)
	}
	step("rule disabled", 1)
	if _, err := st.Pool.Exec(ctx, `DELETE FROM destinations WHERE id = $1`, db); err != nil {
		t.Fatal(err)
	}
	step("destination deleted", 1) // r1 has no destination left: message 1 goes to bob's history only
	if _, err := st.Pool.Exec(ctx, `UPDATE rules SET enabled = true WHERE id = $1`, r2.ID); err != nil {
		t.Fatal(err)
	}
	step("rule enabled", 3)
	if err := st.DeleteRule(ctx, alice.ID, r2.ID); err != nil {
		t.Fatal(err)
	}
	step("rule deleted", 1)

	// Ownership and membership change what "owned" and "my_groups" reach.
	if _, err := st.SaveRule(ctx, rules.Rule{UserID: alice.ID, Name: "maintained", Enabled: true,
		Track: rules.Track{Owned: true, MyGroups: true}, Destinations: []int64{da}}); err != nil {
		t.Fatal(err)
	}
	step("owned rule, nothing maintained", 1)
	exec := func(sql string) {
		t.Helper()
		if _, err := st.Pool.Exec(ctx, sql); err != nil {
			t.Fatal(err)
		}
	}
	exec(`INSERT INTO distgit_access VALUES ('rpms', 'kernel', 'user', 'alice', 'commit')`)
	step("alice maintains kernel", 2)
	exec(`INSERT INTO distgit_access VALUES ('rpms', 'python-requests', 'group', 'python-sig', 'commit')`)
	step("python-sig maintains python-requests, alice not in it", 2)
	exec(`INSERT INTO group_members (user_name, group_name, source) VALUES ('alice', 'python-sig', 'bus')`)
	step("alice joins python-sig", 3)
	exec(`UPDATE distgit_access SET role = 'admin' WHERE project = 'kernel'`)
	step("a new role only", 3)
	exec(`DELETE FROM group_members WHERE user_name = 'alice'`)
	step("alice leaves python-sig", 2)
	exec(`DELETE FROM distgit_access WHERE project = 'kernel'`)
	step("alice no longer maintains kernel", 1)
	if live.Loads.Load() != 1 || live.Updates.Load() < 14 {
		t.Fatalf("%d loads and %d updates: changes should apply incrementally", live.Loads.Load(), live.Updates.Load())
	}

	// A matcher further behind than the pruned log reloads everything.
	if _, err := st.SaveRule(ctx, rules.Rule{UserID: alice.ID, Name: "all", Enabled: true, Track: rules.Track{Topics: []string{"*"}}, Destinations: []int64{da}}); err != nil {
		t.Fatal(err)
	}
	if _, err := st.Pool.Exec(ctx, `DELETE FROM rule_changes; UPDATE rules_version SET logged_after = version`); err != nil {
		t.Fatal(err)
	}
	step("log pruned", 4)
	if live.Loads.Load() != 2 {
		t.Fatalf("%d loads after the log was pruned, want 2", live.Loads.Load())
	}
}

func ptr[T any](v T) *T { return &v }

func sortMatches(ms []rules.Match) []rules.Match {
	ms = slices.Clone(ms)
	slices.SortFunc(ms, func(a, b rules.Match) int { return int(a.DestinationID - b.DestinationID) })
	return ms
}

// TestFollowRules: with FollowRules running, a saved rule reaches the Live
// without any message asking for it.
func TestFollowRules(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithCancel(context.Background())
	st := storetest.New(t)
	u, err := st.EnsureUser(ctx, "alice", "")
	if err != nil {
		t.Fatal(err)
	}
	d := storetest.ConfirmedDestination(t, st, u.ID, "a@example.org")
	live := rules.NewLive(store.RuleSource{})
	done := make(chan error)
	go func() { done <- st.FollowRules(ctx, live, slog.New(slog.NewTextHandler(io.Discard, nil))) }()
	tick := time.NewTicker(5 * time.Millisecond)
	defer tick.Stop()
	waitFor := func(what string, ok func(*rules.Set) bool) {
		t.Helper()
		for deadline := time.Now().Add(10 * time.Second); ; <-tick.C {
			if s := live.Peek(); s != nil && ok(s) {
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("timed out waiting for %s", what)
			}
		}
	}
	waitFor("the first load", func(s *rules.Set) bool { return true })
	if _, err := st.SaveRule(ctx, rules.Rule{UserID: u.ID, Name: "r", Enabled: true, Track: rules.Track{Apps: []string{"bodhi"}}, Destinations: []int64{d}}); err != nil {
		t.Fatal(err)
	}
	waitFor("the new rule", func(s *rules.Set) bool { return s.Len() == 1 })
	if live.Loads.Load() != 1 {
		t.Fatalf("%d loads, want 1 and updates after", live.Loads.Load())
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}

package store_test

import (
	"context"
	"errors"
	"slices"
	"testing"

	"github.com/jackc/pgx/v5"

	"fmn"
	"fmn/apperr"
	"fmn/rules"
	"fmn/rules/meta"
	"fmn/store"
	"fmn/store/storetest"
)

func newDest(t *testing.T, st *store.Store, user int64, addr string) fmn.Destination {
	t.Helper()
	var d fmn.Destination
	err := st.InTx(context.Background(), func(tx pgx.Tx) error {
		var err error
		d, err = store.CreateDestination(context.Background(), tx, user, "email", addr)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return d
}

func TestConfirmCodeIsSingleUseAndReplaced(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	st := storetest.New(t)
	u, _ := st.EnsureUser(ctx, "alice", "")
	d := newDest(t, st, u.ID, "alice@example.org")
	old, err := st.NewConfirmCode(ctx, d.ID)
	if err != nil {
		t.Fatal(err)
	}
	code, _ := st.NewConfirmCode(ctx, d.ID)
	if len(code) < 16 {
		t.Fatalf("code %q shorter than 16", code)
	}
	if _, err := st.ConfirmByCode(ctx, old); !errors.Is(err, apperr.ErrNotFound) {
		t.Fatalf("a replaced code still works: %v", err)
	}
	got, err := st.ConfirmByCode(ctx, code)
	if err != nil || !got.Confirmed || got.ID != d.ID {
		t.Fatalf("confirm: %+v %v", got, err)
	}
	if _, err := st.ConfirmByCode(ctx, code); !errors.Is(err, apperr.ErrNotFound) {
		t.Fatalf("a code works twice: %v", err)
	}
	if _, err := st.NewConfirmCode(ctx, d.ID); !errors.Is(err, apperr.ErrNotFound) {
		t.Fatalf("a confirmed destination got a new code: %v", err)
	}
}

func TestConfirmCodeExpires(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	st := storetest.New(t)
	u, _ := st.EnsureUser(ctx, "alice", "")
	d := newDest(t, st, u.ID, "alice@example.org")
	code, _ := st.NewConfirmCode(ctx, d.ID)
	if _, err := st.Pool.Exec(ctx, `UPDATE destinations SET confirm_expires_at = now() - interval '1 second'`); err != nil {
		t.Fatal(err)
	}
	if _, err := st.ConfirmByCode(ctx, code); !errors.Is(err, apperr.ErrNotFound) {
		t.Fatalf("an expired code works: %v", err)
	}
	if _, err := st.ConfirmDestination(ctx, u.ID, d.ID, code); err == nil {
		t.Fatal("an expired code works through the API path")
	}
}

// A message is stored once per msg_id and notified once per destination,
// however often it arrives.
func TestMessagesAndNotificationsAreIdempotent(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	st := storetest.New(t)
	u, _ := st.EnsureUser(ctx, "alice", "")
	d := newDest(t, st, u.ID, "alice@example.org")
	msg := store.NewMessage{MsgID: "2026-abc", Meta: meta.Metadata{Topic: "t", Usernames: []string{"alice"}, Packages: []string{}}, Envelope: []byte(`{}`)}
	var firstID int64
	for round := 0; round < 2; round++ {
		err := st.InTx(ctx, func(tx pgx.Tx) error {
			ids, err := store.InsertMessages(ctx, tx, []store.NewMessage{msg, msg})
			if err != nil {
				return err
			}
			if round == 0 && (ids[0] == 0 || ids[1] != 0) {
				t.Errorf("first round ids %v: want a new id, then 0 for the repeat", ids)
			}
			if round == 1 && (ids[0] != 0 || ids[1] != 0) {
				t.Errorf("second round ids %v: want 0, 0", ids)
			}
			if round == 0 {
				firstID = ids[0]
			}
			ns, err := store.InsertNotifications(ctx, tx, firstID, []rules.Match{{UserID: u.ID, DestinationID: d.ID}})
			if round == 0 && len(ns) != 1 || round == 1 && len(ns) != 0 {
				t.Errorf("round %d: %d notifications created", round, len(ns))
			}
			return err
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	if n, _ := st.CountMessages(ctx); n != 1 {
		t.Fatalf("%d messages stored", n)
	}
}

func TestRulesVersionMovesWithEveryChange(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	st := storetest.New(t)
	version := func() int64 {
		var v int64
		st.InTx(ctx, func(tx pgx.Tx) error { v, _ = store.RulesVersion(ctx, tx); return nil })
		return v
	}
	v0 := version()
	u, _ := st.EnsureUser(ctx, "alice", "")
	d := newDest(t, st, u.ID, "alice@example.org")
	r, err := st.SaveRule(ctx, rules.Rule{UserID: u.ID, Name: "r", Enabled: true, Track: rules.Track{Mine: true}, Destinations: []int64{d.ID}})
	if err != nil {
		t.Fatal(err)
	}
	v1 := version()
	if v1 <= v0 {
		t.Fatal("saving a rule did not bump the version")
	}
	code, _ := st.NewConfirmCode(ctx, d.ID)
	if v := version(); v != v1 {
		t.Fatal("a new confirmation code bumped the version; only matchable changes should")
	}
	st.ConfirmByCode(ctx, code)
	v2 := version()
	if v2 <= v1 {
		t.Fatal("confirming a destination did not bump the version")
	}
	_, rs, err := func() (int64, []rules.Rule, error) {
		var v int64
		var rs []rules.Rule
		err := st.InTx(ctx, func(tx pgx.Tx) error {
			var err error
			v, rs, err = store.LoadMatchable(ctx, tx)
			return err
		})
		return v, rs, err
	}()
	if err != nil || len(rs) != 1 || rs[0].ID != r.ID || rs[0].Owner != "alice" || len(rs[0].Destinations) != 1 {
		t.Fatalf("matchable rules: %+v %v", rs, err)
	}
	if err := st.DeleteRule(ctx, u.ID, r.ID); err != nil || version() <= v2 {
		t.Fatalf("delete: %v", err)
	}
}

// Every set of the metadata is stored and read back as given, empty sets
// as empty (never NULL) arrays.
func TestMessageSetsRoundTrip(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	st := storetest.New(t)
	full := meta.Metadata{Topic: "t", Usernames: []string{"alice", "bob"}, Packages: []string{"kernel"},
		Groups: []string{"python-sig"}, Containers: []string{"fedora-toolbox"}, Modules: []string{"nodejs"},
		Flatpaks: []string{"firefox", "gimp"}}
	err := st.InTx(ctx, func(tx pgx.Tx) error {
		_, err := store.InsertMessageBatch(ctx, tx, []store.NewMessage{
			{MsgID: "full", Meta: full, Envelope: []byte(`{}`)},
			{MsgID: "empty", Meta: meta.Metadata{Topic: "t"}, Envelope: []byte(`{}`)},
		})
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	ms, err := st.RecentMessages(ctx, 10, 0)
	if err != nil || len(ms) != 2 {
		t.Fatalf("recent: %v %v", ms, err)
	}
	got := map[string]fmn.Message{ms[0].MsgID: ms[0], ms[1].MsgID: ms[1]}
	f, e := got["full"], got["empty"]
	for name, pair := range map[string][2][]string{
		"usernames": {f.Usernames, full.Usernames}, "packages": {f.Packages, full.Packages},
		"groups": {f.Groups, full.Groups}, "containers": {f.Containers, full.Containers},
		"modules": {f.Modules, full.Modules}, "flatpaks": {f.Flatpaks, full.Flatpaks},
	} {
		if !slices.Equal(pair[0], pair[1]) {
			t.Errorf("%s = %v, want %v", name, pair[0], pair[1])
		}
	}
	for name, l := range map[string][]string{"groups": e.Groups, "containers": e.Containers, "modules": e.Modules, "flatpaks": e.Flatpaks} {
		if l == nil || len(l) != 0 {
			t.Errorf("empty message's %s = %#v, want an empty array", name, l)
		}
	}
}

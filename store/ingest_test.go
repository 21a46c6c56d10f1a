package store_test

import (
	"context"
	"slices"
	"testing"

	"github.com/jackc/pgx/v5"

	"fmn/rules/meta"
	"fmn/store"
	"fmn/store/storetest"
)

// The lists travel as array literals: every name comes back as it went,
// whatever quotes, backslashes, braces, commas, spaces or words like NULL
// it holds, and an empty list stays empty.
func TestStoreMessageBatchKeepsNames(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	st := storetest.New(t)
	odd := []string{`a"b`, `c\d`, `{e}`, `f,g`, ` h `, `NULL`, `null`, ``, `é😀`, `\"`, `"`, `\`}
	msgs := []store.NewMessage{
		{MsgID: "odd", Meta: meta.Metadata{Topic: "t.odd", Usernames: odd, Packages: []string{"p"}, Groups: odd[:3],
			Containers: odd[3:6], Modules: odd[6:9], Flatpaks: odd[9:]}, Envelope: []byte(`{}`)},
		{MsgID: "empty", Meta: meta.Metadata{Topic: "t.empty"}, Envelope: []byte(`{}`)},
	}
	err := st.InTx(ctx, func(tx pgx.Tx) error {
		_, _, err := store.StoreMessageBatch(ctx, tx, msgs, &store.KnownNames{})
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range msgs {
		var got meta.Metadata
		if err := st.Pool.QueryRow(ctx, `SELECT usernames, packages, groups, containers, modules, flatpaks FROM messages WHERE msg_id = $1`,
			m.MsgID).Scan(&got.Usernames, &got.Packages, &got.Groups, &got.Containers, &got.Modules, &got.Flatpaks); err != nil {
			t.Fatal(err)
		}
		for _, l := range []struct{ got, want []string }{{got.Usernames, m.Meta.Usernames}, {got.Packages, m.Meta.Packages},
			{got.Groups, m.Meta.Groups}, {got.Containers, m.Meta.Containers}, {got.Modules, m.Meta.Modules}, {got.Flatpaks, m.Meta.Flatpaks}} {
			if len(l.got) != len(l.want) || (len(l.want) > 0 && !slices.Equal(l.got, l.want)) {
				t.Errorf("%s: stored %q, want %q", m.MsgID, l.got, l.want)
			}
		}
	}
}

// messageNames lists message_names as "kind name" lines.
func messageNames(t *testing.T, st *store.Store) []string {
	t.Helper()
	rows, err := st.Pool.Query(context.Background(), `SELECT kind || ' ' || name FROM message_names ORDER BY 1`)
	if err != nil {
		t.Fatal(err)
	}
	names, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		t.Fatal(err)
	}
	return names
}

// With KnownNames the batch fills message_names itself, the trigger stays
// out, and a name is sent once it is known to be stored: after a commit,
// never after a rollback. Without KnownNames the trigger fills it, as for
// every other insert.
func TestKnownNamesFillMessageNames(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	st := storetest.New(t)
	var known store.KnownNames
	batch := func(id string, md meta.Metadata, rollback bool) []store.Name {
		t.Helper()
		var added []store.Name
		tx, err := st.Pool.Begin(ctx)
		if err != nil {
			t.Fatal(err)
		}
		defer tx.Rollback(ctx)
		if _, added, err = store.StoreMessageBatch(ctx, tx, []store.NewMessage{{MsgID: id, Meta: md, Envelope: []byte(`{}`)}}, &known); err != nil {
			t.Fatal(err)
		}
		if !rollback {
			if err := tx.Commit(ctx); err != nil {
				t.Fatal(err)
			}
			known.Learn(added)
		}
		return added
	}
	md := meta.Metadata{Topic: "t.a", Usernames: []string{"bob", "alice", "bob"}, Packages: []string{"kernel"},
		Groups: []string{"not-kept"}, Flatpaks: []string{"f"}}
	if got := batch("m1", md, true); len(got) != 5 {
		t.Fatalf("first batch sends %v, want the 5 names", got)
	}
	if got := messageNames(t, st); len(got) != 0 {
		t.Fatalf("a rolled back batch left names %q", got)
	}
	if got := batch("m2", md, false); len(got) != 5 || got[0] != (store.Name{Kind: "flatpaks", Name: "f"}) {
		t.Fatalf("after a rollback the batch sends %v, want the 5 names again, in key order", got)
	}
	want := []string{"flatpaks f", "packages kernel", "topic t.a", "usernames alice", "usernames bob"}
	if got := messageNames(t, st); !slices.Equal(got, want) {
		t.Fatalf("message_names %q, want %q", got, want)
	}
	md.Usernames = []string{"alice", "carol"}
	if got := batch("m3", md, false); !slices.Equal(got, []store.Name{{Kind: "usernames", Name: "carol"}}) {
		t.Fatalf("third batch sends %v, want only the new name", got)
	}
	// A name known is never sent again, and the trigger stays out: a
	// name learned without being stored (only a test does that) stays
	// missing.
	known.Learn([]store.Name{{Kind: "topic", Name: "t.known"}})
	md.Topic = "t.known"
	if got := batch("m5", md, false); len(got) != 0 {
		t.Fatalf("a batch of known names sends %v", got)
	}
	if got := messageNames(t, st); slices.Contains(got, "topic t.known") {
		t.Fatalf("the trigger ran in the ingester's transaction: %q", got)
	}
	// Any other insert: the trigger.
	if err := st.InTx(ctx, func(tx pgx.Tx) error {
		_, err := store.InsertMessages(ctx, tx, []store.NewMessage{{MsgID: "m4", Meta: meta.Metadata{Topic: "t.b"}, Envelope: []byte(`{}`)}})
		return err
	}); err != nil {
		t.Fatal(err)
	}
	if got := messageNames(t, st); !slices.Contains(got, "topic t.b") || !slices.Contains(got, "usernames carol") {
		t.Fatalf("message_names %q lacks topic t.b (the trigger's) or carol", got)
	}
}

package store_test

import (
	"context"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"fmn/rules/meta"
	"fmn/store"
	"fmn/store/storetest"
)

// The insert's parameters are encoded by hand: every column comes back as
// it went, a missing sent_at as NULL; the lists travel as array literals,
// whatever quotes, backslashes, braces, commas, spaces or words like NULL
// their names hold, and an empty list stays empty.
func TestStoreMessageBatchKeepsNames(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	st := storetest.New(t)
	sent := time.Date(2026, 12, 1, 10, 11, 12, 345678000, time.UTC)
	odd := []string{`a"b`, `c\d`, `{e}`, `f,g`, ` h `, `NULL`, `null`, ``, `é😀`, `\"`, `"`, `\`}
	msgs := []store.NewMessage{
		{MsgID: "odd", Meta: meta.Metadata{Topic: "t.odd", Usernames: odd, Packages: []string{"p"}, Groups: odd[:3],
			Containers: odd[3:6], Modules: odd[6:9], Flatpaks: odd[9:], Summary: "s", Link: "l", Severity: "info", App: "a", Agent: "g"},
			SentAt: &sent, Endpoint: "tcp://e", Envelope: []byte(`{"k": "é"}`)},
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
		var at *time.Time
		var other, env string
		if err := st.Pool.QueryRow(ctx, `SELECT sent_at, concat_ws('|', topic, app, agent, summary, link, severity, endpoint), envelope::text
			FROM messages WHERE msg_id = $1`, m.MsgID).Scan(&at, &other, &env); err != nil {
			t.Fatal(err)
		}
		md := m.Meta
		if want := strings.Join([]string{md.Topic, md.App, md.Agent, md.Summary, md.Link, md.Severity, m.Endpoint}, "|"); other != want ||
			(at == nil) != (m.SentAt == nil) || at != nil && !at.Equal(*m.SentAt) || env != string(m.Envelope) {
			t.Errorf("%s: stored %q sent %v envelope %s, want %q sent %v envelope %s", m.MsgID, other, at, env, want, m.SentAt, m.Envelope)
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

package store_test

import (
	"context"
	"errors"
	"fmn/apperr"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"fmn"
	"fmn/store"
	"fmn/store/storetest"
)

func TestFoldNick(t *testing.T) {
	t.Parallel()
	if got := fmn.FoldNick(`Alice[Away]\~`); got != `alice{away}|^` {
		t.Fatalf("FoldNick = %q", got)
	}
}

// TestIRCNickCommands: a nick finds its destinations under IRC case
// folding, whoever owns them; a code confirms only from its own nick.
func TestIRCNickCommands(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	st := storetest.New(t)
	u1, _ := st.EnsureUser(ctx, "alice", "")
	u2, _ := st.EnsureUser(ctx, "bob", "")
	mk := func(user int64, nick string) fmn.Destination {
		var d fmn.Destination
		err := st.InTx(ctx, func(tx pgx.Tx) error {
			var err error
			d, err = store.CreateDestination(ctx, tx, user, "irc", nick)
			return err
		})
		if err != nil {
			t.Fatal(err)
		}
		return d
	}
	a := mk(u1.ID, "Nick[1]")
	mk(u2.ID, "nick{1}")
	mk(u2.ID, "other")
	ds, err := st.DestinationsAt(ctx, fmn.KindIRC, "NICK{1}")
	if err != nil || len(ds) != 2 {
		t.Fatalf("IRCDestinations: %d %v", len(ds), err)
	}
	code, err := st.NewConfirmCode(ctx, a.ID)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := st.ConfirmAt(ctx, fmn.KindIRC, "other", code); err == nil {
		t.Fatal("another nick confirmed with alice's code")
	}
	d, err := st.ConfirmAt(ctx, fmn.KindIRC, "nick{1}", code)
	if err != nil || d.ID != a.ID || !d.Confirmed {
		t.Fatalf("ConfirmIRC: %+v %v", d, err)
	}
	if _, err := st.ConfirmAt(ctx, fmn.KindIRC, "nick{1}", code); err == nil {
		t.Fatal("a code worked twice")
	}
	until := time.Now().Add(time.Hour)
	if n, err := st.MuteAt(ctx, fmn.KindIRC, "NICK[1]", &until); err != nil || n != 2 {
		t.Fatalf("MuteIRC: %d %v", n, err)
	}
	if n, err := st.StopAt(ctx, fmn.KindIRC, "nick[1]", "stopped"); err != nil || n != 2 {
		t.Fatalf("StopIRC: %d %v", n, err)
	}
	if n, err := st.StopAt(ctx, fmn.KindIRC, "nick[1]", "stopped"); err != nil || n != 0 {
		t.Fatalf("StopIRC twice: %d %v", n, err)
	}
	if d, _ := st.DestinationByID(ctx, a.ID); d.Enabled || d.MutedUntil == nil {
		t.Fatalf("after mute and stop: %+v", d)
	}
}

// TestRecordConfirmSend: the one confirmation limiter counts per channel
// and address, per user, and per channel a minute, and refuses without
// counting.
func TestRecordConfirmSend(t *testing.T) {
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
	l := store.ConfirmLimit{PerAddress: 2, Window: time.Hour, PerUser: 4, PerMinute: 3}
	now := time.Now()
	record := func(user int64, kind fmn.Kind, key string) error {
		return st.InTx(ctx, func(tx pgx.Tx) error { return store.RecordConfirmSend(ctx, tx, user, kind, key, l, now) })
	}
	for i := range 2 {
		if err := record(alice.ID, fmn.KindIRC, "carol"); err != nil {
			t.Fatalf("confirmation %d: %v", i, err)
		}
	}
	if err := record(bob.ID, fmn.KindIRC, "carol"); !errors.Is(err, apperr.ErrRateLimited) {
		t.Fatalf("third to one address, whoever asks: %v", err)
	}
	if err := record(bob.ID, fmn.KindIRC, "dave"); err != nil {
		t.Fatalf("another address: %v", err)
	}
	if err := record(bob.ID, fmn.KindIRC, "erin"); !errors.Is(err, apperr.ErrRateLimited) {
		t.Fatalf("fourth on the channel in a minute: %v", err)
	}
	for _, k := range []string{"carol", "dave"} {
		if err := record(alice.ID, fmn.KindMatrix, k); err != nil {
			t.Fatalf("another channel: %v", err)
		}
	}
	if err := record(alice.ID, fmn.KindEmail, "x@example.org"); !errors.Is(err, apperr.ErrRateLimited) {
		t.Fatalf("fifth asked by one user in an hour: %v", err)
	}
}

// TestHoldLock: one holder at a time; a holder whose connection dies is
// told, and the lock is free again.
func TestHoldLock(t *testing.T) {
	t.Parallel()
	st := storetest.New(t)
	ctx := context.Background()
	_, release, err := st.HoldLock(ctx, store.LockIRCBot, 50*time.Millisecond)
	if err != nil {
		t.Fatal(err)
	}
	wctx, cancel := context.WithTimeout(ctx, 300*time.Millisecond)
	defer cancel()
	if _, _, err := st.HoldLock(wctx, store.LockIRCBot, 50*time.Millisecond); err == nil {
		t.Fatal("a second holder got the lock")
	}
	release()
	lost, release, err := st.HoldLock(ctx, store.LockIRCBot, 50*time.Millisecond)
	if err != nil {
		t.Fatalf("lock not free after release: %v", err)
	}
	defer release()
	// Kill the holder's session, as a database restart would.
	if _, err := st.Pool.Exec(ctx, `SELECT pg_terminate_backend(pid) FROM pg_locks
		WHERE locktype = 'advisory' AND objid = $1 AND granted AND pid <> pg_backend_pid()
		  AND database = (SELECT oid FROM pg_database WHERE datname = current_database())`, store.LockIRCBot&0xffffffff); err != nil {
		t.Fatal(err)
	}
	select {
	case <-lost:
	case <-time.After(10 * time.Second):
		t.Fatal("the holder was not told its lock is gone")
	}
	l2, r2, err := st.HoldLock(ctx, store.LockIRCBot, 50*time.Millisecond)
	if err != nil {
		t.Fatal(err)
	}
	r2()
	_ = l2
}

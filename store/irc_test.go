package store_test

import (
	"context"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"fmn/store"
	"fmn/store/storetest"
)

func TestFoldNick(t *testing.T) {
	t.Parallel()
	if got := store.FoldNick(`Alice[Away]\~`); got != `alice{away}|^` {
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
	mk := func(user int64, nick string) store.Destination {
		var d store.Destination
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
	ds, err := st.IRCDestinations(ctx, "NICK{1}")
	if err != nil || len(ds) != 2 {
		t.Fatalf("IRCDestinations: %d %v", len(ds), err)
	}
	code, err := st.NewConfirmCode(ctx, a.ID)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := st.ConfirmIRC(ctx, "other", code); err == nil {
		t.Fatal("another nick confirmed with alice's code")
	}
	d, err := st.ConfirmIRC(ctx, "nick{1}", code)
	if err != nil || d.ID != a.ID || !d.Confirmed {
		t.Fatalf("ConfirmIRC: %+v %v", d, err)
	}
	if _, err := st.ConfirmIRC(ctx, "nick{1}", code); err == nil {
		t.Fatal("a code worked twice")
	}
	until := time.Now().Add(time.Hour)
	if n, err := st.MuteIRC(ctx, "NICK[1]", &until); err != nil || n != 2 {
		t.Fatalf("MuteIRC: %d %v", n, err)
	}
	if n, err := st.StopIRC(ctx, "nick[1]"); err != nil || n != 2 {
		t.Fatalf("StopIRC: %d %v", n, err)
	}
	if n, err := st.StopIRC(ctx, "nick[1]"); err != nil || n != 0 {
		t.Fatalf("StopIRC twice: %d %v", n, err)
	}
	if d, _ := st.DestinationByID(ctx, a.ID); d.Enabled || d.MutedUntil == nil {
		t.Fatalf("after mute and stop: %+v", d)
	}
}

func TestAllowConfirm(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	st := storetest.New(t)
	l := store.ConfirmLimit{PerAddress: 2, Window: time.Hour, PerMinute: 3}
	for i := range 2 {
		if wait, err := st.AllowConfirm(ctx, "irc", "alice", l); err != nil || wait != 0 {
			t.Fatalf("confirmation %d: wait %v, %v", i, wait, err)
		}
	}
	if wait, err := st.AllowConfirm(ctx, "irc", "alice", l); err != nil || wait < 59*time.Minute {
		t.Fatalf("third to one address: wait %v, %v", wait, err)
	}
	if wait, _ := st.AllowConfirm(ctx, "irc", "bob", l); wait != 0 {
		t.Fatalf("another address waits %v", wait)
	}
	if wait, _ := st.AllowConfirm(ctx, "irc", "carol", l); wait <= 0 || wait > time.Minute {
		t.Fatalf("fourth on the channel in a minute: wait %v", wait)
	}
	if wait, _ := st.AllowConfirm(ctx, "push", "carol", l); wait != 0 {
		t.Fatalf("another channel waits %v", wait)
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

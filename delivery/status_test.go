package delivery_test

import (
	"context"
	"io"
	"log/slog"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"

	"fmn"
	"fmn/delivery"
	"fmn/store"
	"fmn/store/storetest"
)

// TestFinding12StatusOnlyOwnConfirmations: a nick's "status" tells of the
// destinations that nick confirmed itself, never of users who merely
// added it (before, it named every fmn user sending, or trying to send,
// to the nick).
func TestFinding12StatusOnlyOwnConfirmations(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	st := storetest.New(t)
	alice, err := st.EnsureUser(ctx, "alice", "")
	if err != nil {
		t.Fatal(err)
	}
	mallory, err := st.EnsureUser(ctx, "mallory", "")
	if err != nil {
		t.Fatal(err)
	}
	add := func(userID int64) fmn.Destination {
		var d fmn.Destination
		err := st.InTx(ctx, func(tx pgx.Tx) error {
			var err error
			d, err = store.CreateDestination(ctx, tx, userID, fmn.KindIRC, "nick")
			return err
		})
		if err != nil {
			t.Fatal(err)
		}
		return d
	}
	mine := add(alice.ID)
	add(mallory.ID) // never confirmed by the nick
	code, err := st.NewConfirmCode(ctx, mine.ID)
	if err != nil {
		t.Fatal(err)
	}
	c := &delivery.Commands{Kind: fmn.KindIRC, Store: st, BaseURL: "http://fmn.test", Log: slog.New(slog.NewTextHandler(io.Discard, nil))}
	if got := strings.Join(c.Reply(ctx, "nick", "status"), " "); strings.Contains(got, "mallory") || strings.Contains(got, "alice") {
		t.Fatalf("status before any confirmation: %q", got)
	}
	if got := strings.Join(c.Reply(ctx, "nick", "confirm "+code), " "); !strings.Contains(got, "Confirmed") {
		t.Fatalf("confirm: %q", got)
	}
	got := strings.Join(c.Reply(ctx, "nick", "status"), " ")
	if !strings.Contains(got, "For alice: active") || strings.Contains(got, "mallory") || strings.Contains(got, "more users") {
		t.Fatalf("status: %q, want alice's only", got)
	}
}

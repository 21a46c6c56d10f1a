package pgcluster

import (
	"context"
	"log/slog"
	"os"
	"testing"
)

// TestReleaseLastOneOut: two processes' worth of users of one private
// cluster. Whichever leaves first leaves the server running for the
// other, even the one that started it; the last one out stops it, since
// fmn started it.
func TestReleaseLastOneOut(t *testing.T) {
	t.Parallel()
	if _, err := FindBinDir(); err != nil {
		t.Fatal(err) // make test installs them (scripts/ensure-postgres.sh)
	}
	ctx := context.Background()
	log := slog.New(slog.DiscardHandler)
	dir, err := os.MkdirTemp("", "fmn-pgcluster-")
	if err != nil {
		t.Fatal(err)
	}
	os.Chmod(dir, 0o711) // reachable by the postgres user under root
	t.Cleanup(func() { StopDir(ctx, dir, log); os.RemoveAll(dir) })

	starter, err := Start(ctx, dir, Options{}, log)
	if err != nil {
		t.Fatal(err)
	}
	joiner, err := Start(ctx, dir, Options{}, log)
	if err != nil {
		t.Fatal(err)
	}
	if !starter.Started || joiner.Started {
		t.Fatalf("Started: first %v, second %v; want true, false", starter.Started, joiner.Started)
	}
	if err := starter.Release(ctx); err != nil {
		t.Fatal(err)
	}
	if up, _ := Running(ctx, dir, log); !up {
		t.Fatal("the starter stopped the cluster while another user held it")
	}
	if err := joiner.Release(ctx); err != nil {
		t.Fatal(err)
	}
	if up, _ := Running(ctx, dir, log); up {
		t.Fatal("the last user left an fmn-started cluster running")
	}
}

package web

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"fmn/store"
)

// TestAdminShowsRecordedGaps: gaps the consumer recorded in bus_gaps (by
// any instance) are listed on the admin page.
func TestAdminShowsRecordedGaps(t *testing.T) {
	t.Parallel()
	s := newSite(t, AuthConfig{Admins: []string{"pat@example.org"}}, "")
	c := s.signIn("pat@example.org")
	err := s.st.InTx(context.Background(), func(tx pgx.Tx) error {
		return store.InsertBusGaps(context.Background(), tx, []store.BusGap{
			{Endpoint: "tcp://pub.example:9940", AfterSeq: 7, BeforeSeq: 12, Missed: 4, Error: "no replay endpoint"},
		})
	})
	if err != nil {
		t.Fatal(err)
	}
	b := body(t, s.get(c, "/admin"))
	for _, want := range []string{"tcp://pub.example:9940", "7 and 12", "no replay endpoint", `<span class="badge warn">4</span>`} {
		if !strings.Contains(b, want) {
			t.Fatalf("admin page lacks %q:\n%s", want, b)
		}
	}
}

// TestAdminShowsDistgit: the last dist-git refresh, its time and its
// error are on the admin page.
func TestAdminShowsDistgit(t *testing.T) {
	t.Parallel()
	s := newSite(t, AuthConfig{Admins: []string{"pat@example.org"}}, "")
	c := s.signIn("pat@example.org")
	ctx := context.Background()
	if b := body(t, s.get(c, "/admin")); !strings.Contains(b, `id="distgit"`) || !strings.Contains(b, "never") {
		t.Fatalf("admin page before any refresh:\n%s", b)
	}
	now := time.Now()
	if err := s.st.SetDistgitRun(ctx, now.Add(-time.Second), &now, 12, 1, "user alice: dist-git /api/0/projects: 503 Service Unavailable"); err != nil {
		t.Fatal(err)
	}
	b := body(t, s.get(c, "/admin"))
	for _, want := range []string{"12 read, 1 failed", `id="distgit-error"`, "503 Service Unavailable"} {
		if !strings.Contains(b, want) {
			t.Fatalf("admin page lacks %q:\n%s", want, b)
		}
	}
}

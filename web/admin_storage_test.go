package web

import (
	"context"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"fmn/rules/meta"
	"fmn/store"
)

// TestAdminShowsStorage: the admin page shows how large the growing tables
// are, how many days the message log holds, and its oldest message (issue
// 14, retention).
func TestAdminShowsStorage(t *testing.T) {
	t.Parallel()
	s := newSite(t, AuthConfig{Admins: []string{"pat@example.org"}}, "")
	c := s.signIn("pat@example.org")
	ctx := context.Background()
	old := time.Date(2026, 3, 4, 12, 0, 0, 0, time.UTC)
	if err := s.st.MakePartitions(ctx, old, old); err != nil {
		t.Fatal(err)
	}
	err := s.st.InTx(ctx, func(tx pgx.Tx) error {
		ids, err := store.InsertMessages(ctx, tx, []store.NewMessage{{MsgID: "2026-admin", Meta: meta.Metadata{Topic: "t"}, Envelope: []byte(`{}`)}})
		if err != nil {
			return err
		}
		_, err = tx.Exec(ctx, `UPDATE messages SET received_at = $2 WHERE id = $1`, ids[0], old)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	b := body(t, s.get(c, "/admin"))
	for _, want := range []string{"<h2>Storage</h2>", "<code>messages</code>", "<code>notifications</code>", "<code>digests</code>",
		"<code>river_job</code>", "Oldest message: 2026-03-04 12:00"} {
		if !strings.Contains(b, want) {
			t.Fatalf("admin page lacks %q:\n%s", want, b)
		}
	}
	row := regexp.MustCompile(`<td><code>messages</code></td><td>([0-9.]+ [KMG]iB)</td><td>\d+</td><td>(\d+)</td>`).FindStringSubmatch(b)
	if row == nil {
		t.Fatalf("no size and partition count for messages:\n%s", b)
	}
	if row[2] == "0" || row[2] == "1" {
		t.Fatalf("%s daily partitions", row[2])
	}
}

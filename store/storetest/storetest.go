// Package storetest gives each test a database of its own on a real
// PostgreSQL: a fresh copy of a migrated template, dropped when the test ends.
// Copying a template takes milliseconds, so every test can run in parallel on
// a clean schema.
package storetest

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"net/url"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"fmn"
	"fmn/migrations"
	"fmn/rules"
	"fmn/store"
)

// EnvVar names the server the tests use (any database on it; the tests
// create their own). `make test` starts a throwaway cluster and sets it.
const EnvVar = "FMN_TEST_DATABASE_URL"

var (
	templateOnce sync.Once
	templateName string
	templateErr  error
	counter      atomic.Int64
)

// AdminURL returns the server URL or fails the test with what to do.
func AdminURL(t testing.TB) string {
	u := os.Getenv(EnvVar)
	if u == "" {
		t.Fatalf("%s is not set: run `make test` (it starts a private PostgreSQL), or set it to a PostgreSQL server where this user may create databases", EnvVar)
	}
	return u
}

// withDB returns u pointing at database name.
func withDB(t testing.TB, u, name string) string {
	p, err := url.Parse(u)
	if err != nil {
		t.Fatalf("parse %s: %v", EnvVar, err)
	}
	p.Path = "/" + name
	return p.String()
}

// URL creates a fresh migrated database for the test and returns its URL.
func URL(t testing.TB) string {
	t.Helper()
	admin := AdminURL(t)
	templateOnce.Do(func() { templateName, templateErr = ensureTemplate(admin) })
	if templateErr != nil {
		t.Fatalf("prepare template database: %v", templateErr)
	}
	ctx := context.Background()
	name := fmt.Sprintf("fmn_test_%d_%d_%d", os.Getpid(), time.Now().UnixNano()%1e6, counter.Add(1))
	conn, err := pgx.Connect(ctx, admin)
	if err != nil {
		t.Fatalf("connect to test server: %v", err)
	}
	defer conn.Close(ctx)
	// CREATE DATABASE from a template fails while another session is
	// connected to the template; retry briefly if a sibling process is.
	for i := 0; ; i++ {
		_, err = conn.Exec(ctx, fmt.Sprintf("CREATE DATABASE %s TEMPLATE %s", name, templateName))
		if err == nil || i > 50 || !strings.Contains(err.Error(), "being accessed by other users") {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	if err != nil {
		t.Fatalf("create test database: %v", err)
	}
	t.Cleanup(func() {
		c, err := pgx.Connect(context.Background(), admin)
		if err != nil {
			return
		}
		defer c.Close(context.Background())
		c.Exec(context.Background(), fmt.Sprintf("DROP DATABASE IF EXISTS %s WITH (FORCE)", name))
	})
	return withDB(t, admin, name)
}

// New returns a Store on a fresh database, closed when the test ends.
func New(t testing.TB) *store.Store {
	t.Helper()
	st, err := store.Open(context.Background(), URL(t))
	if err != nil {
		t.Fatalf("open test database: %v", err)
	}
	t.Cleanup(st.Close)
	return st
}

// ensureTemplate creates the migrated template once per schema: its name
// carries a hash of the migrations, so a changed migration gets a new one.
// An advisory lock keeps test processes of other packages from racing.
func ensureTemplate(admin string) (string, error) {
	h := sha256.New()
	files, _ := fs.Glob(migrations.FS, "*.sql")
	for _, f := range files {
		b, _ := fs.ReadFile(migrations.FS, f)
		h.Write([]byte(f))
		h.Write(b)
	}
	// The day is in the name too: the message log's partitions are made
	// from the day before the template's to a week after
	// (store.PartitionsAhead), so a template serves for a day.
	name := "fmn_tmpl_" + hex.EncodeToString(h.Sum(nil))[:16] + "_" + time.Now().UTC().Format("20060102")
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, admin)
	if err != nil {
		return "", fmt.Errorf("connect: %w", err)
	}
	defer conn.Close(ctx)
	if _, err := conn.Exec(ctx, "SELECT pg_advisory_lock(7305)"); err != nil {
		return "", err
	}
	defer conn.Exec(ctx, "SELECT pg_advisory_unlock(7305)")
	var exists bool
	if err := conn.QueryRow(ctx, "SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = $1)", name).Scan(&exists); err != nil {
		return "", err
	}
	if exists {
		return name, nil
	}
	building := name + "_building"
	conn.Exec(ctx, "DROP DATABASE IF EXISTS "+building+" WITH (FORCE)")
	if _, err := conn.Exec(ctx, "CREATE DATABASE "+building); err != nil {
		return "", err
	}
	u, _ := url.Parse(admin)
	u.Path = "/" + building
	st, err := store.Open(ctx, u.String())
	if err != nil {
		return "", err
	}
	err = store.Migrate(ctx, st.Pool, slog.New(slog.NewTextHandler(io.Discard, nil)))
	st.Close()
	if err != nil {
		return "", fmt.Errorf("migrate template: %w", err)
	}
	if _, err := conn.Exec(ctx, "ALTER DATABASE "+building+" RENAME TO "+name); err != nil {
		return "", err
	}
	// This schema's templates of earlier days (but yesterday's, which a
	// test process started before midnight may still be copying) go.
	prefix := name[:len(name)-len("20060102")]
	yesterday := prefix + time.Now().UTC().AddDate(0, 0, -1).Format("20060102")
	rows, err := conn.Query(ctx, "SELECT datname FROM pg_database WHERE starts_with(datname, $1) AND datname NOT IN ($2, $3)", prefix, name, yesterday)
	if err == nil {
		old, _ := pgx.CollectRows(rows, pgx.RowTo[string])
		for _, db := range old {
			conn.Exec(ctx, "DROP DATABASE IF EXISTS "+pgx.Identifier{db}.Sanitize())
		}
	}
	return name, nil
}

// ConfirmedDestination creates an email destination for the user and
// confirms it the way its owner would, with the mailed code; tests of what
// happens after confirmation start here.
func ConfirmedDestination(t testing.TB, st *store.Store, userID int64, addr string) int64 {
	t.Helper()
	ctx := context.Background()
	var d fmn.Destination
	err := st.InTx(ctx, func(tx pgx.Tx) error {
		var err error
		d, err = store.CreateDestination(ctx, tx, userID, "email", addr)
		return err
	})
	if err != nil {
		t.Fatalf("create destination: %v", err)
	}
	code, err := st.NewConfirmCode(ctx, d.ID)
	if err != nil {
		t.Fatalf("make confirmation code: %v", err)
	}
	if _, err := st.ConfirmDestination(ctx, userID, d.ID, code); err != nil {
		t.Fatalf("confirm destination: %v", err)
	}
	return d.ID
}

// Follower creates user name (address name@example.org, confirmed) with
// one enabled rule tracking track to that address, and returns the
// destination's id.
func Follower(t testing.TB, st *store.Store, name string, track rules.Track) int64 {
	t.Helper()
	ctx := context.Background()
	u, err := st.EnsureUser(ctx, name, name+"@example.org")
	if err != nil {
		t.Fatalf("create user: %v", err)
	}
	dest := ConfirmedDestination(t, st, u.ID, name+"@example.org")
	if _, err := st.SaveRule(ctx, rules.Rule{UserID: u.ID, Name: "follow", Enabled: true, Track: track, Destinations: []int64{dest}}); err != nil {
		t.Fatalf("save rule: %v", err)
	}
	return dest
}

// Package pgcluster runs a private PostgreSQL cluster in a folder, using the
// server binaries installed on the machine. It is fmn's embedded default:
// without FMN_DATABASE_URL, `fmn serve` keeps its data here, so trying fmn
// needs no database setup.
package pgcluster

import (
	"context"
	"errors"
	"fmt"
	"hash/fnv"
	"log/slog"
	"net/url"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5"
)

// Cluster is a running private cluster.
type Cluster struct {
	// URL connects to the cluster's "fmn" database over its Unix socket.
	URL string
	// Started says that Start started the server, rather than finding it
	// running (another fmn process started it and may still need it).
	Started bool

	dir  string
	hold *pgx.Conn // holds inUseLock shared while this process uses the cluster

	bin    string
	pgdata string
	cred   *syscall.Credential
	log    *slog.Logger
}

// ErrNoPostgres says the server binaries are missing, in words for the user.
var ErrNoPostgres = errors.New("PostgreSQL server binaries (initdb, pg_ctl) not found: install them (Debian: apt-get install postgresql) or set FMN_DATABASE_URL to an existing database")

// FindBinDir returns the folder holding initdb and pg_ctl: from PATH, else
// the newest Debian-style /usr/lib/postgresql/N/bin.
func FindBinDir() (string, error) {
	if p, err := exec.LookPath("initdb"); err == nil {
		if _, err := exec.LookPath("pg_ctl"); err == nil {
			// Debian links these into /usr/local/bin or /usr/bin; resolve
			// so that postgres itself is found beside them.
			if real, err := filepath.EvalSymlinks(p); err == nil {
				p = real
			}
			return filepath.Dir(p), nil
		}
	}
	dirs, _ := filepath.Glob("/usr/lib/postgresql/*/bin")
	sort.Slice(dirs, func(i, j int) bool { return version(dirs[i]) > version(dirs[j]) })
	for _, d := range dirs {
		if _, err := os.Stat(filepath.Join(d, "initdb")); err == nil {
			return d, nil
		}
	}
	return "", ErrNoPostgres
}

func version(binDir string) int {
	v, _ := strconv.Atoi(filepath.Base(filepath.Dir(binDir)))
	return v
}

// Options tune a cluster.
type Options struct {
	// Port, when not 0, makes the server listen on 127.0.0.1:Port as well as
	// on its socket (test clusters shared by several test processes).
	Port int
	// Throwaway turns off durability (fsync and friends) for test clusters,
	// whose data nobody keeps: it makes the suite several times faster.
	Throwaway bool
}

// Start initialises the cluster in dir on first use and starts it (or finds
// it running: Started tells which), and marks it in use by this process
// until Release. PostgreSQL refuses to run as root, so under root the
// server runs as the "postgres" system user that Debian's package creates.
func Start(ctx context.Context, dir string, opt Options, log *slog.Logger) (*Cluster, error) {
	bin, err := FindBinDir()
	if err != nil {
		return nil, err
	}
	dir, err = filepath.Abs(dir)
	if err != nil {
		return nil, fmt.Errorf("data folder: %w", err)
	}
	if os.Geteuid() == 0 {
		if p := closedAncestor(dir); p != "" {
			// The server runs as "postgres", which cannot enter p (a
			// clone under /root, say). Keep the cluster where it can.
			moved := relocated(dir)
			log.Info("the postgres user cannot enter the data folder; keeping the cluster elsewhere", "closed", p, "dir", moved)
			dir = moved
		}
	}
	c := &Cluster{bin: bin, dir: dir, pgdata: filepath.Join(dir, "pgdata"), log: log}
	sock := filepath.Join(dir, "pgsock")
	if len(sock) > 90 {
		return nil, fmt.Errorf("data folder path %s is too long for a Unix socket; use a shorter FMN_DATA_DIR", dir)
	}
	if os.Geteuid() == 0 {
		u, err := user.Lookup("postgres")
		if err != nil {
			return nil, errors.New("running as root, but there is no 'postgres' system user to run the database server as; run fmn as a normal user or install Debian's postgresql package")
		}
		uid, _ := strconv.Atoi(u.Uid)
		gid, _ := strconv.Atoi(u.Gid)
		c.cred = &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid)}
	}
	if err := os.MkdirAll(filepath.Dir(dir), 0o755); err != nil {
		return nil, fmt.Errorf("create %s: %w", filepath.Dir(dir), err)
	}
	for _, d := range []string{dir, c.pgdata, sock} {
		if err := os.MkdirAll(d, 0o700); err != nil {
			return nil, fmt.Errorf("create %s: %w", d, err)
		}
	}
	if c.cred != nil {
		// The server user must reach its folders; dir itself stays
		// root's but is opened for traversal only.
		if err := os.Chmod(dir, 0o711); err != nil {
			return nil, fmt.Errorf("open data folder for the postgres user: %w", err)
		}
		for _, d := range []string{c.pgdata, sock} {
			if err := os.Chown(d, int(c.cred.Uid), int(c.cred.Gid)); err != nil {
				return nil, fmt.Errorf("give %s to the postgres user: %w", d, err)
			}
		}
	}
	if _, err := os.Stat(filepath.Join(c.pgdata, "PG_VERSION")); errors.Is(err, os.ErrNotExist) {
		log.Info("initialising private PostgreSQL cluster", "dir", c.pgdata)
		if err := c.run(ctx, "initdb", "-D", c.pgdata, "-U", "fmn", "--auth=trust", "-E", "UTF8", "--no-locale"); err != nil {
			return nil, fmt.Errorf("initdb: %w", err)
		}
	}
	if !c.running(ctx) {
		listen := ""
		if opt.Port != 0 {
			listen = fmt.Sprintf("127.0.0.1' -c port='%d", opt.Port)
		}
		opts := fmt.Sprintf("-c listen_addresses='%s' -c unix_socket_directories='%s' -c max_connections=300", listen, sock)
		if opt.Throwaway {
			opts += " -c fsync=off -c synchronous_commit=off -c full_page_writes=off"
		}
		if err := c.run(ctx, "pg_ctl", "-D", c.pgdata, "-l", filepath.Join(c.pgdata, "server.log"), "-o", opts, "-w", "-t", "60", "start"); err != nil {
			return nil, fmt.Errorf("start PostgreSQL (see %s): %w", filepath.Join(c.pgdata, "server.log"), err)
		}
		c.Started = true
	}
	dbURL := func(db string) string { return "postgres://fmn@/" + db + "?host=" + url.QueryEscape(sock) }
	if opt.Port != 0 {
		dbURL = func(db string) string {
			return fmt.Sprintf("postgres://fmn@127.0.0.1:%d/%s?sslmode=disable", opt.Port, db)
		}
	}
	if err := ensureDB(ctx, dbURL("postgres"), "fmn"); err != nil {
		return nil, err
	}
	c.URL = dbURL("fmn")
	if err := c.markInUse(ctx); err != nil {
		return nil, err
	}
	return c, nil
}

// inUseLock is the advisory lock every fmn process using a private cluster
// holds shared, on a connection of its own, until Release: the last one to
// leave can tell that it is the last ("fmnC" in ASCII).
const inUseLock = 0x666d6e43

// startedFile, in the cluster's folder, holds the start time of the server
// an fmn process started (pg_postmaster_start_time), so that the last fmn
// process to leave stops that server and never one somebody else started.
const startedFile = "started-by-fmn"

// markInUse takes the shared in-use lock and, when this process started
// the server, records the server's start time.
func (c *Cluster) markInUse(ctx context.Context) error {
	conn, err := pgx.Connect(ctx, c.URL)
	if err != nil {
		return fmt.Errorf("connect to private cluster: %w", err)
	}
	var started string
	if err := conn.QueryRow(ctx, `SELECT pg_advisory_lock_shared($1), pg_postmaster_start_time()::text`, inUseLock).Scan(nil, &started); err != nil {
		conn.Close(ctx)
		return fmt.Errorf("mark private cluster in use: %w", err)
	}
	if c.Started {
		if err := os.WriteFile(filepath.Join(c.dir, startedFile), []byte(started), 0o644); err != nil {
			conn.Close(ctx)
			return fmt.Errorf("record private cluster start: %w", err)
		}
	}
	c.hold = conn
	return nil
}

func ensureDB(ctx context.Context, adminURL, name string) error {
	conn, err := pgx.Connect(ctx, adminURL)
	if err != nil {
		return fmt.Errorf("connect to private cluster: %w", err)
	}
	defer conn.Close(ctx)
	var exists bool
	if err := conn.QueryRow(ctx, "SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = $1)", name).Scan(&exists); err != nil {
		return fmt.Errorf("look up database: %w", err)
	}
	if !exists {
		if _, err := conn.Exec(ctx, "CREATE DATABASE "+pgx.Identifier{name}.Sanitize()); err != nil {
			return fmt.Errorf("create database %s: %w", name, err)
		}
	}
	return nil
}

// StopDir stops the cluster kept in dir, if one runs.
func StopDir(ctx context.Context, dir string, log *slog.Logger) error {
	c, err := existing(dir, log)
	if err != nil {
		return err
	}
	if !c.running(ctx) {
		return nil
	}
	return c.Stop(ctx)
}

// Running reports whether the cluster kept in dir runs.
func Running(ctx context.Context, dir string, log *slog.Logger) (bool, error) {
	c, err := existing(dir, log)
	if err != nil {
		return false, err
	}
	return c.running(ctx), nil
}

// existing describes the cluster kept in dir without starting it.
func existing(dir string, log *slog.Logger) (*Cluster, error) {
	bin, err := FindBinDir()
	if err != nil {
		return nil, err
	}
	dir, _ = filepath.Abs(dir)
	if os.Geteuid() == 0 && closedAncestor(dir) != "" {
		dir = relocated(dir)
	}
	c := &Cluster{bin: bin, pgdata: filepath.Join(dir, "pgdata"), log: log}
	if os.Geteuid() == 0 {
		if st, err := os.Stat(c.pgdata); err == nil {
			if sys, ok := st.Sys().(*syscall.Stat_t); ok {
				c.cred = &syscall.Credential{Uid: sys.Uid, Gid: sys.Gid}
			}
		}
	}
	return c, nil
}

func (c *Cluster) running(ctx context.Context) bool {
	return c.run(ctx, "pg_ctl", "-D", c.pgdata, "status") == nil
}

// Stop shuts the server down, letting running transactions end first.
func (c *Cluster) Stop(ctx context.Context) error {
	return c.run(ctx, "pg_ctl", "-D", c.pgdata, "-m", "fast", "-w", "stop")
}

// Release is what a process that opened the cluster with Start does when it
// is done with it (after closing its own connections). The server is
// stopped only by the last fmn process using it, and only when an fmn
// process started it: a `fmn token create` run in a second shell beside
// `make run` leaves make run's database alone, `make run`'s Ctrl-C stops
// the database it started, and a `make run` that came up while a tool had
// just started the cluster keeps it until it stops itself. A server
// somebody started by hand is never stopped.
func (c *Cluster) Release(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	if c.hold == nil || !c.running(ctx) {
		return nil
	}
	defer c.hold.Close(ctx)
	var last bool
	var started string
	err := c.hold.QueryRow(ctx, `SELECT pg_advisory_unlock_shared($1) AND pg_try_advisory_lock($1), pg_postmaster_start_time()::text`,
		inUseLock).Scan(&last, &started)
	if err != nil {
		return fmt.Errorf("release private cluster: %w", err)
	}
	if !last {
		c.log.Info("leaving the private PostgreSQL running: another fmn process uses it")
		return nil
	}
	ours, _ := os.ReadFile(filepath.Join(c.dir, startedFile))
	if string(ours) != started {
		return nil // started by someone else: theirs to stop
	}
	c.hold.Close(ctx)
	if err := c.Stop(ctx); err != nil {
		return err
	}
	_ = os.Remove(filepath.Join(c.dir, startedFile))
	return nil
}

func (c *Cluster) run(ctx context.Context, name string, args ...string) error {
	cmd := exec.CommandContext(ctx, filepath.Join(c.bin, name), args...)
	cmd.Dir = "/"
	if c.cred != nil {
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: c.cred}
	}
	out, err := cmd.CombinedOutput()
	if err != nil {
		return fmt.Errorf("%s: %w: %s", name, err, strings.TrimSpace(lastLines(string(out), 5)))
	}
	return nil
}

func lastLines(s string, n int) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// relocated is where a cluster for dir lives when dir is out of the server
// user's reach: a stable per-folder name under /var/tmp, which survives
// reboots.
func relocated(dir string) string {
	h := fnv.New32a()
	h.Write([]byte(dir))
	return fmt.Sprintf("/var/tmp/fmn-postgres-%08x", h.Sum32())
}

// closedAncestor returns the first folder above dir that other users cannot
// traverse, or "".
func closedAncestor(dir string) string {
	for p := filepath.Dir(dir); ; p = filepath.Dir(p) {
		if st, err := os.Stat(p); err == nil && st.Mode().Perm()&0o001 == 0 {
			return p
		}
		if p == filepath.Dir(p) {
			return ""
		}
	}
}

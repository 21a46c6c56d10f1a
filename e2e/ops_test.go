package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"fmn/consumer"
	"fmn/pgcluster"
	"fmn/store/storetest"
)

// privateDataDir makes a data folder for a service on the embedded default
// (its own PostgreSQL cluster), reachable by the postgres user when the
// tests run as root, and stops and removes that cluster when the test ends.
func privateDataDir(t *testing.T) string {
	t.Helper()
	if _, err := pgcluster.FindBinDir(); err != nil {
		t.Fatal(err)
	}
	dir, err := os.MkdirTemp("", "fmn-e2e-pg-")
	if err != nil {
		t.Fatal(err)
	}
	// MkdirTemp makes the folder 0700; the server runs as "postgres"
	// under root and must traverse it (pgcluster would move the cluster
	// elsewhere otherwise).
	if err := os.Chmod(dir, 0o711); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = pgcluster.StopDir(context.Background(), filepath.Join(dir, "postgres"), slog.New(slog.DiscardHandler))
		os.RemoveAll(dir)
	})
	return dir
}

// clusterRunning reports whether the private cluster in dataDir runs.
func clusterRunning(t *testing.T, dataDir string) bool {
	t.Helper()
	up, err := pgcluster.Running(context.Background(), filepath.Join(dataDir, "postgres"), slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	return up
}

// tool runs an fmn command with the service's environment.
func (p *proc) tool(args ...string) string {
	p.t.Helper()
	cmd := exec.Command(fmnBin, args...)
	cmd.Env = p.env
	var out, errOut bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errOut
	if err := cmd.Run(); err != nil {
		p.t.Fatalf("fmn %s: %v\n%s", strings.Join(args, " "), err, errOut.String())
	}
	return out.String()
}

func privateEnv(dataDir string) []string {
	return []string{"FMN_DATABASE_URL=", "FMN_DATA_DIR=" + dataDir,
		"FMN_DEMO=true", "FMN_DEMO_CORPUS=../testdata/fedmsg-meta.jsonl", "FMN_DEMO_RATE=50"}
}

// TestToolsBesideMakeRun is issue 14's first finding: `fmn token create`
// and `fmn migrate`, run in a second shell while `make run` runs, used to
// stop make run's private PostgreSQL on exit. Now a tool leaves a cluster it
// found running alone, and stops one it started itself.
func TestToolsBesideMakeRun(t *testing.T) {
	t.Parallel()
	dir := privateDataDir(t)

	// Alone, a tool starts the cluster and stops it again.
	alone := exec.Command(fmnBin, "migrate")
	alone.Env = append(os.Environ(), "FMN_DATABASE_URL=", "FMN_DATA_DIR="+dir)
	if out, err := alone.CombinedOutput(); err != nil {
		t.Fatalf("fmn migrate on a fresh data folder: %v\n%s", err, out)
	}
	if clusterRunning(t, dir) {
		t.Fatal("fmn migrate left the cluster it started running")
	}

	p := launchEnv(t, privateEnv(dir)...)
	eventually(t, 60*time.Second, "the service ready", func() bool { return p.ready().Status == "ready" })

	token := strings.TrimSpace(p.tool("token", "create", "-user", "alice", "-email", "alice@example.org"))
	p.tool("migrate")
	if r := p.ready(); r.Status != "ready" || r.Database != "ok" {
		t.Fatalf("/readyz after the tools ran: %+v", r)
	}
	req, _ := http.NewRequest("GET", p.base+"/api/v1/me", nil)
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("GET /api/v1/me with the new token: %d", resp.StatusCode)
	}

	// Ctrl-C stops make run and, since it started it, its database.
	p.stop()
	if clusterRunning(t, dir) {
		t.Fatal("the cluster still runs after the service that started it stopped")
	}
}

// TestFirstStopOfFreshCluster: a newcomer's first Ctrl-C of make run stops
// a cluster that initdb and the migrations have just written, and its
// shutdown checkpoint takes more than a second. The service used to give up
// waiting after one second ("shutdown: gave up waiting … closing the
// database") and exit with PostgreSQL still stopping behind it.
func TestFirstStopOfFreshCluster(t *testing.T) {
	t.Parallel()
	dir := privateDataDir(t)
	p := launchEnv(t, privateEnv(dir)...)
	eventually(t, 60*time.Second, "the service ready", func() bool { return p.ready().Status == "ready" })
	p.stop()
	if clusterRunning(t, dir) {
		t.Fatal("the cluster still runs after the service that started it exited")
	}
	if strings.Contains(p.log.String(), "gave up waiting") {
		t.Fatalf("the first stop gave up on a stage:\n%s", p.log.String())
	}
}

// TestInterruptDuringDatabaseOutage is issue 14's second finding: with the
// database gone, Ctrl-C used to leave the ingester retrying forever. Now
// SIGINT ends the whole service in under 5 s even then.
func TestInterruptDuringDatabaseOutage(t *testing.T) {
	t.Parallel()
	dir := privateDataDir(t)
	p := launchEnv(t, privateEnv(dir)...)
	eventually(t, 60*time.Second, "demo messages stored", func() bool {
		return metric(t, p.base, "fmn_bus_messages_stored_total") > 0
	})

	if err := pgcluster.StopDir(context.Background(), filepath.Join(dir, "postgres"), slog.New(slog.DiscardHandler)); err != nil {
		t.Fatal(err)
	}
	eventually(t, 30*time.Second, "the ingester retrying", func() bool {
		return strings.Contains(p.log.String(), "storing bus messages failed, retrying")
	})

	start := time.Now()
	if err := p.cmd.Process.Signal(os.Interrupt); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-p.done:
		took := time.Since(start)
		t.Logf("stopped %v after SIGINT with the database down (exit: %v)", took.Round(time.Millisecond), err)
		if took >= 5*time.Second {
			t.Fatalf("fmn serve took %v to stop after SIGINT, want under 5 s", took)
		}
	case <-time.After(15 * time.Second):
		p.cmd.Process.Kill()
		t.Fatal("fmn serve did not stop within 15 s of SIGINT while the database was down")
	}
}

// TestRiverQuietAtInfo is issue 14's ninth finding: River's routine lines
// ("River client started", "Producer job counts" every 5 s) were most of
// `make run`'s output. At the default level they are gone now.
func TestRiverQuietAtInfo(t *testing.T) {
	t.Parallel()
	p := launch(t, storetest.URL(t), "FMN_LOG_LEVEL=info")
	eventually(t, 30*time.Second, "the service ready", func() bool { return p.ready().Status == "ready" })
	p.stop()
	log := p.log.String()
	if !strings.Contains(log, `msg=stopped`) {
		t.Fatalf("the service did not log its stop:\n%s", log)
	}
	for _, line := range strings.Split(log, "\n") {
		if strings.Contains(line, "level=INFO") && (strings.Contains(line, "River client") ||
			strings.Contains(line, "Producer job counts") || strings.Contains(line, "Hard stop started")) {
			t.Fatalf("River's routine line at info: %s", line)
		}
	}
}

// TestReadyAfterDatabaseRestart is issue 14's eleventh finding: after a
// database restart /readyz said ready while the ingester still waited out
// its backoff, seconds before anything was stored again. Now ready means
// storing: whenever /readyz says ready, what was read during the outage
// has been stored.
func TestReadyAfterDatabaseRestart(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	dir := privateDataDir(t)
	p := launchEnv(t, privateEnv(dir)...)
	eventually(t, 60*time.Second, "demo messages stored", func() bool {
		return metric(t, p.base, "fmn_bus_messages_stored_total") > 0 && p.ready().Status == "ready"
	})
	pgDir := filepath.Join(dir, "postgres")
	log := slog.New(slog.DiscardHandler)
	if err := pgcluster.StopDir(ctx, pgDir, log); err != nil {
		t.Fatal(err)
	}
	// Let the ingester's backoff grow to seconds, so that the window the
	// finding is about is wide.
	eventually(t, 30*time.Second, "the ingester backing off for seconds", func() bool {
		return strings.Contains(p.log.String(), "backoff=3.2s")
	})
	before := metric(t, p.base, "fmn_bus_messages_stored_total")
	if r := p.ready(); r.Status == "ready" {
		t.Fatalf("/readyz says ready with the database down: %+v", r)
	}
	cl, err := pgcluster.Start(ctx, pgDir, pgcluster.Options{}, log)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cl.Release(ctx) })
	restarted := time.Now()
	eventually(t, 30*time.Second, "/readyz ready again", func() bool { return p.ready().Status == "ready" })
	after := metric(t, p.base, "fmn_bus_messages_stored_total")
	t.Logf("ready %v after the database restart; stored %v before the outage, %v when ready",
		time.Since(restarted).Round(10*time.Millisecond), before, after)
	if after <= before {
		t.Fatalf("/readyz said ready before the ingester stored again (stored %v before the outage, %v now)", before, after)
	}
}

// TestRetentionJobInService: a running service's periodic job (River's
// leader runs it at start, then hourly) drops the day of the message log
// older than FMN_RETENTION and keeps the rest.
func TestRetentionJobInService(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	db := storetest.URL(t)
	st := openStore(t, db)
	old, kept := time.Now().AddDate(0, 0, -40), time.Now().AddDate(0, 0, -20)
	for i, at := range []time.Time{old, kept} {
		if err := st.MakePartitions(ctx, at, at); err != nil {
			t.Fatal(err)
		}
		if _, err := st.Pool.Exec(ctx, `INSERT INTO messages (msg_id, topic, received_at, envelope) VALUES ($1, 't', $2, '{}')`,
			fmt.Sprintf("2026-retention-%d", i), at); err != nil {
			t.Fatal(err)
		}
	}
	oldDay := "messages_p" + old.UTC().Format("20060102")
	launch(t, db, "FMN_RETENTION=30d")
	eventually(t, 60*time.Second, "the partition of 40 days ago dropped", func() bool {
		var there bool
		st.Pool.QueryRow(ctx, `SELECT to_regclass($1) IS NOT NULL`, oldDay).Scan(&there)
		return !there
	})
	var left []string
	rows, _ := st.Pool.Query(ctx, `SELECT msg_id FROM messages`)
	left, _ = pgx.CollectRows(rows, pgx.RowTo[string])
	if len(left) != 1 || left[0] != "2026-retention-1" {
		t.Fatalf("messages left: %v, want the one of 20 days ago", left)
	}
}

// TestConsumeRoleServesMetrics: `fmn consume` (no web UI) serves /metrics,
// /healthz and /readyz on FMN_METRICS_LISTEN, so the split deployment's
// consumer can be watched: its bus counters, the ingester's state and the
// job table.
func TestConsumeRoleServesMetrics(t *testing.T) {
	t.Parallel()
	pub, err := consumer.NewPublisher(context.Background(), fmt.Sprintf("tcp://127.0.0.1:%d", freePort(t)), false)
	if err != nil {
		t.Fatal(err)
	}
	defer pub.Close()
	port := freePort(t)
	base := fmt.Sprintf("http://127.0.0.1:%d", port)
	cmd := exec.Command(fmnBin, "consume")
	cmd.Env = append(os.Environ(), "FMN_DATABASE_URL="+storetest.URL(t), "FMN_DATA_DIR="+t.TempDir(),
		"FMN_BUS_ENDPOINTS="+pub.Addr(), fmt.Sprintf("FMN_METRICS_LISTEN=127.0.0.1:%d", port))
	var log syncBuffer
	cmd.Stdout, cmd.Stderr = &log, &log
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	defer func() {
		cmd.Process.Signal(os.Interrupt)
		if err := <-done; err != nil {
			t.Errorf("fmn consume: %v\n%s", err, log.String())
		}
	}()
	eventually(t, 30*time.Second, "fmn consume ready on FMN_METRICS_LISTEN", func() bool {
		resp, err := http.Get(base + "/readyz")
		if err != nil {
			return false
		}
		var r readyState
		json.NewDecoder(resp.Body).Decode(&r)
		resp.Body.Close()
		return resp.StatusCode == 200 && r.Status == "ready"
	})
	if !pub.WaitSubscribers(context.Background(), 10*time.Second) {
		t.Fatal("fmn consume never subscribed")
	}
	if err := pub.Publish(map[string]any{"topic": "org.fedoraproject.prod.test.ops", "msg": map[string]any{}, "msg_id": "2026-ops"}, false); err != nil {
		t.Fatal(err)
	}
	eventually(t, 30*time.Second, "the message counted", func() bool { return metric(t, base, "fmn_bus_messages_stored_total") == 1 })
	if metric(t, base, "fmn_jobs_scrape_ok") != 1 || metric(t, base, "fmn_bus_ingest_retrying") != 0 {
		t.Fatalf("job table or ingester state missing from /metrics")
	}
	resp, err := http.Get(base + "/")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 404 {
		t.Fatalf("the metrics address serves more than health and metrics: GET / = %d", resp.StatusCode)
	}
}

// TestReadmeTryIt is issue 14's twelfth finding: the README's "Try it"
// assumed the destination's id was 1 and left the confirmation to be done
// by hand. Its block is run here as written, with bash, beside a service on
// make run's defaults (a private cluster and the mail folder under data/,
// the demo bus): only the address line is set to the service's port, and
// the closing "sleep 120; ls" is replaced by waiting for the mails.
func TestReadmeTryIt(t *testing.T) {
	t.Parallel()
	for _, tool := range []string{"bash", "curl", "sed", "grep"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Fatalf("the README's Try it needs %s: install it (make test does, scripts/ensure-curl.sh)", tool)
		}
	}
	readme, err := os.ReadFile("../README.md")
	if err != nil {
		t.Fatal(err)
	}
	_, rest, ok := strings.Cut(string(readme), "Try it in a second shell")
	if !ok {
		t.Fatal("README.md has no Try it section")
	}
	_, rest, _ = strings.Cut(rest, "```sh\n")
	block, _, _ := strings.Cut(rest, "```")
	lines := strings.Split(strings.TrimSpace(block), "\n")
	if !strings.HasPrefix(lines[0], "FMN=http://127.0.0.1:8080") || !strings.HasPrefix(lines[len(lines)-1], "sleep 120; ls data/mail/") {
		t.Fatalf("the Try it block no longer starts with the address and ends with the wait:\n%s", block)
	}

	dir := privateDataDir(t) // the clone's folder: bin/fmn and data/ in it
	if err := os.Mkdir(filepath.Join(dir, "bin"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(fmnBin, filepath.Join(dir, "bin", "fmn")); err != nil {
		t.Fatal(err)
	}
	corpus, _ := filepath.Abs("../testdata/fedmsg-meta.jsonl")
	data := filepath.Join(dir, "data")
	t.Cleanup(func() {
		pgcluster.StopDir(context.Background(), filepath.Join(data, "postgres"), slog.New(slog.DiscardHandler))
	})
	p := launchEnv(t, "FMN_DATABASE_URL=", "FMN_DATA_DIR="+data, "FMN_DEMO=true", "FMN_DEMO_CORPUS="+corpus, "FMN_DEMO_RATE=50")
	eventually(t, 60*time.Second, "the service ready", func() bool { return p.ready().Status == "ready" })

	// Someone else's destination first: the block's is not number 1.
	bob := strings.TrimSpace(p.tool("token", "create", "-user", "bob", "-email", "bob@example.org"))
	req, _ := http.NewRequest("POST", p.base+"/api/v1/destinations", strings.NewReader(`{"kind":"email","address":"bob@example.org"}`))
	req.Header.Set("Authorization", "Bearer "+bob)
	if resp, err := http.DefaultClient.Do(req); err != nil || resp.StatusCode != 201 {
		t.Fatalf("bob's destination: %v %v", resp, err)
	}

	lines[0] = "FMN=" + p.base
	script := "set -e\n" + strings.Join(lines[:len(lines)-1], "\n") + "\n"
	cmd := exec.Command("bash", "-c", script)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "FMN_DATABASE_URL=", "FMN_DATA_DIR=") // as in a fresh shell
	done := make(chan struct{})
	var out []byte
	go func() { out, err = cmd.CombinedOutput(); close(done) }()
	select {
	case <-done:
	case <-time.After(60 * time.Second):
		cmd.Process.Kill()
		<-done
		t.Fatalf("the Try it block did not finish in 60 s:\n%s", out)
	}
	if err != nil {
		t.Fatalf("the Try it block failed: %v\n%s", err, out)
	}
	t.Logf("Try it printed:\n%s", out)
	if !strings.Contains(string(out), "destination 2\n") || !strings.Contains(string(out), `"confirmed":true`) ||
		!strings.Contains(string(out), `"name":"bodhi"`) || !strings.Contains(string(out), `"destinations":[2]`) {
		t.Fatalf("the destination was not confirmed or the rule not made:\n%s", out)
	}
	if r := p.ready(); r.Status != "ready" {
		t.Fatalf("the service is not ready after the Try it commands: %+v", r)
	}
	eventually(t, 60*time.Second, "mail for the demo's bodhi messages", func() bool {
		ms, _ := filepath.Glob(filepath.Join(data, "mail", "*.eml"))
		n := 0
		for _, m := range ms {
			b, _ := os.ReadFile(m)
			if strings.Contains(string(b), "X-Fedmsg-Topic: org.fedoraproject.prod.bodhi.") {
				n++
			}
		}
		return n >= 5
	})
}

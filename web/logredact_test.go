package web

import (
	"bytes"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"fmn/config"
	"fmn/delivery"
	"fmn/metrics"
	"fmn/store/storetest"
)

// lockedBuffer collects log output written from the server's goroutines.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// TestFinding9SecretsNotLogged: the database URL's ?password= and the
// secrets in sign-in, feed, confirmation and unsubscribe links never reach
// the log, even at debug level.
func TestFinding9SecretsNotLogged(t *testing.T) {
	t.Parallel()
	cfg, err := config.Load("", []string{
		"FMN_DATABASE_URL=postgres://fmn:userinfo-pw@db.example:5432/fmn?sslmode=require&password=query-pw&sslpassword=key-pw",
		"FMN_SMTP_URL=smtp://mailer:smtp-pw@mail.example:587?token=smtp-token",
	})
	if err != nil {
		t.Fatal(err)
	}
	var cfgLog lockedBuffer
	slog.New(slog.NewTextHandler(&cfgLog, nil)).Info("starting fmn", cfg.LogValues()...)
	for _, secret := range []string{"userinfo-pw", "query-pw", "key-pw", "smtp-pw", "smtp-token"} {
		if strings.Contains(cfgLog.String(), secret) {
			t.Errorf("start-up log shows %s: %s", secret, cfgLog.String())
		}
	}
	if !strings.Contains(cfgLog.String(), "db.example:5432/fmn") || !strings.Contains(cfgLog.String(), "sslmode=require") {
		t.Errorf("the redacted URL should still say where: %s", cfgLog.String())
	}

	st := storetest.New(t)
	var out lockedBuffer
	log := slog.New(slog.NewTextHandler(&out, &slog.HandlerOptions{Level: slog.LevelDebug}))
	jobs, err := delivery.NewClient(st.Pool, delivery.Jobs{Log: slog.New(slog.NewTextHandler(io.Discard, nil))}, false)
	if err != nil {
		t.Fatal(err)
	}
	s, err := New(Deps{Store: st, Jobs: jobs, Metrics: metrics.New(), BaseURL: "http://fmn.test", Log: log})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(s.Handler())
	defer srv.Close()
	paths := []string{"/login/LOGINSECRETLOGINSECRET", "/feed/FEEDSECRETFEEDSECRET", "/confirm/CONFIRMSECRETCONFIRM",
		"/unsubscribe/UNSUBSECRETUNSUBSECRET", "/feed/FEEDSECRET2FEEDSECRET/extra"}
	for _, p := range paths {
		resp, err := http.Get(srv.URL + p)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
	}
	deadline := time.Now().Add(5 * time.Second)
	for strings.Count(out.String(), "http request") < len(paths) && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	logged := out.String()
	if strings.Count(logged, "http request") < len(paths) {
		t.Fatalf("expected a debug line per request: %s", logged)
	}
	for _, secret := range []string{"LOGINSECRET", "FEEDSECRET", "CONFIRMSECRET", "UNSUBSECRET"} {
		if strings.Contains(logged, secret) {
			t.Errorf("the log shows %s:\n%s", secret, logged)
		}
	}
	if !strings.Contains(logged, "/login/{token}") {
		t.Errorf("the log should name the route: %s", logged)
	}
}

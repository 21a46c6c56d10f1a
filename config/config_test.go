package config

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestDefaults(t *testing.T) {
	t.Parallel()
	c, err := Load("", nil)
	if err != nil {
		t.Fatal(err)
	}
	if c.Listen != DefaultListen || c.BaseURL != "http://"+DefaultListen || c.DatabaseURL != "" || c.BusTopicPrefix != "" {
		t.Fatalf("defaults: %+v", c)
	}
}

func TestFileThenEnvironment(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "fmn.conf")
	os.WriteFile(path, []byte(`# comment
FMN_LISTEN=127.0.0.1:9999
export FMN_BUS_ENDPOINTS="tcp://a:1, tcp://b:2"
FMN_MAIL_FROM='fmn@example.org'
`), 0o600)
	c, err := Load(path, []string{"FMN_LISTEN=127.0.0.1:7777", "PATH=/bin", "FMN_BUS_REPLAY=tcp://a:1=tcp://a:2"})
	if err != nil {
		t.Fatal(err)
	}
	if c.Listen != "127.0.0.1:7777" {
		t.Errorf("environment must win over the file: %s", c.Listen)
	}
	if len(c.BusEndpoints) != 2 || c.BusEndpoints[1] != "tcp://b:2" {
		t.Errorf("endpoints: %q", c.BusEndpoints)
	}
	if c.MailFrom != "fmn@example.org" {
		t.Errorf("quoted value: %q", c.MailFrom)
	}
	if c.BusReplay["tcp://a:1"] != "tcp://a:2" {
		t.Errorf("replay pairs: %v", c.BusReplay)
	}
}

// Every problem is reported at once, so an operator fixes them in one go.
func TestAllProblemsAtOnce(t *testing.T) {
	t.Parallel()
	_, err := Load("", []string{
		"FMN_LISTEN=nonsense",
		"FMN_BUS_ENDPOINTS=http://x",
		"FMN_VALIDATE_SIGNATURES=maybe",
		"FMN_SMTP_URL=ftp://x",
		"FMN_MAIL_FROM=not an address",
		"FMN_LOG_LEVEL=loud",
		"FMN_LISTN=typo",
		"FMN_DATABASE_URL=mysql://x",
	})
	if err == nil {
		t.Fatal("want errors")
	}
	for _, want := range []string{"FMN_LISTEN", "FMN_BUS_ENDPOINTS", "FMN_VALIDATE_SIGNATURES", "FMN_SMTP_URL",
		"FMN_MAIL_FROM", "FMN_LOG_LEVEL", "FMN_LISTN: unknown setting", "FMN_DATABASE_URL"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error does not mention %s:\n%v", want, err)
		}
	}
}

func TestSignaturesNeedCA(t *testing.T) {
	t.Parallel()
	if _, err := Load("", []string{"FMN_VALIDATE_SIGNATURES=true"}); err == nil || !strings.Contains(err.Error(), "FMN_CA_CERT") {
		t.Fatalf("want FMN_CA_CERT required, got %v", err)
	}
}

// Secrets in URLs never reach the log.
func TestLogValuesRedactSecrets(t *testing.T) {
	t.Parallel()
	c, err := Load("", []string{"FMN_DATABASE_URL=postgres://u:dbsecret@h/db", "FMN_SMTP_URL=smtp://u:mailsecret@h:25"})
	if err != nil {
		t.Fatal(err)
	}
	s := fmt.Sprint(c.LogValues()...)
	if strings.Contains(s, "dbsecret") || strings.Contains(s, "mailsecret") {
		t.Fatalf("secret in log values: %s", s)
	}
}

// The variables scripts/test.sh exports for the test helpers reach the
// services the e2e tests start: they must not make them refuse to start.
func TestTestHelperSettingsAccepted(t *testing.T) {
	t.Parallel()
	if _, err := Load("", []string{"FMN_TEST_DATABASE_URL=postgres://x/y", "FMN_ARTIFACTS=/tmp/a", "FMN_DENDRITE=/usr/bin/dendrite"}); err != nil {
		t.Fatal(err)
	}
}

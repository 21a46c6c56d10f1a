package config

import (
	"strings"
	"testing"
)

func TestTrustedProxies(t *testing.T) {
	t.Parallel()
	c, err := Load("", []string{"FMN_TRUSTED_PROXIES=10.0.0.0/8, 127.0.0.1, ::1, 192.168.1.7/24, ::ffff:172.16.0.0/108"})
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, p := range c.TrustedProxies {
		got = append(got, p.String())
	}
	if strings.Join(got, " ") != "10.0.0.0/8 127.0.0.1/32 ::1/128 192.168.1.0/24 172.16.0.0/12" {
		t.Errorf("parsed: %v", got)
	}
	_, err = Load("", []string{"FMN_TRUSTED_PROXIES=10.0.0.0/33,proxy.example"})
	if err == nil || !strings.Contains(err.Error(), `FMN_TRUSTED_PROXIES: "10.0.0.0/33"`) || !strings.Contains(err.Error(), `"proxy.example"`) {
		t.Errorf("bad entries: %v", err)
	}
}

func TestRedactedURL(t *testing.T) {
	t.Parallel()
	cases := map[string]string{
		"postgres://u:pw@h/db?password=x&sslmode=disable": "postgres://u:xxxxx@h/db?password=xxxxx&sslmode=disable",
		"https://push.example/send/abc?auth=1&Api_Key=2":  "https://push.example/send/abc?Api_Key=xxxxx&auth=xxxxx",
		"amqp://guest@broker/%2F":                         "amqp://guest@broker/%2F",
		"":                                                "",
		"postgres://h/db?pass=1&pwd=2&secret=3&token=4": "postgres://h/db?pass=xxxxx&pwd=xxxxx&secret=xxxxx&token=xxxxx",
		"http://[::1": "(unparseable)",
	}
	for in, want := range cases {
		if got := Redacted(in); got != want {
			t.Errorf("Redacted(%q) = %q, want %q", in, got, want)
		}
	}
}

// TestFinding3AdminsNotByName: a name-shaped FMN_ADMINS entry is refused
// with a message saying what to give instead.
func TestFinding3AdminsNotByName(t *testing.T) {
	t.Parallel()
	_, err := Load("", []string{"FMN_ADMINS=admin, jane@example.org, https://id.fedoraproject.org#1234, Jane <j@example.org>, https://#x, ftp://id.example#1"})
	if err == nil {
		t.Fatal("FMN_ADMINS=admin accepted")
	}
	msg := err.Error()
	for _, want := range []string{`FMN_ADMINS: "admin" is a bare user name`, "email address", `"Jane <j@example.org>" is not a plain email address`,
		`"https://#x": want issuer#subject`, `"ftp://id.example#1": want issuer#subject`} {
		if !strings.Contains(msg, want) {
			t.Errorf("error lacks %q:\n%s", want, msg)
		}
	}
	for _, ok := range []string{"jane@example.org", "https://id.fedoraproject.org#1234"} {
		if strings.Contains(msg, `"`+ok+`"`) {
			t.Errorf("%s refused:\n%s", ok, msg)
		}
	}
	if _, err := Load("", []string{"FMN_ADMINS=jane@example.org,https://id.example/realms/x#f:0a1b"}); err != nil {
		t.Errorf("good admins refused: %v", err)
	}
}

func TestLimitSettings(t *testing.T) {
	t.Parallel()
	c, err := Load("", nil)
	if err != nil || c.MaxRulesPerUser != 100 || c.MaxPatternsPerRule != 300 || c.MaxDestinationsPerUser != 20 {
		t.Fatalf("defaults: %d %d %d %v", c.MaxRulesPerUser, c.MaxPatternsPerRule, c.MaxDestinationsPerUser, err)
	}
	c, err = Load("", []string{"FMN_MAX_RULES_PER_USER=500", "FMN_MAX_PATTERNS_PER_RULE=1000", "FMN_MAX_DESTINATIONS_PER_USER=50"})
	if err != nil || c.MaxRulesPerUser != 500 || c.MaxPatternsPerRule != 1000 || c.MaxDestinationsPerUser != 50 {
		t.Fatalf("raised: %d %d %d %v", c.MaxRulesPerUser, c.MaxPatternsPerRule, c.MaxDestinationsPerUser, err)
	}
	_, err = Load("", []string{"FMN_MAX_RULES_PER_USER=0", "FMN_MAX_DESTINATIONS_PER_USER=lots"})
	if err == nil || !strings.Contains(err.Error(), "FMN_MAX_RULES_PER_USER: want a whole number") || !strings.Contains(err.Error(), "FMN_MAX_DESTINATIONS_PER_USER") {
		t.Fatalf("bad limits: %v", err)
	}
}

func TestSMTPTLSSetting(t *testing.T) {
	t.Parallel()
	for env, want := range map[string]string{
		"FMN_SMTP_URL=smtp://mail.example.org:587": "required",
		"FMN_SMTP_URL=smtp://127.0.0.1:2525":       "opportunistic",
		"FMN_SMTP_URL=smtp://[::1]:25":             "opportunistic",
	} {
		c, err := Load("", []string{env})
		if err != nil || c.SMTPTLS != want {
			t.Errorf("%s: %q %v, want %s", env, c.SMTPTLS, err, want)
		}
	}
	c, err := Load("", []string{"FMN_SMTP_URL=smtp://mail.example.org", "FMN_SMTP_TLS=none"})
	if err != nil || c.SMTPTLS != "none" {
		t.Errorf("explicit none: %q %v", c.SMTPTLS, err)
	}
	if _, err := Load("", []string{"FMN_SMTP_TLS=maybe"}); err == nil || !strings.Contains(err.Error(), "FMN_SMTP_TLS") {
		t.Errorf("bad mode: %v", err)
	}
}

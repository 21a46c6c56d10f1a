package config

import (
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// TestSystemdUnits holds contrib/systemd to fmn: the example settings file
// loads as it stands (every name known, every value valid), and each unit
// runs a subcommand fmn has, as the fmn user, from the settings file the
// example says to install.
func TestSystemdUnits(t *testing.T) {
	t.Parallel()
	// The certificate files it names under /etc/fmn must exist for the
	// settings to load: the test puts (empty) ones in a folder of its own.
	example, err := os.ReadFile("../contrib/systemd/fmn.env.example")
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	for _, m := range regexp.MustCompile(`/etc/fmn/([\w.-]+\.pem)`).FindAllStringSubmatch(string(example), -1) {
		if err := os.WriteFile(filepath.Join(dir, m[1]), nil, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	path := filepath.Join(dir, "fmn.env")
	if err := os.WriteFile(path, []byte(strings.ReplaceAll(string(example), "/etc/fmn/", dir+"/")), 0o600); err != nil {
		t.Fatal(err)
	}
	c, err := Load(path, nil)
	if err != nil {
		t.Fatalf("fmn.env.example does not load:\n%v", err)
	}
	if c.BaseURL[:8] != "https://" || len(c.TrustedProxies) == 0 || c.AMQPURL == "" || c.DatabaseURL == "" {
		t.Fatalf("the example misses what a deployment behind a proxy sets: %+v", c)
	}
	roles := map[string]string{"fmn.service": "serve", "fmn@.service": "%i"}
	for unit, role := range roles {
		b, err := os.ReadFile("../contrib/systemd/" + unit)
		if err != nil {
			t.Fatal(err)
		}
		s := string(b)
		for _, want := range []string{"ExecStart=/usr/local/bin/fmn " + role + "\n", "User=fmn\n", "EnvironmentFile=/etc/fmn/fmn.env\n",
			"NoNewPrivileges=yes\n", "ProtectSystem=strict\n", "StateDirectory=fmn\n"} {
			if !strings.Contains(s, want) {
				t.Errorf("%s lacks %q", unit, strings.TrimSpace(want))
			}
		}
		// Only the roles fmn has are started by the template's instances.
		for _, m := range regexp.MustCompile(`fmn@(\w+)\.service`).FindAllStringSubmatch(s, -1) {
			if m[1] != "consume" && m[1] != "work" && m[1] != "web" {
				t.Errorf("%s names an instance fmn@%s, not a role", unit, m[1])
			}
		}
	}

	// Where systemd's own checker is installed, the units must pass it too
	// (copies pointing at this machine's files).
	analyze, err := exec.LookPath("systemd-analyze")
	if err != nil {
		t.Log("systemd-analyze not installed: units checked by the rules above only")
		return
	}
	sh, _ := exec.LookPath("sh")
	units := t.TempDir()
	for _, unit := range []string{"fmn.service", "fmn@.service", "fmn.target"} {
		b, err := os.ReadFile("../contrib/systemd/" + unit)
		if err != nil {
			t.Fatal(err)
		}
		s := strings.ReplaceAll(strings.ReplaceAll(string(b), "/usr/local/bin/fmn", sh), "/etc/fmn/fmn.env", path)
		if unit == "fmn@.service" {
			unit = "fmn@web.service"
		}
		if err := os.WriteFile(filepath.Join(units, unit), []byte(s), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	cmd := exec.Command(analyze, "verify", "--man=no", "fmn.service", "fmn@web.service", "fmn.target")
	cmd.Dir = units
	if out, err := cmd.CombinedOutput(); err != nil || len(out) > 0 {
		t.Fatalf("systemd-analyze verify: %v\n%s", err, out)
	}
}

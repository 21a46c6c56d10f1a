package web

import (
	"fmt"
	"strings"
	"testing"
)

// TestFinding1PushEndpointRefusedAtAdd: the API refuses a push endpoint
// that would reach loopback, private, link-local, shared or unique-local
// addresses, a port other than 443, or plain http, with 400 and the reason
// in the address field. Before, any https:// host and http:// loopback
// were accepted.
func TestFinding1PushEndpointRefusedAtAdd(t *testing.T) {
	t.Parallel()
	f := newAPIFixture(t)
	tok := f.token(t, "mallory")
	for _, c := range []struct{ endpoint, why string }{
		{"https://127.0.0.1/push", "loopback"},
		{"https://10.0.0.5/push", "private"},
		{"https://169.254.169.254/latest/meta-data/", "link-local"},
		{"https://100.64.0.1/push", "shared"},
		{"https://[fd00::1]/push", "unique-local"},
		{"https://[::ffff:10.0.0.5]/push", "private"},
		{"https://[::1]/push", "loopback"},
		{"https://0.0.0.0/push", "unspecified"},
		{"https://localhost/push", "loopback"},
		{"http://127.0.0.1:8080/push", "https"},
		{"https://push.example.net:8443/push", "443"},
	} {
		body := fmt.Sprintf(`{"kind":"push","address":%q}`, subscriptionAt(t, c.endpoint))
		st, e, raw := f.do(t, tok, "POST", "/api/v1/destinations", body)
		if st != 400 || e["field"] != "address" || !strings.Contains(fmt.Sprint(e["error"]), c.why) {
			t.Errorf("%s: %d %s, want 400 on address saying %q", c.endpoint, st, raw, c.why)
		}
	}
	if _, _, raw := f.do(t, tok, "GET", "/api/v1/destinations", ""); strings.TrimSpace(string(raw)) != "[]" {
		t.Errorf("destinations after the refusals: %s", raw)
	}
	// A public push service is fine (confirmed by its pushed link).
	body := fmt.Sprintf(`{"kind":"push","address":%q}`, subscriptionAt(t, "https://updates.push.services.mozilla.com/wpush/v2/abc"))
	if st, _, raw := f.do(t, tok, "POST", "/api/v1/destinations", body); st != 201 {
		t.Errorf("public push service: %d %s", st, raw)
	}
}

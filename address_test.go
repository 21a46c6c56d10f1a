package fmn

import (
	"strings"
	"testing"
)

func TestValidateAddress(t *testing.T) {
	t.Parallel()
	for _, nick := range []string{"alice", "Alice_", "[away]", "a-b", "x^{|}", strings.Repeat("n", 30)} {
		if got, err := ValidateAddress(KindIRC, nick); err != nil || got != nick {
			t.Errorf("nick %q refused: %v", nick, err)
		}
	}
	for _, nick := range []string{"", "1abc", "-abc", "a b", "a\r\nQUIT", "#chan", "a!b", strings.Repeat("n", 31), "é"} {
		if _, err := ValidateAddress(KindIRC, nick); err == nil {
			t.Errorf("nick %q accepted", nick)
		}
	}
	p256 := "BNcRdreALRFXTkOOUHK1EtK2wtaz5Ry4YfYCA_0QTpQtUbVlUls0VJXg7A8u-Ts1XbjhazAkj7I99e8QcYP7DkM"
	auth := "tBHItJI5svbpez7KI4CCXg"
	good := `{"endpoint":"https://push.example.net/send/abc","expirationTime":null,"keys":{"auth":"` + auth + `","p256dh":"` + p256 + `"}}`
	got, err := ValidateAddress(KindPush, good)
	if err != nil {
		t.Fatal(err)
	}
	if want := `{"endpoint":"https://push.example.net/send/abc","keys":{"p256dh":"` + p256 + `","auth":"` + auth + `"}}`; got != want {
		t.Fatalf("normalised to %s", got)
	}
	if _, err := ValidateAddress(KindPush, strings.Replace(good, "https://push.example.net", "http://127.0.0.1:9", 1)); err != nil {
		t.Fatalf("loopback http endpoint refused: %v", err)
	}
	for name, bad := range map[string]string{
		"not json":      "https://push.example.net/x",
		"http":          strings.Replace(good, "https://", "http://", 1),
		"no endpoint":   strings.Replace(good, `"endpoint":"https://push.example.net/send/abc",`, "", 1),
		"bad p256dh":    strings.Replace(good, p256, "AAAA", 1),
		"off-curve":     strings.Replace(good, p256, "BA"+p256[2:], 1),
		"short auth":    strings.Replace(good, auth, "AAAA", 1),
		"unknown field": strings.Replace(good, `"expirationTime":null`, `"x":1`, 1),
		"two objects":   good + good,
	} {
		if _, err := ValidateAddress(KindPush, bad); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
	for _, id := range []string{"@jane:fedora.im", "@a.b_c=d-e/f+g:example.org:8448", "@x:[::1]"} {
		if got, err := ValidateAddress(KindMatrix, id); err != nil || got != id {
			t.Errorf("Matrix ID %q: %q, %v", id, got, err)
		}
	}
	for _, id := range []string{"jane:fedora.im", "@Jane:fedora.im", "@jane", "@jane:", "@ja ne:x.org", "@jane:x\r\n.org", "#room:x.org"} {
		if _, err := ValidateAddress(KindMatrix, id); err == nil {
			t.Errorf("Matrix ID %q accepted", id)
		}
	}
}

func TestAddressKey(t *testing.T) {
	for _, c := range []struct {
		kind     Kind
		in, want string
	}{
		{KindEmail, "Jane+fmn@Example.org", "jane@example.org"},
		{KindEmail, "jane@example.org", "jane@example.org"},
		{KindIRC, "Alice[m]", "alice{m}"},
		{KindMatrix, "@jane:fedora.im", "@jane:fedora.im"},
		{KindPush, `{"endpoint":"https://push.example.net/x","keys":{}}`, "https://push.example.net/x"},
	} {
		if got := AddressKey(c.kind, c.in); got != c.want {
			t.Errorf("AddressKey(%s, %q) = %q, want %q", c.kind, c.in, got, c.want)
		}
	}
}

package web

import (
	"context"
	"net/http"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"

	"fmn"
	"fmn/store"
)

// TestFinding8LinksDoNotActOnGet: opening a mailed sign-in or confirmation
// link (as a mail scanner does, with no cookies and no JavaScript) shows a
// page with one button and changes nothing; only the button's POST, from
// this site, signs in or confirms.
func TestFinding8LinksDoNotActOnGet(t *testing.T) {
	t.Parallel()
	s := newSite(t, AuthConfig{}, "")
	if _, err := s.st.EnsureUser(context.Background(), "jane", "jane@example.org"); err != nil {
		t.Fatal(err)
	}

	// Sign-in link.
	person := s.browser()
	tok := s.loginToken(person, "jane@example.org")
	path := "/login/" + tok
	for range 2 { // a scanner, then a link preview
		resp := s.get(s.browser(), path)
		b := body(t, resp)
		if resp.StatusCode != http.StatusOK || strings.Contains(strings.Join(resp.Header.Values("Set-Cookie"), " "), "fmn_session=") {
			t.Fatalf("GET %s: %d, cookies %q: it must show a page and sign nobody in", path, resp.StatusCode, resp.Header.Values("Set-Cookie"))
		}
		if !strings.Contains(b, `<form method="post" action="`+path+`">`) || strings.Contains(b, "<script") {
			t.Fatalf("GET %s: want one form posting back, no script:\n%s", path, b)
		}
		if csp := resp.Header.Get("Content-Security-Policy"); !strings.Contains(csp, "form-action 'self'") {
			t.Fatalf("GET %s: CSP %q", path, csp)
		}
	}
	// Another site cannot press the button.
	req, _ := http.NewRequest("POST", s.srv.URL+path, nil)
	req.Header.Set("Sec-Fetch-Site", "cross-site")
	resp, err := s.browser().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusForbidden {
		t.Fatalf("cross-site POST %s: %d, want 403", path, resp.StatusCode)
	}
	// The person's press still works: the link was not used up.
	resp = s.postForm(person, path, nil)
	resp.Body.Close()
	if resp.StatusCode != http.StatusSeeOther || resp.Header.Get("Location") != "/" {
		t.Fatalf("POST %s: %d to %q, want 303 to /", path, resp.StatusCode, resp.Header.Get("Location"))
	}
	if b := body(t, s.get(person, "/")); !strings.Contains(b, "Sign out jane") {
		t.Fatal("the button did not sign in")
	}

	// Confirmation link.
	var d fmn.Destination
	err = s.st.InTx(context.Background(), func(tx pgx.Tx) error {
		var err error
		d, err = store.CreateDestination(context.Background(), tx, 1, "email", "other@example.org")
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	code, err := s.st.NewConfirmCode(context.Background(), d.ID)
	if err != nil {
		t.Fatal(err)
	}
	path = "/confirm/" + code
	resp = s.get(s.browser(), path)
	if b := body(t, resp); resp.StatusCode != http.StatusOK || !strings.Contains(b, `<form method="post" action="`+path+`">`) ||
		!strings.Contains(b, "other@example.org") {
		t.Fatalf("GET %s: %d\n%s", path, resp.StatusCode, b)
	}
	if got, _ := s.st.GetDestination(context.Background(), 1, d.ID); got.Confirmed {
		t.Fatal("opening the confirmation link confirmed the destination")
	}
	resp = s.postForm(s.browser(), path, nil)
	if b := body(t, resp); resp.StatusCode != http.StatusOK || !strings.Contains(b, "Destination confirmed") {
		t.Fatalf("POST %s: %d\n%s", path, resp.StatusCode, b)
	}
	if got, _ := s.st.GetDestination(context.Background(), 1, d.ID); !got.Confirmed {
		t.Fatal("the button did not confirm")
	}
	if resp := s.get(s.browser(), path); resp.StatusCode != http.StatusNotFound {
		t.Fatalf("GET of a used confirmation link: %d, want 404", resp.StatusCode)
	}
}

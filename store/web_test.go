package store

import (
	"strings"
	"testing"
)

func TestNameFromEmail(t *testing.T) {
	t.Parallel()
	for in, want := range map[string]string{
		"Jane.Doe+fmn@example.org":               "jane.doe",
		"bob@example.org":                        "bob",
		"_under@example.org":                     "under",
		"élodie@example.org":                     "lodie",
		"ü@example.org":                          "user",
		"+tag@example.org":                       "user",
		"o'brien@example.org":                    "obrien",
		strings.Repeat("x", 80) + "@example.org": strings.Repeat("x", 56),
	} {
		if got := NameFromEmail(in); got != want {
			t.Errorf("NameFromEmail(%q) = %q, want %q", in, got, want)
		}
	}
}

// FuzzNameFromEmail: whatever the address, the derived name (with the
// numbers added to make it unique) is a valid user name.
func FuzzNameFromEmail(f *testing.F) {
	for _, s := range []string{"a@b", "@", "", "..@x", "-a@b", "Ünïcødé@x", "a+b+c@d"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, email string) {
		n := NameFromEmail(email)
		for _, name := range []string{n, n + "999"} {
			if err := ValidUserName(name); err != nil {
				t.Fatalf("NameFromEmail(%q) = %q: %v", email, name, err)
			}
		}
	})
}

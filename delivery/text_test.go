package delivery

import "testing"

func TestClean(t *testing.T) {
	t.Parallel()
	for _, c := range []struct{ in, want string }{
		{"plain text", "plain text"},
		{"  two\r\nlines\n", "two lines"},
		{"nul\x00byte", "nul byte"},
		{"\x02bold\x02 \x1ditalic\x1d \x1funder\x1f", "bold italic under"},
		{"\x0304,12red on blue\x03 done", "red on blue done"},
		{"\x03123 keeps the third digit", "3 keeps the third digit"},
		{"\x03,5 comma is text", ",5 comma is text"},
		{"\x04FF00AA,00ff00hex\x04", "hex"},
		{"tab\tand\u2028sep\u00a0nbsp", "tab and sep nbsp"},
		{"bidi\u202eoverride", "bidi override"},
		{"bad \xff utf8", "bad \uFFFD utf8"},
		{"ctcp \x01ACTION x\x01", "ctcp ACTION x"},
	} {
		if got := Clean(c.in); got != c.want {
			t.Errorf("Clean(%q) = %q, want %q", c.in, got, c.want)
		}
	}
}

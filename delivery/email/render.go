package email

import (
	"bytes"
	htmltemplate "html/template"
	"strings"
	texttemplate "text/template"
	"unicode"

	"fmn/templates"
)

// Renderer holds the parsed mail templates.
type Renderer struct {
	text *texttemplate.Template
	html *htmltemplate.Template
}

// funcs: line makes bus content one safe line (no CR/LF, no control
// characters) wherever a template shows it.
var funcs = map[string]any{"join": strings.Join, "line": func(s string) string { return OneLine(s, 1000) }}

// NewRenderer parses every mail template; an error here stops the start.
func NewRenderer() (*Renderer, error) {
	t, err := texttemplate.New("").Funcs(funcs).ParseFS(templates.FS, "mail/*.txt")
	if err != nil {
		return nil, err
	}
	h, err := htmltemplate.New("").Funcs(funcs).ParseFS(templates.FS, "mail/*.html")
	if err != nil {
		return nil, err
	}
	return &Renderer{text: t, html: h}, nil
}

// Text renders mail/NAME.txt.
func (r *Renderer) Text(name string, data any) (string, error) {
	var b bytes.Buffer
	err := r.text.ExecuteTemplate(&b, name+".txt", data)
	return b.String(), err
}

// HTML renders mail/NAME.html.
func (r *Renderer) HTML(name string, data any) (string, error) {
	var b bytes.Buffer
	err := r.html.ExecuteTemplate(&b, name+".html", data)
	return b.String(), err
}

// OneLine makes untrusted text safe for a header or an IRC line: control
// characters (CR and LF among them) become spaces, runs of space collapse,
// and the result is cut at max runes on a word boundary where one is near.
func OneLine(s string, max int) string {
	var b strings.Builder
	space := false
	for _, r := range s {
		if unicode.IsControl(r) || unicode.IsSpace(r) || r == '\u2028' || r == '\u2029' {
			space = true
			continue
		}
		if space && b.Len() > 0 {
			b.WriteByte(' ')
		}
		space = false
		b.WriteRune(r)
	}
	out := []rune(b.String())
	if len(out) <= max {
		return string(out)
	}
	cut := max - 1
	for i := cut; i > max*3/4; i-- {
		if out[i] == ' ' {
			cut = i
			break
		}
	}
	return strings.TrimRight(string(out[:cut]), " ") + "…"
}

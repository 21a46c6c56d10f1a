package consumer

import (
	"bytes"
	"errors"
	"strings"

	"github.com/jackc/pgx/v5/pgconn"

	"fmn/rules/meta"
)

// PostgreSQL refuses the NUL character in text and in jsonb strings, while
// JSON (and so fedmsg) allows "\u0000"; a validly signed message carrying
// one would otherwise fail its whole batch forever. Such text is stored
// with U+FFFD in place of each NUL. The stored envelope is then a
// re-encoding, no longer the bytes received (so its signature no longer
// checks against the stored copy); every other envelope is stored as
// received.

const nulEscape = `\u0000`

func cleanNUL(s string) string {
	if strings.IndexByte(s, 0) < 0 {
		return s
	}
	return strings.ReplaceAll(s, "\x00", "\uFFFD")
}

// storableEnvelope returns the envelope bytes to store.
func storableEnvelope(e Envelope) []byte {
	if !bytes.Contains(e.Raw, []byte(nulEscape)) {
		return e.Raw
	}
	raw, err := EncodeEnvelope(cleanValue(e.Fields).(map[string]any))
	if err != nil {
		return e.Raw // cannot happen for decoded JSON; the store will say
	}
	return raw
}

func cleanValue(v any) any {
	switch v := v.(type) {
	case string:
		return cleanNUL(v)
	case []any:
		out := make([]any, len(v))
		for i, x := range v {
			out[i] = cleanValue(x)
		}
		return out
	case map[string]any:
		out := make(map[string]any, len(v))
		for k, x := range v {
			out[cleanNUL(k)] = cleanValue(x)
		}
		return out
	}
	return v
}

// storableMeta cleans the metadata's text the same way.
func storableMeta(m meta.Metadata) meta.Metadata {
	m.Topic, m.App, m.Agent = cleanNUL(m.Topic), cleanNUL(m.App), cleanNUL(m.Agent)
	m.Summary, m.Link, m.Severity = cleanNUL(m.Summary), cleanNUL(m.Link), cleanNUL(m.Severity)
	for _, l := range []*[]string{&m.Usernames, &m.Packages, &m.Groups, &m.Containers, &m.Modules, &m.Flatpaks} {
		for i, s := range *l {
			if strings.IndexByte(s, 0) >= 0 {
				c := append([]string(nil), (*l)...)
				c[i] = cleanNUL(s)
				for j := i + 1; j < len(c); j++ {
					c[j] = cleanNUL(c[j])
				}
				*l = c
				break
			}
		}
	}
	return m
}

// isDataError tells an error caused by a message's content (which no retry
// will cure) from a database that is down or busy.
func isDataError(err error) bool {
	var pg *pgconn.PgError
	if !errors.As(err, &pg) || len(pg.Code) < 2 {
		return false
	}
	switch pg.Code[:2] {
	case "22", // data exception: bad encoding, value out of range
		"54": // program limit exceeded: a value too big for an index row
		return true
	}
	return pg.Code == "23514" // check violation
}

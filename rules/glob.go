package rules

import "strings"

// Glob is a compiled shell-style pattern: '*' matches any run of characters,
// dots included, as in FMN; '?' matches one character. Nothing else is
// special, so topic names never need escaping.
type Glob struct {
	pattern string
	literal bool
}

// CompileGlob compiles a pattern once, at rule load.
func CompileGlob(p string) Glob {
	lit := true
	for i := 0; i < len(p); i++ {
		if p[i] == '*' || p[i] == '?' {
			lit = false
			break
		}
	}
	return Glob{pattern: p, literal: lit}
}

// Match reports whether s matches the whole pattern. It runs in O(len(p) *
// len(s)) at worst, without backtracking blow-ups, because every '*' only
// remembers the last place to resume from.
func (g Glob) Match(s string) bool {
	if g.literal {
		return g.pattern == s
	}
	p := g.pattern
	pi, si := 0, 0
	star, mark := -1, 0
	for si < len(s) {
		switch {
		case pi < len(p) && (p[pi] == '?' || p[pi] == s[si]):
			pi++
			si++
		case pi < len(p) && p[pi] == '*':
			star, mark = pi, si
			pi++
		case star >= 0:
			pi = star + 1
			mark++
			si = mark
		default:
			return false
		}
	}
	for pi < len(p) && p[pi] == '*' {
		pi++
	}
	return pi == len(p)
}

// String returns the source pattern.
func (g Glob) String() string { return g.pattern }

// Like translates the pattern into an SQL LIKE pattern with backslash as
// the escape character: '*' becomes '%', '?' becomes '_', and the LIKE
// metacharacters of the pattern are escaped. (LIKE's '_' matches one
// character where '?' matches one byte: the two differ only on non-ASCII
// text, which topics, user names and package names do not hold.)
func (g Glob) Like() string {
	var b strings.Builder
	for i := 0; i < len(g.pattern); i++ {
		switch c := g.pattern[i]; c {
		case '*':
			b.WriteByte('%')
		case '?':
			b.WriteByte('_')
		case '%', '_', '\\':
			b.WriteByte('\\')
			b.WriteByte(c)
		default:
			b.WriteByte(c)
		}
	}
	return b.String()
}

// IsLiteral reports whether the pattern has no wildcard.
func (g Glob) IsLiteral() bool { return g.literal }

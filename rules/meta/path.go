package meta

import (
	"encoding/json"
	"slices"
	"strconv"
	"strings"
)

// A path addresses values inside a decoded JSON body.  It is written as
// dot-separated keys ("update.submitter.name"); the segment "*" fans out over
// every element of a list (or every value of an object), so
// "update.builds.*.nvr" yields the NVR of each build.  Paths are parsed once,
// when the service tables are built, never per message.
type path []string

func parsePath(s string) path {
	if s == "" || s == "." {
		return nil
	}
	return path(strings.Split(s, "."))
}

// walk calls fn for every value the path reaches.  Missing keys and type
// mismatches simply reach nothing: messages on the bus come in many schema
// versions and a field that is absent is the normal case, not an error.
func (p path) walk(v any, fn func(any)) {
	if len(p) == 0 {
		fn(v)
		return
	}
	seg, rest := p[0], p[1:]
	switch t := v.(type) {
	case map[string]any:
		if seg == "*" {
			for _, k := range sortedKeys(t) {
				rest.walk(t[k], fn)
			}
			return
		}
		if c, ok := t[seg]; ok {
			rest.walk(c, fn)
		}
	case []any:
		if seg == "*" {
			for _, c := range t {
				rest.walk(c, fn)
			}
			return
		}
		// A numeric segment indexes a list ("builds.0.nvr").
		if i, err := strconv.Atoi(seg); err == nil && i >= 0 && i < len(t) {
			rest.walk(t[i], fn)
		}
	}
}

// get returns the raw value at a path without fan-out (nil if absent).
func get(v any, keys ...string) any {
	for _, k := range keys {
		switch t := v.(type) {
		case map[string]any:
			v = t[k]
		case []any:
			i, err := strconv.Atoi(k)
			if err != nil || i < 0 || i >= len(t) {
				return nil
			}
			v = t[i]
		default:
			return nil
		}
	}
	return v
}

// str returns the scalar at the given keys as text, "" when absent.
func str(v any, keys ...string) string {
	s, _ := scalar(get(v, keys...))
	return s
}

// has reports whether the key path exists (even with a null value).
func has(v any, keys ...string) bool {
	for i, k := range keys {
		m, ok := v.(map[string]any)
		if !ok {
			return false
		}
		c, ok := m[k]
		if !ok {
			return false
		}
		if i == len(keys)-1 {
			return true
		}
		v = c
	}
	return len(keys) == 0
}

// scalar renders strings, numbers and booleans as text.  Integral floats are
// printed without a fraction because JSON ids (build ids, ticket numbers)
// decode to float64.
func scalar(x any) (string, bool) {
	switch t := x.(type) {
	case string:
		return t, true
	case json.Number:
		// The consumer decodes envelopes with UseNumber, to keep numbers
		// exact for signatures: an integer reads as its digits, as below.
		if i, err := t.Int64(); err == nil {
			return strconv.FormatInt(i, 10), true
		}
		if f, err := t.Float64(); err == nil {
			return scalar(f)
		}
		return t.String(), true
	case float64:
		if t == float64(int64(t)) && t < 1e18 && t > -1e18 {
			return strconv.FormatInt(int64(t), 10), true
		}
		return strconv.FormatFloat(t, 'g', -1, 64), true
	case bool:
		return strconv.FormatBool(t), true
	case int:
		return strconv.Itoa(t), true
	}
	return "", false
}

func sortedKeys(m map[string]any) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	// Sorted so that "*" over an object is deterministic.
	slices.Sort(keys)
	return keys
}

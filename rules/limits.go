package rules

import (
	"reflect"
	"strings"

	"fmn/apperr"
)

// CheckPatterns refuses a rule holding more than max patterns in all its
// track and filter lists together (max <= 0: no limit). The matcher's work
// and index grow with every pattern, so this bounds what one rule costs;
// FMN_MAX_PATTERNS_PER_RULE sets max. The error names the list in which
// the count passes max, so the editor shows it beside that input.
//
// Lists are counted by reflection over Track and Filters, so a new kind of
// list (a track kind added later) is counted without anyone remembering to.
func (r *Rule) CheckPatterns(max int) error {
	if max <= 0 {
		return nil
	}
	total := 0
	var over string
	for _, l := range patternLists(r) {
		total += len(l.vals)
		if total > max && over == "" {
			over = l.field
		}
	}
	if over != "" {
		return apperr.Invalid(over, "a rule holds at most %d patterns in all its lists together (this one has %d)", max, total)
	}
	return nil
}

// PatternCount is how many patterns the rule's lists hold together.
func (r *Rule) PatternCount() int {
	n := 0
	for _, l := range patternLists(r) {
		n += len(l.vals)
	}
	return n
}

type patternList struct {
	field string // the JSON path, as errors name it: "track.users"
	vals  []string
}

var stringSlice = reflect.TypeOf([]string(nil))

// patternLists returns every []string field of the rule's Track and
// Filters, with its JSON path, in declaration order.
func patternLists(r *Rule) []patternList {
	var out []patternList
	for _, part := range []struct {
		prefix string
		v      reflect.Value
	}{{"track", reflect.ValueOf(r.Track)}, {"filters", reflect.ValueOf(r.Filters)}} {
		t := part.v.Type()
		for i := range t.NumField() {
			f := t.Field(i)
			if f.Type != stringSlice {
				continue
			}
			name, _, _ := strings.Cut(f.Tag.Get("json"), ",")
			if name == "" || name == "-" {
				name = f.Name
			}
			out = append(out, patternList{field: part.prefix + "." + name, vals: part.v.Field(i).Interface().([]string)})
		}
	}
	return out
}

package rules

// ctrack is a rule's track as the index keeps it. A Track value holds ten
// slice headers (240 bytes) while most rules use one or two lists, and the
// index keeps every rule: only the lists in use are kept, which saves
// about 190 bytes a rule (over 100 MB for the benchmark's 600,000 rules).
// The rule's lowest severity rank rides in the flags' word, keeping a
// compiled rule at 96 bytes.
type ctrack struct {
	mine, owned, myGroups bool
	minSev                int8
	lists                 []tlist
}

// tlist is one non-empty list of a track.
type tlist struct {
	field uint8
	vals  []string
}

// fields returns pointers to t's lists; tlist.field is an index into it.
func fields(t *Track) [10]*[]string {
	return [10]*[]string{&t.Users, &t.Packages, &t.Containers, &t.Modules, &t.Flatpaks,
		&t.Topics, &t.Apps, &t.Agents, &t.OwnedBy, &t.Groups}
}

func compactTrack(t Track, minSev int) ctrack {
	c := ctrack{mine: t.Mine, owned: t.Owned, myGroups: t.MyGroups, minSev: int8(minSev)}
	n := 0
	for _, l := range fields(&t) {
		if len(*l) > 0 {
			n++
		}
	}
	if n > 0 {
		c.lists = make([]tlist, 0, n)
		for i, l := range fields(&t) {
			if len(*l) > 0 {
				c.lists = append(c.lists, tlist{field: uint8(i), vals: *l})
			}
		}
	}
	return c
}

// full returns the Track again, for filing and unfiling.
func (c ctrack) full() Track {
	t := Track{Mine: c.mine, Owned: c.owned, MyGroups: c.myGroups}
	fs := fields(&t)
	for _, l := range c.lists {
		*fs[l.field] = l.vals
	}
	return t
}

package rules

// ctrack is a rule's track lists as the index keeps them. A Track value
// holds ten slice headers (240 bytes) while most rules use one or two
// lists, and the index keeps every rule: only the lists in use are kept,
// which saves about 190 bytes a rule (over 100 MB for the benchmark's
// 600,000 rules). The track's flags (mine, owned, my_groups) are bits of
// the compiled rule's flags.
type ctrack []tlist

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

func compactTrack(t Track) ctrack {
	n := 0
	for _, l := range fields(&t) {
		if len(*l) > 0 {
			n++
		}
	}
	if n == 0 {
		return nil
	}
	c := make(ctrack, 0, n)
	for i, l := range fields(&t) {
		if len(*l) > 0 {
			c = append(c, tlist{field: uint8(i), vals: *l})
		}
	}
	return c
}

// track returns the rule's Track again, for filing and unfiling.
func (c *crule) track() Track {
	t := Track{Mine: c.has(flagMine), Owned: c.has(flagOwned), MyGroups: c.has(flagMyGroups)}
	fs := fields(&t)
	for _, l := range c.lists {
		*fs[l.field] = l.vals
	}
	return t
}

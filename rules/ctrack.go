package rules

import (
	"encoding/binary"
	"strings"
)

// A rule's track lists are kept only to unfile the rule when it changes,
// never read by a match, so the index keeps them encoded in one string: a
// Track value holds ten slice headers (240 bytes) and a string per entry,
// each a pointer the collector would follow on every cycle, while one
// string is a single object with nothing inside to scan.
//
// The encoding is a byte of the track's flags (mine, owned, my_groups),
// then for each non-empty list in the order of fields: the list's index,
// its length, then each entry as its length and its bytes, every number a
// uvarint. Entries may hold any byte.

// fields returns pointers to t's lists; the encoding names a list by its
// index here.
func fields(t *Track) [10]*[]string {
	return [10]*[]string{&t.Users, &t.Packages, &t.Containers, &t.Modules, &t.Flatpaks,
		&t.Topics, &t.Apps, &t.Agents, &t.OwnedBy, &t.Groups}
}

// Bits of the encoding's first byte.
const (
	flagMine uint8 = 1 << iota
	flagOwned
	flagMyGroups
)

// encodeTrack encodes t, in one allocation: a full load encodes every
// rule, and the slices an append-built encoding outgrows would be left as
// holes between the index's live objects.
func encodeTrack(t Track) string {
	var flags uint8
	for _, f := range []struct {
		on  bool
		bit uint8
	}{{t.Mine, flagMine}, {t.Owned, flagOwned}, {t.MyGroups, flagMyGroups}} {
		if f.on {
			flags |= f.bit
		}
	}
	var tmp [binary.MaxVarintLen64]byte
	uv := func(x int) int { return binary.PutUvarint(tmp[:], uint64(x)) }
	n := 1
	for i, l := range fields(&t) {
		if len(*l) == 0 {
			continue
		}
		n += uv(i) + uv(len(*l))
		for _, v := range *l {
			n += uv(len(v)) + len(v)
		}
	}
	var b strings.Builder
	b.Grow(n)
	b.WriteByte(flags)
	put := func(x int) { b.Write(tmp[:binary.PutUvarint(tmp[:], uint64(x))]) }
	for i, l := range fields(&t) {
		if len(*l) == 0 {
			continue
		}
		put(i)
		put(len(*l))
		for _, v := range *l {
			put(len(v))
			b.WriteString(v)
		}
	}
	return b.String()
}

// decodeTrack returns the Track encodeTrack encoded; its entries are
// substrings of enc.
func decodeTrack(enc string) Track {
	flags := enc[0]
	t := Track{Mine: flags&flagMine != 0, Owned: flags&flagOwned != 0, MyGroups: flags&flagMyGroups != 0}
	fs := fields(&t)
	at := 1
	next := func() int {
		var x uint64
		for shift := 0; ; shift += 7 {
			c := enc[at]
			at++
			x |= uint64(c&0x7f) << shift
			if c < 0x80 {
				return int(x)
			}
		}
	}
	for at < len(enc) {
		i := next()
		vals := make([]string, next())
		for j := range vals {
			n := next()
			vals[j] = enc[at : at+n]
			at += n
		}
		*fs[i] = vals
	}
	return t
}

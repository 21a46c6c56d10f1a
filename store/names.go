package store

import (
	"cmp"
	"slices"
	"strings"
	"sync"
)

// message_names (migration 0014) holds every name and topic the log ever
// carried, once; the preview finds the names a glob matches there. Its
// statement trigger collects a batch's names from the inserted rows and
// probes the table for each: a tenth of a batch's database time, spent
// again on the same few thousand names batch after batch. The ingester
// remembers instead which names the table holds (KnownNames) and inserts
// only the new ones, in the same round trip as the messages; its
// transactions tell the trigger so (fmn.names_stored, migration 0015).
// Every other insert still goes through the trigger.
//
// Remembering is sound because nothing removes a name: retention drops
// messages, never names (a name left without messages matches nothing).

// Name is one row of message_names.
type Name struct {
	Kind string // topic, usernames, packages, containers, modules or flatpaks
	Name string
}

// maxKnownNames bounds the memory KnownNames takes: past it, it forgets
// everything and learns again (a bus inventing names without end costs
// one probe per name, as the trigger did).
const maxKnownNames = 1 << 18

// KnownNames is the set of names message_names is known to hold, learned
// from committed transactions. It is safe for concurrent use.
type KnownNames struct {
	mu    sync.Mutex
	known map[Name]struct{}
}

// unknown returns the names of msgs not known to be stored, each once, in
// key order.
func (k *KnownNames) unknown(msgs []NewMessage) []Name {
	k.mu.Lock()
	defer k.mu.Unlock()
	var out []Name
	add := func(kind, name string) {
		if n := (Name{kind, name}); !k.has(n) {
			out = append(out, n)
		}
	}
	for _, m := range msgs {
		md := m.Meta
		add("topic", md.Topic)
		for _, l := range []struct {
			kind  string
			names []string
		}{{"usernames", md.Usernames}, {"packages", md.Packages}, {"containers", md.Containers},
			{"modules", md.Modules}, {"flatpaks", md.Flatpaks}} {
			for _, name := range l.names {
				add(l.kind, name)
			}
		}
	}
	slices.SortFunc(out, func(a, b Name) int {
		return cmp.Or(strings.Compare(a.Kind, b.Kind), strings.Compare(a.Name, b.Name))
	})
	return slices.Compact(out)
}

func (k *KnownNames) has(n Name) bool {
	_, ok := k.known[n]
	return ok
}

// Learn records names as stored: call it once the transaction that
// inserted them has committed (never before: a rolled back insert stores
// nothing).
func (k *KnownNames) Learn(names []Name) {
	if len(names) == 0 {
		return
	}
	k.mu.Lock()
	defer k.mu.Unlock()
	if k.known == nil || len(k.known)+len(names) > maxKnownNames {
		k.known = make(map[Name]struct{}, len(names))
	}
	for _, n := range names {
		k.known[n] = struct{}{}
	}
}

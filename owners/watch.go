package owners

import (
	"context"
	"strings"

	"github.com/jackc/pgx/v5"

	"fmn/store"
)

// Watcher reads the bus for ownership and membership news, in the
// transaction that stores each message (consumer.Ingester.InTx):
//
//   - Pagure's pagure.project.user.added|removed|access.updated and
//     pagure.project.group.… (and project.new/deleted), when the project's
//     full_url is on DistgitURL's instance, ask for that project to be read
//     again (distgit_requests; the Refresher answers within seconds);
//   - the account system's fas.group.member.sponsor (a user added to a
//     group, by FAS and by Noggin) and fas.group.member.remove change
//     group_members at once.
type Watcher struct {
	DistgitURL string // e.g. https://src.fedoraproject.org
}

// projectTopics end the topics whose project is read again.
var projectTopics = []string{
	"pagure.project.user.added", "pagure.project.user.removed", "pagure.project.user.access.updated",
	"pagure.project.group.added", "pagure.project.group.removed", "pagure.project.group.access.updated",
	"pagure.project.new", "pagure.project.deleted",
}

// memberTopics end the account system's membership topics; the value says
// whether the user joins.
var memberTopics = map[string]bool{"fas.group.member.sponsor": true, "fas.group.member.remove": false}

// topicIs reports whether topic is suffix, alone or after a prefix
// ("org.fedoraproject.prod." on fedmsg, none on fedora-messaging).
func topicIs(topic, suffix string) bool {
	return topic == suffix || strings.HasSuffix(topic, "."+suffix)
}

// InTx implements consumer.Ingester.InTx.
func (w Watcher) InTx(ctx context.Context, tx pgx.Tx, topic string, body any) error {
	if !strings.Contains(topic, "pagure.project.") && !strings.Contains(topic, "fas.group.member.") {
		return nil // the firehose's usual case, decided at once
	}
	body = unwrap(body)
	for _, t := range projectTopics {
		if topicIs(topic, t) {
			if ns, name, ok := w.project(body); ok {
				return store.RequestProject(ctx, tx, ns, name)
			}
			return nil
		}
	}
	for t, added := range memberTopics {
		if topicIs(topic, t) {
			user, group := nameOf(field(body, "user"), "username"), nameOf(field(body, "group"), "name")
			if user != "" && group != "" {
				return store.ApplyMembership(ctx, tx, user, group, added)
			}
			return nil
		}
	}
	return nil
}

// project reads the message's project: on this instance, in a followed
// namespace, not a fork.
func (w Watcher) project(body any) (ns, name string, ok bool) {
	p, _ := field(body, "project").(map[string]any)
	if p == nil {
		return "", "", false
	}
	full, _ := p["full_url"].(string)
	base := strings.TrimRight(w.DistgitURL, "/")
	if base == "" || !strings.HasPrefix(full, base+"/") {
		return "", "", false
	}
	if parent, fork := p["parent"].(map[string]any); fork && len(parent) > 0 {
		return "", "", false
	}
	ns, _ = p["namespace"].(string)
	name, _ = p["name"].(string)
	if ns == "" || name == "" {
		// Older messages name it only as fullname, "rpms/python-foo".
		fn, _ := p["fullname"].(string)
		ns, name, _ = strings.Cut(fn, "/")
	}
	for _, n := range Namespaces {
		if ns == n && name != "" && !strings.Contains(name, "/") {
			return ns, name, true
		}
	}
	return "", "", false
}

// unwrap returns the body inside fedora-messaging's {"msg": {...}}
// wrapping, as Noggin and some schemas send it.
func unwrap(body any) any {
	m, _ := body.(map[string]any)
	if inner, ok := m["msg"].(map[string]any); ok && len(m) == 1 {
		return inner
	}
	return body
}

func field(body any, k string) any {
	m, _ := body.(map[string]any)
	return m[k]
}

// nameOf reads a name given as a string or as an object (FAS's legacy
// {"username": …}, {"name": …}).
func nameOf(v any, key string) string {
	switch t := v.(type) {
	case string:
		return strings.TrimSpace(t)
	case map[string]any:
		s, _ := t[key].(string)
		return strings.TrimSpace(s)
	}
	return ""
}

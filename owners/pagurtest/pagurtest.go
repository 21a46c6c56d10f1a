// Package pagurtest is an in-process Pagure for tests: the three API v0
// endpoints fmn reads (GET /api/0/projects, /api/0/NAMESPACE/NAME and
// /api/0/group/NAME), answering in Pagure's shapes (project JSON with
// access_users and access_groups by level, "pagination" with whole-URL
// next links, "args", the ENO* error codes) and paginating as Pagure does
// (per_page up to 100). No Pagure can be installed here from Debian's
// packages, so this stands in for src.fedoraproject.org.
package pagurtest

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
)

// Server is a running test Pagure.
type Server struct {
	*httptest.Server

	mu       sync.Mutex
	projects map[string]*project // "rpms/python-foo"
	groups   map[string][]string // group → members
	down     bool

	// Requests counts the API calls answered (errors included).
	Requests atomic.Int64
}

type project struct {
	namespace, name string
	users           map[string]string // user → level
	groups          map[string]string // group → level
	fork            bool
	id              int
}

// Start runs a test Pagure until the test ends.
func Start(t testing.TB) *Server {
	s := &Server{projects: map[string]*project{}, groups: map[string][]string{}}
	s.Server = httptest.NewServer(http.HandlerFunc(s.serve))
	t.Cleanup(s.Close)
	return s
}

// SetUser gives user the access level (owner, admin, commit, collaborator
// or ticket) on NAMESPACE/NAME, creating the project; level "" removes the
// user's access.
func (s *Server) SetUser(namespace, name, user, level string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	p := s.project(namespace, name)
	if level == "" {
		delete(p.users, user)
	} else {
		p.users[user] = level
	}
}

// SetGroup gives group the access level (admin, commit, collaborator or
// ticket) on NAMESPACE/NAME; "" removes it.
func (s *Server) SetGroup(namespace, name, group, level string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	p := s.project(namespace, name)
	if level == "" {
		delete(p.groups, group)
	} else {
		p.groups[group] = level
	}
	if _, ok := s.groups[group]; !ok {
		s.groups[group] = []string{}
	}
}

// Fork adds USER's fork of NAMESPACE/NAME (which Pagure lists with a parent).
func (s *Server) Fork(namespace, name, user string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	p := &project{namespace: namespace, name: name, users: map[string]string{user: "owner"}, groups: map[string]string{},
		fork: true, id: len(s.projects) + 1}
	s.projects["forks/"+user+"/"+namespace+"/"+name] = p
}

// Delete removes a project.
func (s *Server) Delete(namespace, name string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.projects, namespace+"/"+name)
}

// SetDown makes every call answer 503 (true) or work again (false).
func (s *Server) SetDown(down bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.down = down
}

func (s *Server) project(namespace, name string) *project {
	k := namespace + "/" + name
	p := s.projects[k]
	if p == nil {
		p = &project{namespace: namespace, name: name, users: map[string]string{}, groups: map[string]string{}, id: len(s.projects) + 1}
		s.projects[k] = p
	}
	return p
}

// json renders a project as Pagure's Project.to_json(public=True) does,
// with the collaborator level of Pagure 5.
func (p *project) json(host string) map[string]any {
	users := map[string][]string{"owner": {}, "admin": {}, "commit": {}, "collaborator": {}, "ticket": {}}
	groups := map[string][]string{"admin": {}, "commit": {}, "collaborator": {}, "ticket": {}}
	owner := ""
	for u, l := range p.users {
		users[l] = append(users[l], u)
		if l == "owner" {
			owner = u
		}
	}
	for g, l := range p.groups {
		groups[l] = append(groups[l], g)
	}
	for _, l := range users {
		sort.Strings(l)
	}
	for _, l := range groups {
		sort.Strings(l)
	}
	fullname := p.namespace + "/" + p.name
	var parent any
	if p.fork {
		fullname = "forks/" + owner + "/" + fullname
		parent = map[string]any{"name": p.name, "namespace": p.namespace, "fullname": p.namespace + "/" + p.name}
	}
	return map[string]any{
		"access_groups": groups, "access_users": users,
		"close_status": []string{}, "custom_keys": []string{}, "date_created": "1505394470", "date_modified": "1505394470",
		"description": "The " + p.name + " " + p.namespace, "fullname": fullname, "full_url": host + "/" + fullname,
		"id": p.id, "milestones": map[string]any{}, "name": p.name, "namespace": p.namespace, "parent": parent,
		"priorities": map[string]any{}, "tags": []string{}, "url_path": fullname,
		"user": map[string]any{"fullname": owner, "name": owner},
	}
}

func (s *Server) serve(w http.ResponseWriter, r *http.Request) {
	s.Requests.Add(1)
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.down {
		http.Error(w, "Service Unavailable", http.StatusServiceUnavailable)
		return
	}
	path, ok := strings.CutPrefix(r.URL.Path, "/api/0/")
	if !ok || r.Method != http.MethodGet {
		writeErr(w, http.StatusNotFound, "ENOCODE", "Not Found")
		return
	}
	parts := strings.Split(strings.Trim(path, "/"), "/")
	switch {
	case len(parts) == 1 && parts[0] == "projects":
		s.listProjects(w, r)
	case len(parts) == 2 && parts[0] == "group":
		s.group(w, r, parts[1])
	case len(parts) == 2:
		p := s.projects[parts[0]+"/"+parts[1]]
		if p == nil {
			writeErr(w, http.StatusNotFound, "ENOPROJECT", "Project not found")
			return
		}
		writeJSON(w, p.json(s.URL))
	default:
		writeErr(w, http.StatusNotFound, "ENOPROJECT", "Project not found")
	}
}

// sortedProjects returns the projects in a stable order, as Pagure's
// queries order them (by name here).
func (s *Server) sortedProjects(keep func(*project) bool) []*project {
	var out []*project
	for _, p := range s.projects {
		if keep(p) {
			out = append(out, p)
		}
	}
	slices.SortFunc(out, func(a, b *project) int { return strings.Compare(a.namespace+"/"+a.name, b.namespace+"/"+b.name) })
	return out
}

// listProjects is GET /api/0/projects: username (any access level),
// fork, namespace filters.
func (s *Server) listProjects(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	user, fork, ns := q.Get("username"), q.Get("fork"), q.Get("namespace")
	ps := s.sortedProjects(func(p *project) bool {
		if user != "" {
			if _, ok := p.users[user]; !ok {
				return false
			}
		}
		if fork != "" && (fork == "true" || fork == "1") != p.fork {
			return false
		}
		return ns == "" || p.namespace == ns
	})
	page, per, pages, start, end, err := paginate(q, len(ps))
	if err != nil {
		writeErr(w, http.StatusBadRequest, "EINVALIDREQ", err.Error())
		return
	}
	if len(ps) == 0 {
		writeErr(w, http.StatusNotFound, "ENOPROJECTS", "No projects found")
		return
	}
	out := []map[string]any{}
	for _, p := range ps[start:end] {
		out = append(out, p.json(s.URL))
	}
	var forkArg any
	if fork != "" {
		forkArg = fork == "true" || fork == "1"
	}
	writeJSON(w, map[string]any{
		"total_projects": len(ps), "projects": out,
		"args": map[string]any{"tags": []string{}, "username": nullable(user), "fork": forkArg, "pattern": nil,
			"namespace": nullable(ns), "owner": nil, "short": false, "page": page, "per_page": per},
		"pagination": s.pagination(r, page, per, pages),
	})
}

// group is GET /api/0/group/NAME[?projects=true][&acl=LEVEL].
func (s *Server) group(w http.ResponseWriter, r *http.Request, name string) {
	members, ok := s.groups[name]
	if !ok {
		writeErr(w, http.StatusNotFound, "ENOGROUP", "Group not found")
		return
	}
	out := map[string]any{
		"creator":      map[string]any{"default_email": "admin@example.org", "emails": []string{"admin@example.org"}, "fullname": "Admin", "name": "admin"},
		"date_created": "1492011511", "description": name, "display_name": name, "group_type": "user",
		"members": members, "name": name,
	}
	q := r.URL.Query()
	if v := strings.ToLower(q.Get("projects")); v == "1" || v == "true" {
		var levels []string
		switch acl := q.Get("acl"); acl {
		case "":
		case "ticket":
			levels = []string{"admin", "commit", "ticket"}
		case "commit":
			levels = []string{"commit", "admin"}
		default:
			levels = []string{acl}
		}
		ps := s.sortedProjects(func(p *project) bool {
			l, ok := p.groups[name]
			return ok && (levels == nil || slices.Contains(levels, l))
		})
		page, per, pages, start, end, err := paginate(q, len(ps))
		if err != nil {
			writeErr(w, http.StatusBadRequest, "EINVALIDREQ", err.Error())
			return
		}
		list := []map[string]any{}
		for _, p := range ps[start:end] {
			list = append(list, p.json(s.URL))
		}
		out["total_projects"], out["projects"] = len(ps), list
		out["pagination"] = s.pagination(r, page, per, pages)
	}
	writeJSON(w, out)
}

// paginate reads page and per_page as Pagure does (per_page 1–100,
// default 20) and returns the slice bounds of the page.
func paginate(q map[string][]string, total int) (page, per, pages, start, end int, err error) {
	page, per = 1, 20
	get := func(k string) string {
		if v := q[k]; len(v) > 0 {
			return v[0]
		}
		return ""
	}
	if v := get("page"); v != "" {
		if page, err = strconv.Atoi(v); err != nil || page < 1 {
			return 0, 0, 0, 0, 0, fmt.Errorf("page must be a positive number")
		}
	}
	if v := get("per_page"); v != "" {
		if per, err = strconv.Atoi(v); err != nil || per < 1 || per > 100 {
			return 0, 0, 0, 0, 0, fmt.Errorf("per_page must be between 1 and 100")
		}
	}
	pages = (total + per - 1) / per
	start = min((page-1)*per, total)
	end = min(start+per, total)
	return page, per, pages, start, end, nil
}

// pagination is Pagure's block: first, last, next and prev are whole URLs
// of this request with another page.
func (s *Server) pagination(r *http.Request, page, per, pages int) map[string]any {
	link := func(n int) any {
		if n < 1 || n > max(pages, 1) {
			return nil
		}
		q := r.URL.Query()
		q.Set("page", strconv.Itoa(n))
		q.Set("per_page", strconv.Itoa(per))
		return s.URL + r.URL.Path + "?" + q.Encode()
	}
	return map[string]any{"first": link(1), "last": link(max(pages, 1)), "next": link(page + 1), "prev": link(page - 1),
		"page": page, "pages": pages, "per_page": per}
}

func nullable(s string) any {
	if s == "" {
		return nil
	}
	return s
}

func writeJSON(w http.ResponseWriter, v any) {
	w.Header().Set("Content-Type", "application/json")
	json.NewEncoder(w).Encode(v)
}

func writeErr(w http.ResponseWriter, status int, code, msg string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(map[string]string{"error": msg, "error_code": code})
}

// Package owners knows who maintains what in dist-git, a Pagure instance:
// a client for Pagure's API v0, the background refresher that keeps the
// store's copy current, and the bus watcher that applies changes within
// seconds (a pagure.project.user.added message, a FAS group sponsorship).
package owners

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"
)

// Roles that maintain. Pagure's ticket access (and for users, nothing else)
// does not: a ticket triager is not a packager.
var (
	userRoles  = []string{"owner", "admin", "commit", "collaborator"}
	groupRoles = []string{"admin", "commit", "collaborator"}
)

// Namespaces are dist-git's artifact kinds; projects elsewhere (tests/,
// a pagure.io project without a namespace) are not followed.
var Namespaces = []string{"rpms", "container", "modules", "flatpaks"}

// ErrNotFound is a project, user or group that dist-git does not know.
var ErrNotFound = errors.New("not found in dist-git")

// Project is a Pagure project as API v0 returns it (only what fmn reads).
type Project struct {
	Name      string `json:"name"`
	Namespace string `json:"namespace"`
	FullName  string `json:"fullname"`
	// Users and groups by access level: owner, admin, commit,
	// collaborator, ticket (groups have no owner).
	AccessUsers  map[string][]string `json:"access_users"`
	AccessGroups map[string][]string `json:"access_groups"`
	Parent       json.RawMessage     `json:"parent"`
}

// followed reports whether the project is an artifact fmn follows: in a
// dist-git namespace, not a fork.
func (p Project) followed() bool {
	return slices.Contains(Namespaces, p.Namespace) && p.Name != "" && (len(p.Parent) == 0 || string(p.Parent) == "null")
}

// Access is who maintains a project, with the strongest role of each.
type Access struct {
	Users  map[string]string // name → owner, admin, commit or collaborator
	Groups map[string]string // name → admin, commit or collaborator
}

// maintainers reads a project's maintaining users and groups. Roles are
// listed strongest first, so the first role a name appears under is kept.
func (p Project) maintainers() Access {
	a := Access{Users: map[string]string{}, Groups: map[string]string{}}
	for _, role := range userRoles {
		for _, u := range p.AccessUsers[role] {
			if _, ok := a.Users[u]; !ok {
				a.Users[u] = role
			}
		}
	}
	for _, role := range groupRoles {
		for _, g := range p.AccessGroups[role] {
			if _, ok := a.Groups[g]; !ok {
				a.Groups[g] = role
			}
		}
	}
	return a
}

// Client reads dist-git through Pagure's API v0.
type Client struct {
	// BaseURL is the instance, e.g. https://src.fedoraproject.org.
	BaseURL string
	HTTP    *http.Client
}

// Limits that keep a misbehaving server from costing much: pages and bytes
// per answer (src.fedoraproject.org's busiest packager has a few thousand
// projects, 100 a page).
const (
	perPage      = 100
	maxPages     = 500
	maxBodyBytes = 32 << 20
	callTimeout  = 60 * time.Second
)

// NewClient returns a client of the instance at baseURL.
func NewClient(baseURL string) *Client {
	return &Client{BaseURL: strings.TrimRight(baseURL, "/"), HTTP: &http.Client{Timeout: callTimeout}}
}

// get fetches one API URL into v. A 404 is ErrNotFound.
func (c *Client) get(ctx context.Context, u string, v any) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return fmt.Errorf("dist-git request %s: %w", u, err)
	}
	req.Header.Set("Accept", "application/json")
	resp, err := c.HTTP.Do(req)
	if err != nil {
		return fmt.Errorf("dist-git %s: %w", req.URL.Path, err)
	}
	defer resp.Body.Close()
	body := io.LimitReader(resp.Body, maxBodyBytes)
	if resp.StatusCode == http.StatusNotFound {
		return ErrNotFound
	}
	if resp.StatusCode != http.StatusOK {
		io.Copy(io.Discard, body)
		return fmt.Errorf("dist-git %s: %s", req.URL.Path, resp.Status)
	}
	if err := json.NewDecoder(body).Decode(v); err != nil {
		return fmt.Errorf("dist-git %s: decode: %w", req.URL.Path, err)
	}
	return nil
}

// pagination is Pagure's page block; Next is the whole URL of the next
// page, null on the last.
type pagination struct {
	Next  *string `json:"next"`
	Page  int     `json:"page"`
	Pages int     `json:"pages"`
}

// pages follows pagination.next from first, on this instance only, calling
// each with the decoded page.
func (c *Client) pages(ctx context.Context, first string, each func(raw json.RawMessage) (*pagination, error)) error {
	base, err := url.Parse(c.BaseURL)
	if err != nil {
		return fmt.Errorf("dist-git URL: %w", err)
	}
	next := first
	for n := 0; next != ""; n++ {
		if n == maxPages {
			return fmt.Errorf("dist-git %s: more than %d pages", first, maxPages)
		}
		var raw json.RawMessage
		if err := c.get(ctx, next, &raw); err != nil {
			return err
		}
		p, err := each(raw)
		if err != nil {
			return err
		}
		next = ""
		if p != nil && p.Next != nil && *p.Next != "" {
			u, err := url.Parse(*p.Next)
			if err != nil || u.Host != "" && u.Host != base.Host {
				return fmt.Errorf("dist-git %s: next page %q is not on %s", first, *p.Next, base.Host)
			}
			next = base.ResolveReference(u).String()
		}
	}
	return nil
}

// projectPages reads every page of a project listing from first, keeping
// the projects keep accepts among those fmn follows.
func (c *Client) projectPages(ctx context.Context, first, what string, keep func(Project) bool) ([]Project, error) {
	var out []Project
	err := c.pages(ctx, first, func(raw json.RawMessage) (*pagination, error) {
		var page struct {
			Projects   []Project   `json:"projects"`
			Pagination *pagination `json:"pagination"`
		}
		if err := json.Unmarshal(raw, &page); err != nil {
			return nil, fmt.Errorf("dist-git %s: %w", what, err)
		}
		for _, p := range page.Projects {
			if p.followed() && keep(p) {
				out = append(out, p)
			}
		}
		return page.Pagination, nil
	})
	return out, err
}

// UserProjects returns the dist-git projects user maintains (owner, admin,
// commit or collaborator), forks left out. GET /api/0/projects?username=U
// lists every project the user has any access to, ticket included; the
// role is read from each project's access_users.
func (c *Client) UserProjects(ctx context.Context, user string) ([]Project, error) {
	q := url.Values{"username": {user}, "fork": {"false"}, "short": {"false"}, "per_page": {fmt.Sprint(perPage)}}
	out, err := c.projectPages(ctx, c.BaseURL+"/api/0/projects?"+q.Encode(), "projects of "+user, func(p Project) bool {
		_, ok := p.maintainers().Users[user]
		return ok
	})
	if errors.Is(err, ErrNotFound) {
		// Pagure answers 404 (ENOPROJECTS) for a user with no project.
		return nil, nil
	}
	return out, err
}

// GroupProjects returns the dist-git projects group maintains (admin,
// commit or collaborator). GET /api/0/group/G?projects=true lists all the
// group's projects, paginated; Pagure's acl=commit filter would drop the
// collaborator level, so the role is read from each project instead. A
// group dist-git does not know is ErrNotFound.
func (c *Client) GroupProjects(ctx context.Context, group string) ([]Project, error) {
	q := url.Values{"projects": {"true"}, "per_page": {fmt.Sprint(perPage)}}
	return c.projectPages(ctx, c.BaseURL+"/api/0/group/"+url.PathEscape(group)+"?"+q.Encode(), "group "+group, func(p Project) bool {
		_, ok := p.maintainers().Groups[group]
		return ok
	})
}

// GetProject returns one project, GET /api/0/NAMESPACE/NAME; a project
// dist-git does not know (deleted, or never there) is ErrNotFound.
func (c *Client) GetProject(ctx context.Context, namespace, name string) (Project, error) {
	var p Project
	err := c.get(ctx, c.BaseURL+"/api/0/"+url.PathEscape(namespace)+"/"+url.PathEscape(name), &p)
	return p, err
}

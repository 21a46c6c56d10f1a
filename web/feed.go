package web

import (
	"bytes"
	"encoding/xml"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/go-chi/chi/v5"

	"fmn/delivery"
)

// Atom (RFC 4287) shapes, only what a feed of notifications needs.
type atomFeed struct {
	XMLName xml.Name    `xml:"http://www.w3.org/2005/Atom feed"`
	ID      string      `xml:"id"`
	Title   string      `xml:"title"`
	Updated string      `xml:"updated"`
	Links   []atomLink  `xml:"link"`
	Entries []atomEntry `xml:"entry"`
}

type atomLink struct {
	Href string `xml:"href,attr"`
	Rel  string `xml:"rel,attr,omitempty"`
}

type atomEntry struct {
	ID       string     `xml:"id"`
	Title    string     `xml:"title"`
	Updated  string     `xml:"updated"`
	Author   atomAuthor `xml:"author"`
	Links    []atomLink `xml:"link,omitempty"`
	Category []atomCat  `xml:"category,omitempty"`
	Summary  string     `xml:"summary"`
}

type atomAuthor struct {
	Name string `xml:"name"`
}

type atomCat struct {
	Term string `xml:"term,attr"`
}

// feed serves a user's notifications as Atom at a secret address (feed
// readers cannot sign in). An unknown address is a plain 404. encoding/xml
// escapes every field, so bus content stays text.
func (s *Server) feed(w http.ResponseWriter, r *http.Request) {
	s.api(func(w http.ResponseWriter, r *http.Request) error {
		u, err := s.Store.UserByFeedToken(r.Context(), chi.URLParam(r, "token"))
		if err != nil {
			return err
		}
		ns, err := s.Store.ListNotifications(r.Context(), u.ID, 50, 0)
		if err != nil {
			return err
		}
		f := atomFeed{
			ID:      fmt.Sprintf("%s/feed/user/%d", s.BaseURL, u.ID),
			Title:   "fmn notifications for " + u.Name,
			Updated: time.Now().UTC().Format(time.RFC3339),
			Links:   []atomLink{{Href: s.BaseURL + "/", Rel: "alternate"}},
		}
		if len(ns) > 0 {
			f.Updated = ns[0].CreatedAt.UTC().Format(time.RFC3339)
		}
		for _, n := range ns {
			m := n.Message
			title := m.Summary
			if title == "" {
				title = m.Topic
			}
			e := atomEntry{
				ID:       fmt.Sprintf("%s/notification/%d", s.BaseURL, n.ID),
				Title:    title,
				Updated:  n.CreatedAt.UTC().Format(time.RFC3339),
				Author:   atomAuthor{Name: m.Agent},
				Category: []atomCat{{Term: m.App}},
				Summary:  fmt.Sprintf("%s (%s) — rule %q", title, m.Topic, n.RuleName),
			}
			if e.Author.Name == "" {
				e.Author.Name = m.App
			}
			// Only web links: a javascript: or data: link from the bus must
			// not reach a feed reader that trusts its feeds.
			if l := strings.ToLower(m.Link); strings.HasPrefix(l, "https://") || strings.HasPrefix(l, "http://") {
				e.Links = []atomLink{{Href: m.Link, Rel: "alternate"}}
			}
			// Why it was made, and how to stop more like it.
			e.Links = append(e.Links, atomLink{Href: delivery.WhyURL(s.BaseURL, n.ID), Rel: "related"})
			f.Entries = append(f.Entries, e)
		}
		var buf bytes.Buffer
		buf.WriteString(xml.Header)
		if err := xml.NewEncoder(&buf).Encode(f); err != nil {
			return fmt.Errorf("encode feed: %w", err)
		}
		w.Header().Set("Content-Type", "application/atom+xml; charset=utf-8")
		w.Header().Set("Cache-Control", "private, max-age=60")
		_, err = buf.WriteTo(w)
		return err
	})(w, r)
}

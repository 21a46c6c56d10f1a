// Package meta derives what a message is about from its envelope.
//
// This file is the walking skeleton's minimal extractor (app from the topic,
// agent and usernames from common fields); the per-service tables replace it.
package meta

import (
	"sort"
	"strings"
)

// Metadata is what the rules engine sees of a message.
type Metadata struct {
	Topic     string   `json:"topic"`
	App       string   `json:"app"`
	Agent     string   `json:"agent"`
	Usernames []string `json:"usernames"`
	Packages  []string `json:"packages"`
	Summary   string   `json:"summary"`
	Link      string   `json:"link"`
	Severity  string   `json:"severity"`
}

// Extract derives Metadata from a decoded envelope.
func Extract(topic string, body any, username string) Metadata {
	md := Metadata{Topic: topic, Usernames: []string{}, Packages: []string{}}
	parts := strings.Split(topic, ".")
	if len(parts) > 3 {
		md.App = parts[3]
	}
	m, _ := body.(map[string]any)
	users := map[string]bool{}
	for _, k := range []string{"agent", "user", "username", "owner"} {
		if s, ok := m[k].(string); ok && s != "" {
			users[s] = true
			if md.Agent == "" && k != "owner" {
				md.Agent = s
			}
		}
	}
	if s, ok := m["package"].(string); ok && s != "" {
		md.Packages = append(md.Packages, s)
	}
	for u := range users {
		md.Usernames = append(md.Usernames, u)
	}
	sort.Strings(md.Usernames)
	md.Summary = md.App + " " + topic
	return md
}

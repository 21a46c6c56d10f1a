// Package templates embeds fmn's pages, mail bodies and message formats.
// Every template is parsed at start, so a broken one stops the service from
// starting instead of failing on the first user who hits it.
package templates

import "embed"

// FS holds the page templates (*.html), the mail templates (mail/) and the
// static files served as they are (static/).
//
//go:embed *.html mail/* static/*
var FS embed.FS

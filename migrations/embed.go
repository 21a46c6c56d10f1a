// Package migrations embeds fmn's numbered SQL migrations into the binary.
// The files live here, beside this file, because go:embed cannot reach "..".
package migrations

import "embed"

// FS holds NNNN_name.sql files, applied in numeric order.
//
//go:embed *.sql
var FS embed.FS

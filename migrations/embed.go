// Package migrations holds the versioned SQL schema, embedded in the binary
// and applied by internal/database.
package migrations

import "embed"

// FS holds every migration, named NNNNN_what.sql in goose's format.
//
//go:embed *.sql
var FS embed.FS

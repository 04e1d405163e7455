// Package migrations holds the versioned schema, embedded in the binary and
// applied by internal/database: SQL files, and the few steps that need the
// app's own code written in Go (listed in Go).
package migrations

import "embed"

// FS holds every migration, named NNNNN_what.sql (or .go) in goose's
// format. The Go files are embedded too, so goose checks each is registered
// and a change to one changes FS (the test database template's name).
//
//go:embed *.sql *.go
var FS embed.FS

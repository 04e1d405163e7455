// Package static holds the files served under /static (the stylesheet, the
// vendored htmx, the small app script and the favicon), embedded in the
// binary. Each is served under a name carrying a hash of its content, so
// browsers may cache it for a year: see Asset and Lookup.
package static

import "embed"

// FS holds the static files.
//
//go:embed *.css *.js *.svg
var FS embed.FS

// Package static holds the CSS and other files served under /static,
// embedded in the binary.
package static

import "embed"

// FS holds the static files.
//
//go:embed *.css
var FS embed.FS

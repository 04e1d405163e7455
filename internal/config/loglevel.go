package config

import (
	"log/slog"
	"strings"
)

// logLevel reads a slog level by name: debug, info, warn or error. At warn
// and above the per-request log lines (info) are not written, which load
// tests use (docs/performance.md); errors and warnings still are.
func (p *parser) logLevel(name string, def slog.Level) slog.Level {
	v := p.str(name, "")
	if v == "" {
		return def
	}
	var l slog.Level
	switch strings.ToLower(v) {
	case "debug", "info", "warn", "error":
		_ = l.UnmarshalText([]byte(v)) // one of slog's own names
		return l
	}
	p.fail(name, v, "want debug, info, warn or error")
	return def
}

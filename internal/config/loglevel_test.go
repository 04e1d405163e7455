package config

import (
	"log/slog"
	"strings"
	"testing"
)

func TestLogLevel(t *testing.T) {
	for value, want := range map[string]slog.Level{"": slog.LevelInfo, "warn": slog.LevelWarn, "DEBUG": slog.LevelDebug, "error": slog.LevelError} {
		cfg, err := Load(env(map[string]string{"LOG_LEVEL": value}))
		if err != nil || cfg.LogLevel != want {
			t.Errorf("LOG_LEVEL=%q: %v, %v; want %v", value, cfg.LogLevel, err, want)
		}
	}
	for _, bad := range []string{"loud", "warn+2", "-4"} {
		if _, err := Load(env(map[string]string{"LOG_LEVEL": bad})); err == nil || !strings.Contains(err.Error(), "LOG_LEVEL=") {
			t.Errorf("LOG_LEVEL=%q: error %v does not name the variable", bad, err)
		}
	}
}

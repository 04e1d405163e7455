package main

import (
	"bytes"
	"context"
	"strings"
	"testing"
)

func TestStartupNamesWhatIsWrong(t *testing.T) {
	for name, tc := range map[string]struct {
		env  map[string]string
		args []string
		want string
	}{
		"bad variable":      {env: map[string]string{"SESSION_LIFETIME": "forever"}, want: "SESSION_LIFETIME"},
		"postgres down":     {env: map[string]string{"DATABASE_URL": "postgres://postgres@127.0.0.1:1/x?connect_timeout=1"}, want: "postgres at 127.0.0.1:1/x is unreachable"},
		"redis down":        {env: map[string]string{"REDIS_URL": "redis://127.0.0.1:1/0"}, args: []string{"-no-migrate"}, want: "redis at redis://127.0.0.1:1/0 is unreachable"},
		"unknown command":   {args: []string{"frobnicate"}, want: `unknown command "frobnicate"`},
		"unknown flag":      {args: []string{"-frobnicate"}, want: "flag provided but not defined"},
		"password in a URL": {env: map[string]string{"DATABASE_URL": "postgres://u:hunter2@127.0.0.1:1/x?connect_timeout=1"}, want: "unreachable"},
	} {
		t.Run(name, func(t *testing.T) {
			var stderr bytes.Buffer
			err := run(context.Background(), tc.args, func(k string) string { return tc.env[k] }, &stderr)
			if err == nil {
				t.Fatal("run succeeded")
			}
			msg := err.Error() + stderr.String()
			if !strings.Contains(msg, tc.want) {
				t.Errorf("error %q does not say %q", msg, tc.want)
			}
			if strings.Contains(msg, "hunter2") {
				t.Error("the error shows the database password")
			}
		})
	}
}

package main

import (
	"bytes"
	"context"
	"io"
	"strings"
	"testing"

	"github.com/gatehouse/gatehouse/internal/apptest"
)

func TestStartupNamesWhatIsWrong(t *testing.T) {
	for name, tc := range map[string]struct {
		env  map[string]string
		args []string
		want string
	}{
		"bad variable":      {env: map[string]string{"SESSION_LIFETIME": "forever"}, want: "SESSION_LIFETIME"},
		"postgres down":     {env: map[string]string{"DATABASE_URL": "postgres://postgres@127.0.0.1:1/x?connect_timeout=1", "STARTUP_TIMEOUT": "1s"}, want: "postgres at 127.0.0.1:1/x is unreachable"},
		"redis down":        {env: map[string]string{"REDIS_URL": "redis://127.0.0.1:1/0", "STARTUP_TIMEOUT": "1s"}, args: []string{"-no-migrate"}, want: "redis at redis://127.0.0.1:1/0 is unreachable"},
		"unknown command":   {args: []string{"frobnicate"}, want: `unknown command "frobnicate"`},
		"unknown flag":      {args: []string{"-frobnicate"}, want: "flag provided but not defined"},
		"password in a URL": {env: map[string]string{"DATABASE_URL": "postgres://u:hunter2@127.0.0.1:1/x?connect_timeout=1", "STARTUP_TIMEOUT": "1s"}, want: "unreachable"},
	} {
		t.Run(name, func(t *testing.T) {
			var stderr bytes.Buffer
			err := run(context.Background(), tc.args, func(k string) string { return tc.env[k] }, strings.NewReader(""), io.Discard, &stderr)
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
			// A service that is down is waited for (STARTUP_TIMEOUT), and
			// the log says which.
			if svc, _, ok := strings.Cut(tc.want, " at "); ok && !strings.Contains(stderr.String(), "waiting for "+svc) {
				t.Errorf("the log does not say start-up waited for %s:\n%s", svc, stderr.String())
			}
		})
	}
}

func TestUserCreate(t *testing.T) {
	dbURL := apptest.NewDatabase(t)
	env := func(k string) string {
		if k == "DATABASE_URL" {
			return dbURL
		}
		return ""
	}
	create := func(stdin string, args ...string) (string, error) {
		var out, errOut bytes.Buffer
		err := run(context.Background(), append([]string{"user", "create"}, args...), env,
			strings.NewReader(stdin), &out, &errOut)
		return out.String() + errOut.String(), err
	}

	out, err := create("correct horse battery\n", "-email", "root@example.com", "-name", "Root", "-admin")
	if err != nil || !strings.Contains(out, "created admin root@example.com") {
		t.Fatalf("create admin: %q, %v", out, err)
	}
	if _, err := create("another password\n", "-email", "ROOT@example.com", "-name", "Again"); err == nil ||
		!strings.Contains(err.Error(), "email already taken") {
		t.Fatalf("duplicate email: %v", err)
	}
	out, err = create("a plain user pw", "-email", "user@example.com", "-name", "User")
	if err != nil || !strings.Contains(out, "created user user@example.com") {
		t.Fatalf("create user: %q, %v", out, err)
	}
	for name, tc := range map[string]struct {
		stdin string
		args  []string
		want  string
	}{
		"no password":    {"", []string{"-email", "x@example.com", "-name", "X"}, "no password"},
		"short password": {"short\n", []string{"-email", "x@example.com", "-name", "X"}, "at least 8"},
		"bad email":      {"long enough pw\n", []string{"-email", "nope", "-name", "X"}, "-email"},
		"no name":        {"long enough pw\n", []string{"-email", "x@example.com"}, "-name"},
		"no subcommand":  {"", nil, "usage"},
	} {
		t.Run(name, func(t *testing.T) {
			var errOut bytes.Buffer
			args := append([]string{"user"}, tc.args...)
			if name != "no subcommand" {
				args = append([]string{"user", "create"}, tc.args...)
			}
			err := run(context.Background(), args, env, strings.NewReader(tc.stdin), io.Discard, &errOut)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("got %v, want an error saying %q", err, tc.want)
			}
		})
	}

	// The admin can sign in to the app and reach the admin pages.
	app := apptest.New(t, apptest.With("DATABASE_URL", dbURL))
	c := app.Client(t)
	c.SignIn("root@example.com", "correct horse battery")
	if res := c.Get("/admin/users"); res.StatusCode != 200 {
		t.Fatalf("admin created on the command line gets %d on /admin/users", res.StatusCode)
	}
}

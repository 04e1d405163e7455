package main

import (
	"bufio"
	"cmp"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"strings"

	"github.com/gatehouse/gatehouse/internal/config"
	"github.com/gatehouse/gatehouse/internal/database"
	"github.com/gatehouse/gatehouse/internal/models"
	"github.com/gatehouse/gatehouse/internal/password"
)

// userCommand runs `web user create`: it creates an account from the
// command line, which is how the first administrator comes to be. The
// password comes from standard input so it stays out of shell history.
func userCommand(ctx context.Context, cfg config.Config, log *slog.Logger, args []string, stdin io.Reader, stdout, stderr io.Writer) error {
	if len(args) == 0 || args[0] != "create" {
		return errors.New("usage: web user create -email E -name N [-admin] (password on standard input)")
	}
	fs := flag.NewFlagSet("web user create", flag.ContinueOnError)
	fs.SetOutput(stderr)
	email := fs.String("email", "", "email address (required)")
	name := fs.String("name", "", "display name (required)")
	admin := fs.Bool("admin", false, "make the user an administrator")
	if err := fs.Parse(args[1:]); err != nil {
		return err
	}
	*email, *name = strings.TrimSpace(*email), strings.TrimSpace(*name)
	if _, err := models.NormalizeEmail(*email); err != nil {
		return fmt.Errorf("-email: %w", err)
	}
	if msg := models.CheckName(*name); msg != "" {
		return fmt.Errorf("-name: %s", msg)
	}
	pw, err := readPassword(stdin)
	if err != nil {
		return err
	}
	if msg := cmp.Or(password.CheckLength(pw), password.CheckCommon(pw)); msg != "" {
		return fmt.Errorf("password: %s", msg)
	}

	db, sqlDB, err := database.Open(ctx, cfg.DatabaseURL, database.Limits{})
	if err != nil {
		return err
	}
	defer sqlDB.Close()
	if cfg.MigrateOnStart {
		if err := database.Migrate(ctx, sqlDB, log); err != nil {
			return err
		}
	}
	hash, err := password.NewHasher().Hash(ctx, pw)
	if err != nil {
		return err
	}
	u := &models.User{Email: *email, Name: *name, PasswordHash: hash, Role: models.RoleUser}
	if *admin {
		u.Role = models.RoleAdmin
	}
	if err := models.NewUserStore(db).Create(ctx, u); errors.Is(err, models.ErrConflict) {
		return fmt.Errorf("email already taken: %s", *email)
	} else if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "created %s %s (id %d)\n", u.Role, u.Email, u.ID)
	return nil
}

// readPassword reads the first line of r, without its line ending.
func readPassword(r io.Reader) (string, error) {
	line, err := bufio.NewReader(io.LimitReader(r, 4096)).ReadString('\n')
	if err != nil && !errors.Is(err, io.EOF) {
		return "", fmt.Errorf("reading the password from standard input: %w", err)
	}
	pw := strings.TrimRight(line, "\r\n")
	if pw == "" {
		return "", errors.New("no password on standard input (pipe it in: echo \"$PASSWORD\" | web user create ...)")
	}
	return pw, nil
}

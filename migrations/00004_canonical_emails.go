package migrations

import (
	"context"
	"database/sql"
	"fmt"
	"strings"

	"github.com/pressly/goose/v3"

	"github.com/gatehouse/gatehouse/internal/models"
)

// Emails become canonical (models.NormalizeEmail: NFKC, lower case, IDNA
// domain), and the unique index holds the stored form itself instead of
// Postgres's lower(), which neither folds compatibility letters ("ſ" is not
// "s" to it) nor lower-cases the same way in every locale.
//
// This step is Go, not SQL, so that existing rows get exactly the form the
// app computes at sign-in. It changes nothing and fails, naming the
// accounts, when an address has no canonical form (it hides invisible
// characters or mixes scripts: the look-alikes this migration exists to
// stop) or when two accounts share one canonical form (one of them is
// probably an impersonation). Which account keeps an address is for an
// operator to decide (docs/security.md, "Email addresses"); the migration
// runs again at the next start.
func canonicalEmails() *goose.Migration {
	return goose.NewGoMigration(4,
		&goose.GoFunc{RunTx: canonicalEmailsUp},
		&goose.GoFunc{RunTx: func(ctx context.Context, tx *sql.Tx) error {
			_, err := tx.ExecContext(ctx, `DROP INDEX users_email_key;
			CREATE UNIQUE INDEX users_email_lower_key ON users (lower(email))`)
			return err
		}},
	)
}

// Go returns the migrations written in Go, for goose.WithGoMigrations.
// They are made anew for each provider: goose writes into the migrations
// it is given, so providers made at once (instances migrating together)
// must not share them.
func Go() []*goose.Migration { return []*goose.Migration{canonicalEmails()} }

func canonicalEmailsUp(ctx context.Context, tx *sql.Tx) error {
	rows, err := tx.QueryContext(ctx, `SELECT id, email FROM users ORDER BY id FOR UPDATE`)
	if err != nil {
		return err
	}
	defer rows.Close()
	type change struct {
		id    int64
		email string
	}
	var changes []change
	var problems []string
	owner := map[string]int64{} // canonical email -> first account with it
	for rows.Next() {
		var id int64
		var email string
		if err := rows.Scan(&id, &email); err != nil {
			return err
		}
		canonical, err := models.NormalizeEmail(email)
		if err != nil {
			problems = append(problems, fmt.Sprintf("user %d %+q: %v", id, email, err))
			continue
		}
		if first, taken := owner[canonical]; taken {
			problems = append(problems, fmt.Sprintf("users %d and %d are both %+q", first, id, canonical))
			continue
		}
		owner[canonical] = id
		if canonical != email {
			changes = append(changes, change{id, canonical})
		}
	}
	if err := rows.Err(); err != nil {
		return err
	}
	if len(problems) > 0 {
		return fmt.Errorf("%d email addresses cannot be made canonical; give these accounts other addresses "+
			"(docs/security.md, \"Email addresses\") and start again:\n\t%s",
			len(problems), strings.Join(problems, "\n\t"))
	}
	for _, c := range changes {
		if _, err := tx.ExecContext(ctx, `UPDATE users SET email = $1, updated_at = now() WHERE id = $2`, c.email, c.id); err != nil {
			return fmt.Errorf("user %d: %w", c.id, err)
		}
	}
	_, err = tx.ExecContext(ctx, `DROP INDEX users_email_lower_key;
		CREATE UNIQUE INDEX users_email_key ON users (email)`)
	return err
}

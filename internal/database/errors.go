package database

import (
	"context"
	"database/sql/driver"
	"errors"
	"io"
	"net"
	"strings"

	"github.com/jackc/pgx/v5/pgconn"
	"gorm.io/gorm"
)

// CountErrors tells count of every failed statement run through db, with
// its kind: "unavailable" (Postgres unreachable, too slow, shutting down
// or out of connections), "constraint" (a write Postgres refused, class
// 23: often a user's input, such as an e-mail already taken) or "other".
// Not found is an answer, not a failure, and a request the client gave up
// (context.Canceled) is neither: neither is counted. The metrics' Postgres
// error counter hooks in here.
func CountErrors(db *gorm.DB, count func(kind string)) error {
	hook := func(tx *gorm.DB) {
		if kind := errorKind(tx.Error); kind != "" {
			count(kind)
		}
	}
	cb := db.Callback()
	const name = "gatehouse:count_errors"
	return errors.Join(
		cb.Create().After("gorm:create").Register(name, hook),
		cb.Query().After("gorm:query").Register(name, hook),
		cb.Update().After("gorm:update").Register(name, hook),
		cb.Delete().After("gorm:delete").Register(name, hook),
		cb.Row().After("gorm:row").Register(name, hook),
		cb.Raw().After("gorm:raw").Register(name, hook),
	)
}

// errorKind classifies err for CountErrors ("" for none worth counting).
func errorKind(err error) string {
	if err == nil || errors.Is(err, gorm.ErrRecordNotFound) || errors.Is(err, context.Canceled) {
		return ""
	}
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) {
		switch {
		case strings.HasPrefix(pgErr.Code, "08"), strings.HasPrefix(pgErr.Code, "57P"), pgErr.Code == "53300":
			return "unavailable"
		case strings.HasPrefix(pgErr.Code, "23"):
			return "constraint"
		}
		return "other"
	}
	// No answer from Postgres at all: unreachable, a broken connection, or
	// a deadline (DATABASE_TIMEOUT).
	var netErr net.Error
	var connErr *pgconn.ConnectError
	if errors.As(err, &netErr) || errors.As(err, &connErr) || errors.Is(err, context.DeadlineExceeded) ||
		errors.Is(err, driver.ErrBadConn) || errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) ||
		pgconn.Timeout(err) {
		return "unavailable"
	}
	return "other"
}

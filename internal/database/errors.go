package database

import (
	"context"
	"database/sql/driver"
	"errors"
	"io"
	"net"
	"strings"
	"syscall"

	"github.com/jackc/pgx/v5/pgconn"
	"gorm.io/gorm"
)

// This file is the one place that knows what the Postgres driver's errors
// mean; callers ask Unavailable or Refused.

// Unavailable reports whether err means Postgres could not be reached or
// cannot serve right now (a network failure, a timeout, a connection cut
// while it restarts, shutting down or starting up, out of connections):
// worth a 503 and a later retry, not a 500.
func Unavailable(err error) bool {
	var netErr net.Error
	var connErr *pgconn.ConnectError
	return errors.As(err, &netErr) || errors.As(err, &connErr) ||
		errors.Is(err, syscall.ECONNREFUSED) || errors.Is(err, syscall.ECONNRESET) ||
		errors.Is(err, driver.ErrBadConn) || errors.Is(err, context.DeadlineExceeded) ||
		errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, io.EOF) || pgconn.Timeout(err) ||
		cannotServe(err)
}

// cannotServe reports whether Postgres answered that it cannot serve: a
// connection exception (class 08), shutting down or starting up
// (57P01-57P03), or out of connections (53300).
func cannotServe(err error) bool {
	var pgErr *pgconn.PgError
	if !errors.As(err, &pgErr) {
		return false
	}
	switch pgErr.Code {
	case "57P01", "57P02", "57P03", "53300":
		return true
	}
	return strings.HasPrefix(pgErr.Code, "08")
}

// Refused reports whether Postgres answered err and the answer will not
// change on a retry: bad data (class 22) or a broken constraint (23).
// Anything else (unreachable, timeouts, deadlocks, a shutdown) is worth
// another try.
func Refused(err error) bool {
	var pgErr *pgconn.PgError
	if !errors.As(err, &pgErr) || len(pgErr.Code) < 2 {
		return false
	}
	class := pgErr.Code[:2]
	return class == "22" || class == "23"
}

// CountErrors tells count of every failed statement run through db, with
// its kind: "unavailable" (Postgres unreachable, too slow, shutting down
// or out of connections: Unavailable), "constraint" (a write Postgres
// refused, class 23: often a user's input, such as an e-mail already
// taken) or "other". Not found is an answer, not a failure, and a request
// the client gave up (context.Canceled) is neither: neither is counted.
// The metrics' Postgres error counter hooks in here.
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
	switch {
	case Unavailable(err):
		return "unavailable"
	case errors.As(err, &pgErr) && strings.HasPrefix(pgErr.Code, "23"):
		return "constraint"
	}
	return "other"
}

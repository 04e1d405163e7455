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

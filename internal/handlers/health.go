package handlers

import (
	"context"
	"net/http"
	"time"

	"github.com/labstack/echo/v4"
)

// healthz says the process is alive; it checks nothing else.
func (h *Handlers) healthz(c echo.Context) error {
	return c.String(http.StatusOK, "ok\n")
}

// readyz says whether Postgres and Redis answer, naming the one that does
// not.
func (h *Handlers) readyz(c echo.Context) error {
	ctx, cancel := context.WithTimeout(c.Request().Context(), 2*time.Second)
	defer cancel()
	status, body := http.StatusOK, ""
	if err := h.postgres.PingContext(ctx); err != nil {
		h.log.WarnContext(ctx, "readiness: postgres", "err", err)
		status, body = http.StatusServiceUnavailable, body+"postgres: unreachable\n"
	} else {
		body += "postgres: ok\n"
	}
	if err := h.sessions.Check(ctx); err != nil {
		h.log.WarnContext(ctx, "readiness: redis", "err", err)
		status, body = http.StatusServiceUnavailable, body+"redis: unreachable\n"
	} else {
		body += "redis: ok\n"
		// A wrong eviction policy does not stop the instance serving: it
		// is said here, and logged, for the operator to fix.
		if warning, _ := h.sessions.EvictionWarning(ctx); warning != "" {
			h.log.WarnContext(ctx, "readiness: redis "+warning)
			body += "redis: warning: " + warning + "\n"
		}
	}
	c.Response().Header().Set(echo.HeaderCacheControl, "no-store")
	return c.String(status, body)
}

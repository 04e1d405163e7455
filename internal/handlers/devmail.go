package handlers

import (
	"net/http"
	"strconv"

	"github.com/labstack/echo/v4"

	"github.com/gatehouse/gatehouse/views"
)

// The development mailbox lists the mail the app would have sent, so the
// whole flow of a mailed link works on a laptop without a mail server. It
// exists only when SMTP_URL is unset and BASE_URL is a loopback address
// (config.DevMailbox): it shows live tokens to anyone who can reach it.

func (h *Handlers) devMailbox(c echo.Context) error {
	msgs, err := h.store.RecentMail(c.Request().Context(), 50)
	if err != nil {
		return err
	}
	return h.render(c, http.StatusOK, views.DevMailboxPage(msgs))
}

// devMailboxMessage serves one message's HTML part as it would appear in a
// mail client, with a CSP that lets its inline styles (and nothing else)
// apply.
func (h *Handlers) devMailboxMessage(c echo.Context) error {
	id, err := strconv.ParseInt(c.Param("id"), 10, 64)
	if err != nil || id <= 0 {
		return notFound()
	}
	m, err := h.store.Mail(c.Request().Context(), id)
	if err != nil {
		return notFound()
	}
	c.Response().Header().Set("Content-Security-Policy", "default-src 'none'; style-src 'unsafe-inline'; frame-ancestors 'none'")
	c.Response().Header().Set(echo.HeaderCacheControl, "no-store")
	return c.HTMLBlob(http.StatusOK, []byte(m.HTMLBody))
}

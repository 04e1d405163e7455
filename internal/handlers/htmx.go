package handlers

import (
	"encoding/json"
	"net/http"

	"github.com/labstack/echo/v4"
)

// Progressive enhancement with htmx: a few forms (the Revoke buttons) also
// carry hx-* attributes. With JavaScript on, htmx posts them in the
// background with the header HX-Request: true, and the handler answers with
// markup to swap in place instead of a redirect. Without JavaScript the same
// forms post normally and get the usual 303 and flash message.

// isHTMX reports whether htmx sent the request.
func isHTMX(c echo.Context) bool { return c.Request().Header.Get("HX-Request") == "true" }

// htmxFlash makes htmx fire the gatehouse:flash event with the flash
// message, which static/app.js shows in the page's status region: the
// answer to an htmx request is swapped in place, with no next page to carry
// a flash cookie.
func htmxFlash(c echo.Context, key flashKey) {
	type flash struct {
		Value string `json:"value"`
		Tone  string `json:"tone,omitempty"`
	}
	b, err := json.Marshal(map[string]flash{"gatehouse:flash": {Value: flashes[key], Tone: flashTones[key]}})
	if err == nil {
		c.Response().Header().Set("HX-Trigger", string(b))
	}
}

// htmxRemoved answers an htmx request whose target is simply removed: 200
// with an empty body (htmx does not swap a 204).
func htmxRemoved(c echo.Context, key flashKey) error {
	htmxFlash(c, key)
	c.Response().Header().Set(echo.HeaderCacheControl, "no-store")
	return c.NoContent(http.StatusOK)
}

// errSessionGone answers a request about a session that has already ended
// (revoked from another tab, say), in words that fit the page. An htmx
// revoke of such a session gets the current list instead (devices.go).
var errSessionGone = &publicError{status: http.StatusNotFound, title: "Already signed out",
	message: "That session has already ended. Reload the page to see the current list."}

package handlers

// UnmaskCSRF is unmaskCSRF, for tests that read a page's CSRF token.
var UnmaskCSRF = unmaskCSRF

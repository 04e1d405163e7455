package views

import "github.com/a-h/templ"

// ResetMail carries a password reset link.
type ResetMail struct {
	Name string
	Link string // /password/reset?token=...
}

func (ResetMail) Subject() string { return "Reset your Gatehouse password" }
func (m ResetMail) Text() string {
	return "Hello " + m.Name + ",\n\n" +
		"Someone (we hope you) asked to reset the password of your Gatehouse account.\n" +
		"Choose a new password with this link. It works once, for one hour:\n\n" +
		m.Link + "\n\n" +
		"If you did not ask for this, ignore this mail: your password stays as it is.\n"
}
func (m ResetMail) HTML() templ.Component { return resetMailHTML(m) }

// PasswordResetNotice tells the owner their password was reset.
type PasswordResetNotice struct {
	Name       string
	ForgotLink string // /password/forgot
}

func (PasswordResetNotice) Subject() string { return "Your Gatehouse password was changed" }
func (m PasswordResetNotice) Text() string {
	return "Hello " + m.Name + ",\n\n" +
		"The password of your Gatehouse account was just changed with a reset link, and\n" +
		"every device signed in to your account was signed out.\n\n" +
		"If this was not you, reset your password again at once and contact your administrator:\n\n" +
		m.ForgotLink + "\n"
}
func (m PasswordResetNotice) HTML() templ.Component { return passwordResetNoticeHTML(m) }

// VerifyMail asks the owner to prove an address.
type VerifyMail struct {
	Name  string
	Email string
	Link  string // /verify?token=...
	Valid string // how long the link works, in words
}

func (VerifyMail) Subject() string { return "Verify your email address for Gatehouse" }
func (m VerifyMail) Text() string {
	return "Hello " + m.Name + ",\n\n" +
		"Please confirm that " + m.Email + " is your address. The link works once, for " + m.Valid + ":\n\n" +
		m.Link + "\n"
}
func (m VerifyMail) HTML() templ.Component { return verifyMailHTML(m) }

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

// ChangeEmailMail goes to a new address, to confirm it.
type ChangeEmailMail struct {
	Name, OldEmail, NewEmail string
	Link                     string // /email/confirm?token=...
}

func (ChangeEmailMail) Subject() string { return "Confirm your new email address for Gatehouse" }
func (m ChangeEmailMail) Text() string {
	return "Hello " + m.Name + ",\n\n" +
		"Someone (we hope you) asked to change the address of your Gatehouse account from\n" +
		m.OldEmail + " to " + m.NewEmail + ". The address changes when you open this link, within 24 hours:\n\n" +
		m.Link + "\n\n" +
		"If you did not ask for this, ignore this mail: nothing changes.\n"
}
func (m ChangeEmailMail) HTML() templ.Component { return changeEmailMailHTML(m) }

// EmailChangedNotice goes to the old address after a change, with a link
// to undo it.
type EmailChangedNotice struct {
	Name, OldEmail, NewEmail string
	UndoLink                 string // /email/undo?token=...
}

func (EmailChangedNotice) Subject() string { return "Your Gatehouse email address was changed" }
func (m EmailChangedNotice) Text() string {
	return "Hello " + m.Name + ",\n\n" +
		"The address of your Gatehouse account was changed from " + m.OldEmail + " to " + m.NewEmail + ".\n\n" +
		"If this was not you, undo it within 7 days: your address comes back, every device is\n" +
		"signed out, and you choose a new password:\n\n" +
		m.UndoLink + "\n"
}
func (m EmailChangedNotice) HTML() templ.Component { return emailChangedNoticeHTML(m) }

// SecurityNotice tells the owner that the protection of their account
// changed, or that a fallback (a recovery code) was used.
type SecurityNotice struct {
	Name        string
	Title       string // the subject: "Two-factor authentication was turned off"
	What        string // what happened, in a sentence or two
	When        string // "2026-12-02 09:30 UTC"
	From        string // the device and address it came from
	DevicesLink string // /account/sessions
	ForgotLink  string // /password/forgot
}

func (m SecurityNotice) Subject() string { return m.Title }
func (m SecurityNotice) Text() string {
	return "Hello " + m.Name + ",\n\n" + m.What + "\n\n" +
		"When: " + m.When + "\nFrom: " + m.From + "\n\n" +
		"See every device signed in to your account:\n" + m.DevicesLink + "\n\n" +
		"If this was not you, reset your password at once and contact your administrator:\n" + m.ForgotLink + "\n"
}
func (m SecurityNotice) HTML() templ.Component { return securityNoticeHTML(m) }

// NewDeviceAlert tells the owner their account was signed in to from a
// device it had not seen, with a link that undoes the sign-in.
type NewDeviceAlert struct {
	Name        string
	When        string // "2026-12-02 09:30 UTC"
	Device      string // "Firefox on Linux"
	IP          string
	DevicesLink string // /account/sessions
	NotMeLink   string // /signin/not-me?token=...
}

func (NewDeviceAlert) Subject() string { return "New sign-in to your Gatehouse account" }
func (m NewDeviceAlert) Text() string {
	return "Hello " + m.Name + ",\n\n" +
		"Your Gatehouse account was just signed in to from a device it had not seen before.\n\n" +
		"When: " + m.When + "\nDevice: " + m.Device + "\nAddress: " + m.IP + "\n\n" +
		"If this was you, there is nothing to do. See every device signed in to your account:\n" +
		m.DevicesLink + "\n\n" +
		"If this wasn't you, open this link (it works once, for 7 days): that sign-in ends at once,\n" +
		"every device is signed out, your password stops working, and we mail you a link to choose a new one:\n\n" +
		m.NotMeLink + "\n"
}
func (m NewDeviceAlert) HTML() templ.Component { return newDeviceAlertHTML(m) }

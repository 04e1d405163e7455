package views

import "github.com/gatehouse/gatehouse/internal/models"

// Consequence is what a destructive action does, in the words both its
// confirmation dialog (JavaScript on) and its confirmation page (off, and
// after re-authentication) use, so the two never disagree.
type Consequence struct {
	Heading string // the question: "Disable the account of ada@example.com?"
	Detail  string // what follows, in a sentence
	Button  string // the confirming button: "Disable account"
}

// RevokeConsequence is a user's own revoke of one of their sessions.
func RevokeConsequence(s models.SessionRecord) Consequence {
	device := DeviceName(s)
	return Consequence{
		Heading: "Sign out " + device + "?",
		Detail:  device + " at " + s.IP + " will have to sign in again.",
		Button:  "Sign out " + device,
	}
}

// RevokeOthersConsequence is "Sign out N other devices".
func RevokeOthersConsequence() Consequence {
	return Consequence{
		Heading: "Sign out all other devices?",
		Detail:  "Every other browser signed in to your account will have to sign in again. This device stays signed in.",
		Button:  "Sign out all other devices",
	}
}

// AdminRevokeConsequence is an administrator ending one session of email.
func AdminRevokeConsequence(email string, s models.SessionRecord) Consequence {
	device := DeviceName(s) + ", " + s.IP
	return Consequence{
		Heading: "End this session of " + email + "?",
		Detail:  "They will have to sign in again on " + device + ".",
		Button:  "End session",
	}
}

// Admin actions on an account, named as their routes are.
const (
	AdminRevokeAll = "sessions/revoke-all"
	AdminDisable   = "disable"
	AdminEnable    = "enable"
	AdminPromote   = "promote"
	AdminDemote    = "demote"
	// AdminSendReset mails the user a password reset link.
	AdminSendReset = "send-reset"
	// AdminResetTwoFactor removes every second factor of the user.
	AdminResetTwoFactor = "2fa/reset"
)

// AdminConsequence is what an administrator's action on the account email
// does; "" for an action that is not one of the above.
func AdminConsequence(action, email string) Consequence {
	switch action {
	case AdminRevokeAll:
		return Consequence{"End all sessions of " + email + "?",
			"They will be signed out everywhere and have to sign in again on every device.", "Revoke all sessions"}
	case AdminDisable:
		return Consequence{"Disable the account of " + email + "?",
			"They will be signed out everywhere and cannot sign in until the account is enabled again.", "Disable account"}
	case AdminEnable:
		return Consequence{"Enable the account of " + email + "?",
			"They will be able to sign in again.", "Enable account"}
	case AdminPromote:
		return Consequence{"Make " + email + " an administrator?",
			"They will be signed out everywhere: the new role applies from their next sign-in, and they will be able to manage every account.", "Make administrator"}
	case AdminDemote:
		return Consequence{"Remove the administrator role from " + email + "?",
			"They will be signed out everywhere, so the change applies at once.", "Remove administrator role"}
	case AdminSendReset:
		return Consequence{"Send " + email + " a password reset link?",
			"They get a link, valid for one hour, to choose a new password themselves.", "Send reset link"}
	case AdminResetTwoFactor:
		return Consequence{"Remove the second factor of " + email + "?",
			"Their authenticator app, recovery codes and passkeys stop working, they will be signed out everywhere, and they can sign in with their password alone until they set up a new one.",
			"Remove second factor"}
	}
	return Consequence{}
}

// DangerAction is a button for a destructive action, confirmed the same way
// everywhere (DangerForm).
type DangerAction struct {
	Path    string        // the action's route: its POST, and its confirmation page (GET)
	Label   string        // the button's text on the page
	Aria    string        // the button's accessible name, when Label alone is ambiguous (a table's rows)
	Class   string        // the button's class; "danger-outline" when empty
	Fields  []HiddenField // sent along (return_to)
	Confirm Consequence
	// With JavaScript on, htmx posts the action and swaps HXTarget (with
	// HXSelect, when set) instead of loading a page; "" posts a plain form.
	HXTarget, HXSelect string
}

func (a DangerAction) class() string {
	if a.Class == "" {
		return "danger-outline"
	}
	return a.Class
}

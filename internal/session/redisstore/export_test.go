package redisstore

// The scripts, for scripts_test.go.
var (
	FindScript       = findScript
	CommitScript     = commitScript
	RenewScript      = renewScript
	RegisterScript   = registerScript
	AppScript        = appScript
	RevokeScript     = revokeScript
	DisableScript    = disableScript
	ForgetScript     = forgetScript
	SetProfileScript = setProfileScript
	ClearScript      = clearScript
	Scripts          = scripts
)

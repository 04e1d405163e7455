package password

import (
	"strings"
	"sync"

	"github.com/trustelem/zxcvbn/frequency"
)

// MsgTooCommon is why a common password is refused.
const MsgTooCommon = "This password is too common: it is among the first ones attackers try."

// common is the blocklist NIST SP 800-63B asks new passwords to be checked
// against: the 30,000 most frequent passwords of leaked password sets, as
// zxcvbn ranks them (all lower case; the ones shorter than MinLength are
// refused by CheckLength anyway). Built on first use: a set, not a scan.
var common = sync.OnceValue(func() map[string]struct{} {
	list := frequency.FrequencyLists["passwords"]
	set := make(map[string]struct{}, len(list))
	for _, pw := range list {
		if len(pw) >= MinLength {
			set[pw] = struct{}{}
		}
	}
	return set
})

// CheckCommon says why pw must not be used when it is one of the most
// common passwords, whatever its case ("Password1" is tried as early as
// "password1"), or "" when it is not.
func CheckCommon(pw string) string {
	if _, ok := common()[strings.ToLower(pw)]; ok {
		return MsgTooCommon
	}
	return ""
}

package notify

import "unicode/utf8"

// MaxNameLength is the longest user id or group name, in characters.
const MaxNameLength = 128

// MaxGroupsPerConnection is the most groups a token may list.
const MaxGroupsPerConnection = 50

// ValidName reports whether s is a valid user id or group name: 1 to 128
// characters of A-Z a-z 0-9 . _ : @ - (docs/PROTOCOL.md §2).
func ValidName(s string) bool {
	if s == "" || utf8.RuneCountInString(s) > MaxNameLength {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9':
		case c == '.', c == '_', c == ':', c == '@', c == '-':
		default:
			return false
		}
	}
	return true
}

package engine

import (
	"fmt"
	"strings"
)

// enumName is the name of v in names, the stable string form of a small
// enumeration, or what(v) for a value that has none.
func enumName(names []string, v int, what string) string {
	if v >= 0 && v < len(names) {
		return names[v]
	}
	return fmt.Sprintf("%s(%d)", what, v)
}

// parseEnum is the inverse of enumName.
func parseEnum(names []string, s, what string) (int, error) {
	for i, n := range names {
		if n == s {
			return i, nil
		}
	}
	return 0, fmt.Errorf("unknown %s %q (want one of %s)", what, s, strings.Join(names, ", "))
}

package main

import (
	"fmt"
	"strconv"
	"strings"
	"time"
)

// parseWhen reads a point in time given on the command line: a date or
// time (2026-01-02, 2026-01-02 15:04, RFC 3339; local time unless a zone
// is given) or a span back from now (90m, 36h, 7d, 2w).
func parseWhen(s string, now time.Time) (time.Time, error) {
	s = strings.TrimSpace(s)
	for _, layout := range []string{time.RFC3339Nano, "2006-01-02T15:04:05", "2006-01-02 15:04:05", "2006-01-02T15:04", "2006-01-02 15:04", "2006-01-02"} {
		if t, err := time.ParseInLocation(layout, s, now.Location()); err == nil {
			return t, nil
		}
	}
	if n := len(s); n > 1 && (s[n-1] == 'd' || s[n-1] == 'w') {
		if k, err := strconv.Atoi(s[:n-1]); err == nil && k >= 0 {
			days := k
			if s[n-1] == 'w' {
				days *= 7
			}
			return now.AddDate(0, 0, -days), nil
		}
	}
	if d, err := time.ParseDuration(s); err == nil && d >= 0 {
		return now.Add(-d), nil
	}
	return time.Time{}, fmt.Errorf("%q is neither a time (2026-01-02, 2026-01-02 15:04, 2026-01-02T15:04:05Z) nor a span back from now (90m, 36h, 7d, 2w)", s)
}

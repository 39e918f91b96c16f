package sender

import (
	"math"
	"net/http"
	"strings"
	"time"
)

// parseRetryAfter parses a Retry-After header value (RFC 9110 section
// 10.2.3): either delta-seconds, a non-negative decimal integer, or an
// HTTP-date, which is turned into a delay from now. A date in the past gives
// 0. Values too large for a time.Duration are clamped to the largest one.
// ok is false when v is neither form.
func parseRetryAfter(v string, now time.Time) (d time.Duration, ok bool) {
	v = strings.TrimSpace(v)
	if v == "" {
		return 0, false
	}
	if isDigits(v) {
		const maxSeconds = math.MaxInt64 / int64(time.Second)
		var n int64
		for i := 0; i < len(v); i++ {
			n = n*10 + int64(v[i]-'0')
			if n > maxSeconds {
				return time.Duration(math.MaxInt64), true
			}
		}
		return time.Duration(n) * time.Second, true
	}
	t, err := http.ParseTime(v)
	if err != nil {
		return 0, false
	}
	d = t.Sub(now) // saturates instead of overflowing
	if d < 0 {
		d = 0
	}
	return d, true
}

func isDigits(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return len(s) > 0
}

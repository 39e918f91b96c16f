package sender

import (
	"math"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"
)

func TestParseRetryAfter(t *testing.T) {
	now := fixedNow
	for in, want := range map[string]struct {
		d  time.Duration
		ok bool
	}{
		"0":                    {0, true},
		"120":                  {120 * time.Second, true},
		"  30  ":               {30 * time.Second, true},
		"007":                  {7 * time.Second, true},
		"99999999999999999999": {time.Duration(math.MaxInt64), true},
		"9223372037":           {time.Duration(math.MaxInt64), true},
		"9223372036":           {9223372036 * time.Second, true},
		now.Add(time.Minute).Format(http.TimeFormat): {time.Minute, true},
		now.Add(2 * time.Hour).Format(time.RFC850):   {2 * time.Hour, true},
		now.Add(3 * time.Second).Format(time.ANSIC):  {3 * time.Second, true},
		now.Add(-time.Hour).Format(http.TimeFormat):  {0, true},
		"Fri, 31 Dec 9999 23:59:59 GMT":              {time.Duration(math.MaxInt64), true},
		"":                                           {0, false},
		" ":                                          {0, false},
		"-1":                                         {0, false},
		"+5":                                         {0, false},
		"1.5":                                        {0, false},
		"1e3":                                        {0, false},
		"0x10":                                       {0, false},
		"1_000":                                      {0, false},
		"soon":                                       {0, false},
		"120s":                                       {0, false},
		"tomorrow at noon":                           {0, false},
	} {
		d, ok := parseRetryAfter(in, now)
		if d != want.d || ok != want.ok {
			t.Errorf("parseRetryAfter(%q) = %s, %v; want %s, %v", in, d, ok, want.d, want.ok)
		}
	}
}

// FuzzParseRetryAfter: Retry-After comes from the endpoint. Parsing never
// panics, never gives a negative delay, gives nothing for what is not a
// Retry-After value, and reads delta-seconds exactly.
func FuzzParseRetryAfter(f *testing.F) {
	for _, s := range []string{"0", "120", " 7 ", "-1", "99999999999999999999", "Wed, 21 Oct 2015 07:28:00 GMT",
		"Sunday, 06-Nov-94 08:49:37 GMT", "Sun Nov  6 08:49:37 1994", "soon", "", "1.5", "+3"} {
		f.Add(s, int64(1893553445))
	}
	f.Fuzz(func(t *testing.T, v string, nowUnix int64) {
		now := time.Unix(nowUnix, 0)
		d, ok := parseRetryAfter(v, now)
		if d < 0 {
			t.Fatalf("parseRetryAfter(%q) = %s", v, d)
		}
		if !ok && d != 0 {
			t.Fatalf("parseRetryAfter(%q) = %s but not ok", v, d)
		}
		if d2, ok2 := parseRetryAfter(v, now); d2 != d || ok2 != ok {
			t.Fatalf("parseRetryAfter(%q) is not deterministic", v)
		}
		trimmed := strings.TrimSpace(v)
		if isDigits(trimmed) {
			if !ok {
				t.Fatalf("delta-seconds %q not parsed", v)
			}
			if n, err := strconv.ParseInt(trimmed, 10, 64); err == nil && n <= math.MaxInt64/int64(time.Second) && d != time.Duration(n)*time.Second {
				t.Fatalf("parseRetryAfter(%q) = %s, want %ds", v, d, n)
			}
		} else if ok {
			if _, err := http.ParseTime(trimmed); err != nil {
				t.Fatalf("parseRetryAfter(%q) accepted a value that is neither delta-seconds nor an HTTP-date", v)
			}
		}
	})
}

func TestClean(t *testing.T) {
	for _, tc := range []struct {
		in    string
		limit int
		want  string
	}{
		{"plain", 10, "plain"},
		{"  a \r\n\t b  ", 10, "a b"},
		{"a\x00\x1bb", 10, "a b"},
		{"bad \xff\xfe utf8", 20, "bad utf8"},
		{"0123456789abc", 10, "0123456789..."},
		{"ééééé", 5, "éé..."},
		{"word word", 4, "word..."},
		{"", 10, ""},
	} {
		if got := clean(tc.in, tc.limit); got != tc.want {
			t.Errorf("clean(%q, %d) = %q, want %q", tc.in, tc.limit, got, tc.want)
		}
	}
}

func TestRedact(t *testing.T) {
	secrets := secretValues(map[string]string{"Authorization": "Bearer abc", "X-Short": "no", "X-Key": "k123"})
	got := redact("auth=Bearer abc key=k123 short=no", secrets)
	if got != "auth=[REDACTED] key=[REDACTED] short=no" {
		t.Fatalf("redact = %q", got)
	}
}

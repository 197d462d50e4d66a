package keyvault

import (
	"fmt"
	"regexp"
	"strconv"
	"time"
)

// isoDuration is an ISO 8601 duration as rotation policies write them (P90D, P1Y6M, P2W,
// P1DT12H). Years, months and days are calendar steps; the time part is exact.
type isoDuration struct {
	Years, Months, Days int
	Time                time.Duration
	text                string
}

var isoDurationRE = regexp.MustCompile(`^P(?:(\d+)Y)?(?:(\d+)M)?(?:(\d+)W)?(?:(\d+)D)?(?:T(?:(\d+)H)?(?:(\d+)M)?(?:(\d+)S)?)?$`)

// parseISODuration parses an ISO 8601 duration; zero durations are refused.
func parseISODuration(s string) (isoDuration, error) {
	m := isoDurationRE.FindStringSubmatch(s)
	if m == nil || s == "P" || s[len(s)-1] == 'T' {
		return isoDuration{}, fmt.Errorf("'%s' is not an ISO 8601 duration such as P90D or P1Y", s)
	}
	n := func(i int) int {
		if m[i] == "" {
			return 0
		}
		v, _ := strconv.Atoi(m[i])
		return v
	}
	d := isoDuration{Years: n(1), Months: n(2), Days: 7*n(3) + n(4),
		Time: time.Duration(n(5))*time.Hour + time.Duration(n(6))*time.Minute + time.Duration(n(7))*time.Second, text: s}
	if d.approx() <= 0 {
		return isoDuration{}, fmt.Errorf("'%s' is a zero duration", s)
	}
	return d, nil
}

// after is t moved forward by d.
func (d isoDuration) after(t time.Time) time.Time {
	return t.AddDate(d.Years, d.Months, d.Days).Add(d.Time)
}

// before is t moved back by d.
func (d isoDuration) before(t time.Time) time.Time {
	return t.AddDate(-d.Years, -d.Months, -d.Days).Add(-d.Time)
}

// approx is the duration with 365-day years and 30-day months, for comparing durations.
func (d isoDuration) approx() time.Duration {
	return time.Duration(d.Years*365+d.Months*30+d.Days)*24*time.Hour + d.Time
}

func (d isoDuration) String() string { return d.text }

package notify

import (
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"time"
)

// QuietHours is a daily span of wall-clock time, in the recipient's zone,
// during which nothing is sent (verification codes excepted). Start and
// End are minutes after midnight; a span that ends before it starts runs
// over midnight (21:00–08:00). Start == End means no quiet hours.
type QuietHours struct {
	Start Clock `json:"start"`
	End   Clock `json:"end"`
}

// DefaultQuietHours are 21:00–08:00.
var DefaultQuietHours = QuietHours{Start: 21 * 60, End: 8 * 60}

// Clock is a wall-clock time of day in minutes after midnight, written
// "HH:MM".
type Clock int

func (c Clock) String() string { return fmt.Sprintf("%02d:%02d", int(c)/60, int(c)%60) }

// MarshalJSON writes "HH:MM".
func (c Clock) MarshalJSON() ([]byte, error) { return json.Marshal(c.String()) }

// UnmarshalJSON reads "HH:MM".
func (c *Clock) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		return err
	}
	v, err := parseClock(s)
	if err != nil {
		return err
	}
	*c = v
	return nil
}

func parseClock(s string) (Clock, error) {
	t, err := time.Parse("15:04", s)
	if err != nil {
		return 0, errors.New(`a 24-hour time such as "21:00"`)
	}
	return Clock(t.Hour()*60 + t.Minute()), nil
}

// Until reports whether t falls inside the quiet hours in loc and, if so,
// when they end: the next time the wall clock in loc reads End. It is
// computed on the wall clock, so a night that loses or gains an hour to
// daylight saving time ends at End all the same.
func (q QuietHours) Until(t time.Time, loc *time.Location) (time.Time, bool) {
	if q.Start == q.End {
		return t, false
	}
	local := t.In(loc)
	now := Clock(local.Hour()*60 + local.Minute())
	var inside bool
	if q.Start < q.End {
		inside = now >= q.Start && now < q.End
	} else {
		inside = now >= q.Start || now < q.End
	}
	if !inside {
		return t, false
	}
	y, m, d := local.Date()
	for day := d; day <= d+1; day++ {
		end := wallTime(y, m, day, q.End, loc)
		if end.After(t) {
			return end, true
		}
	}
	return t, false // unreachable: End comes round within a day
}

// wallTime is the first instant on that date at which the wall clock in
// loc reads c or later. When c does not exist that day (the clock jumps
// over it at the start of daylight saving time) that is the jump.
func wallTime(y int, m time.Month, d int, c Clock, loc *time.Location) time.Time {
	t := time.Date(y, m, d, int(c)/60, int(c)%60, 0, 0, loc)
	local := t.In(loc)
	if Clock(local.Hour()*60+local.Minute()) == c {
		return t
	}
	// c fell in a gap; time.Date may have picked either side of it. The
	// first instant with a wall clock at or past c is the transition: the
	// end of t's zone period if t landed before the gap, its start if after.
	start, end := t.ZoneBounds()
	if local.Day() == d && Clock(local.Hour()*60+local.Minute()) < c {
		if !end.IsZero() {
			return end
		}
		return t
	}
	if !start.IsZero() {
		return start
	}
	return t
}

var zones sync.Map // name → *time.Location

// Zone returns the first of names that is a known IANA time zone, in
// order of preference (contact's, location's, tenant's); UTC when none is.
func Zone(names ...string) *time.Location {
	for _, n := range names {
		if n == "" || n == "Local" {
			continue
		}
		if loc, ok := zones.Load(n); ok {
			return loc.(*time.Location)
		}
		loc, err := time.LoadLocation(n)
		if err != nil {
			continue
		}
		zones.Store(n, loc)
		return loc
	}
	return time.UTC
}

// ZoneWhereItIs names a fixed-offset zone (Etc/GMT±N, no daylight saving
// time) whose wall clock reads hour:MM at t. Tests and benchmarks use it
// to run at a chosen time of day, in or out of quiet hours, whenever they
// run.
func ZoneWhereItIs(t time.Time, hour int) string {
	offset := (hour - t.UTC().Hour() + 24) % 24 // hours east of UTC
	if offset > 12 {
		offset -= 24 // Etc zones span UTC-12..UTC+14
	}
	switch {
	case offset == 0:
		return "Etc/GMT"
	case offset > 0:
		return fmt.Sprintf("Etc/GMT-%d", offset) // POSIX sign: GMT-N is N hours east
	default:
		return fmt.Sprintf("Etc/GMT+%d", -offset)
	}
}

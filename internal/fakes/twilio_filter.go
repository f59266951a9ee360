package fakes

import (
	"net/url"
	"time"
)

// twilioFilter is the subset of Twilio's list filters the fake supports.
// "DateSent>=2024-01-31" in a URL is the key "DateSent>" (on or after); the
// SDK sends RFC 3339 timestamps, Twilio's docs show dates: both work.
type twilioFilter struct {
	to, from             string
	on, after, before    string
	onT, afterT, beforeT time.Time
}

func parseTwilioFilter(q url.Values) (twilioFilter, error) {
	f := twilioFilter{to: q.Get("To"), from: q.Get("From")}
	f.on = q.Get("DateSent")
	f.after = firstNonEmpty(q.Get("DateSent>"), q.Get("DateSent>="))
	f.before = firstNonEmpty(q.Get("DateSent<"), q.Get("DateSent<="))
	var err error
	for _, p := range []struct {
		raw string
		t   *time.Time
	}{{f.on, &f.onT}, {f.after, &f.afterT}, {f.before, &f.beforeT}} {
		if p.raw == "" {
			continue
		}
		if *p.t, err = parseTwilioDate(p.raw); err != nil {
			return f, err
		}
	}
	return f, nil
}

func parseTwilioDate(s string) (time.Time, error) {
	if t, err := time.Parse(time.DateOnly, s); err == nil {
		return t, nil
	}
	return time.Parse(time.RFC3339, s)
}

func (f twilioFilter) match(m TwilioMessage) bool {
	sent := m.Created.Truncate(time.Second) // Twilio's resolution
	day := sent.UTC().Format(time.DateOnly)
	switch {
	case f.to != "" && m.To != f.to,
		f.from != "" && m.From != f.from,
		f.on != "" && day != f.onT.UTC().Format(time.DateOnly),
		f.after != "" && sent.Before(f.afterT),
		f.before != "" && f.isDateOnly(f.before) && day > f.beforeT.Format(time.DateOnly),
		f.before != "" && !f.isDateOnly(f.before) && sent.After(f.beforeT):
		return false
	}
	return true
}

func (twilioFilter) isDateOnly(s string) bool { return len(s) == len(time.DateOnly) }

// query re-encodes the filter for paging URIs.
func (f twilioFilter) query() url.Values {
	v := url.Values{}
	for k, s := range map[string]string{"To": f.to, "From": f.from, "DateSent": f.on, "DateSent>": f.after, "DateSent<": f.before} {
		if s != "" {
			v.Set(k, s)
		}
	}
	return v
}

func firstNonEmpty(a, b string) string {
	if a != "" {
		return a
	}
	return b
}

// Package notify holds the rules of appointment notifications: which
// events a location notifies about and on which channels (Settings), when
// a recipient must not be disturbed (QuietHours, computed in their zone)
// and what each message says (templates with named placeholders). It is
// pure: no database, no clock of its own, no provider. It must never hold
// a recipient's data beyond the call that renders their message.
package notify

import (
	"encoding/json"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"
)

// Events, each a message kind with its own wording.
const (
	Confirmation = "confirmation"
	Reminder     = "reminder"
	OnTheWay     = "on_the_way"
	FollowUp     = "follow_up"
)

// Events lists the appointment events in the order they happen.
var Events = []string{Confirmation, Reminder, OnTheWay, FollowUp}

// Channels lists the channels a message can go by.
var Channels = []string{"sms", "email"}

// IsEvent reports whether s names an appointment event.
func IsEvent(s string) bool { return slices.Contains(Events, s) }

// IsChannel reports whether s names a channel.
func IsChannel(s string) bool { return slices.Contains(Channels, s) }

// Settings are a location's notification settings, every default filled
// in. They are stored as JSON on the location and shown as such by the API.
type Settings struct {
	Notifications Notifications `json:"notifications"`
	QuietHours    QuietHours    `json:"quiet_hours"`
}

// Notifications say which events notify, on which channels.
type Notifications struct {
	Confirmation Switches         `json:"confirmation"`
	Reminder     ReminderSwitches `json:"reminder"`
	OnTheWay     Switches         `json:"on_the_way"`
	FollowUp     FollowUpSwitches `json:"follow_up"`
}

// Switches turn an event on or off per channel.
type Switches struct {
	SMS   bool `json:"sms"`
	Email bool `json:"email"`
}

// ReminderSwitches say when reminders go out: one per offset before the visit.
type ReminderSwitches struct {
	SMS     bool       `json:"sms"`
	Email   bool       `json:"email"`
	Offsets []Duration `json:"offsets"`
}

// FollowUpSwitches: the follow-up goes out Delay after the visit was completed.
type FollowUpSwitches struct {
	SMS   bool     `json:"sms"`
	Email bool     `json:"email"`
	Delay Duration `json:"delay"`
}

// Defaults are what API.md promises when a setting is absent: every event
// on for both channels, one reminder 24 hours ahead, the follow-up a day
// after, quiet hours 21:00–08:00 in the recipient's zone.
func Defaults() Settings {
	return Settings{
		Notifications: Notifications{
			Confirmation: Switches{SMS: true, Email: true},
			Reminder:     ReminderSwitches{SMS: true, Email: true, Offsets: []Duration{Duration(24 * time.Hour)}},
			OnTheWay:     Switches{SMS: true, Email: true},
			FollowUp:     FollowUpSwitches{SMS: true, Email: true, Delay: Duration(24 * time.Hour)},
		},
		QuietHours: DefaultQuietHours,
	}
}

// Enabled reports whether event notifies on channel.
func (s Settings) Enabled(event, channel string) bool {
	var sw Switches
	n := s.Notifications
	switch event {
	case Confirmation:
		sw = n.Confirmation
	case Reminder:
		sw = Switches{SMS: n.Reminder.SMS, Email: n.Reminder.Email}
	case OnTheWay:
		sw = n.OnTheWay
	case FollowUp:
		sw = Switches{SMS: n.FollowUp.SMS, Email: n.FollowUp.Email}
	default:
		return false
	}
	if channel == "sms" {
		return sw.SMS
	}
	return channel == "email" && sw.Email
}

// ParseSettings reads stored settings; what is missing or unreadable gets
// the default, so a bad row never stops a send.
func ParseSettings(raw []byte) Settings {
	s := Defaults()
	if len(raw) == 0 {
		return s
	}
	var stored Settings
	if err := json.Unmarshal(raw, &stored); err != nil {
		return s
	}
	return stored
}

// Setting limits.
const (
	MaxOffsets = 5
	MaxOffset  = 60 * 24 * time.Hour
	MaxDelay   = 90 * 24 * time.Hour
)

// SettingsInput is the request form: every field optional, absent means
// the default.
type SettingsInput struct {
	Notifications *NotificationsInput `json:"notifications"`
	QuietHours    *QuietHoursInput    `json:"quiet_hours"`
}

// NotificationsInput is the request form of Notifications.
type NotificationsInput struct {
	Confirmation *SwitchesInput `json:"confirmation"`
	Reminder     *ReminderInput `json:"reminder"`
	OnTheWay     *SwitchesInput `json:"on_the_way"`
	FollowUp     *FollowUpInput `json:"follow_up"`
}

// SwitchesInput is the request form of Switches.
type SwitchesInput struct {
	SMS   *bool `json:"sms"`
	Email *bool `json:"email"`
}

// ReminderInput is the request form of Reminder.
type ReminderInput struct {
	SMS     *bool     `json:"sms"`
	Email   *bool     `json:"email"`
	Offsets *[]string `json:"offsets"`
}

// FollowUpInput is the request form of FollowUp.
type FollowUpInput struct {
	SMS   *bool   `json:"sms"`
	Email *bool   `json:"email"`
	Delay *string `json:"delay"`
}

// QuietHoursInput is the request form of QuietHours.
type QuietHoursInput struct {
	Start *string `json:"start"`
	End   *string `json:"end"`
}

// Resolve fills in defaults and validates, naming each bad field (dotted
// path from the request's top level).
func (in SettingsInput) Resolve() (Settings, map[string]string) {
	s := Defaults()
	problems := map[string]string{}
	set := func(dst *bool, v *bool) {
		if v != nil {
			*dst = *v
		}
	}
	if n := in.Notifications; n != nil {
		if c := n.Confirmation; c != nil {
			set(&s.Notifications.Confirmation.SMS, c.SMS)
			set(&s.Notifications.Confirmation.Email, c.Email)
		}
		if c := n.OnTheWay; c != nil {
			set(&s.Notifications.OnTheWay.SMS, c.SMS)
			set(&s.Notifications.OnTheWay.Email, c.Email)
		}
		if r := n.Reminder; r != nil {
			set(&s.Notifications.Reminder.SMS, r.SMS)
			set(&s.Notifications.Reminder.Email, r.Email)
			if r.Offsets != nil {
				offsets, problem := parseOffsets(*r.Offsets)
				if problem != "" {
					problems["notifications.reminder.offsets"] = problem
				}
				s.Notifications.Reminder.Offsets = offsets
			}
		}
		if f := n.FollowUp; f != nil {
			set(&s.Notifications.FollowUp.SMS, f.SMS)
			set(&s.Notifications.FollowUp.Email, f.Email)
			if f.Delay != nil {
				d, err := ParseDuration(*f.Delay)
				switch {
				case err != nil:
					problems["notifications.follow_up.delay"] = err.Error()
				case d < 0 || d > MaxDelay:
					problems["notifications.follow_up.delay"] = "between 0s and 90d"
				}
				s.Notifications.FollowUp.Delay = Duration(d)
			}
		}
	}
	if q := in.QuietHours; q != nil {
		if q.Start != nil {
			m, err := parseClock(*q.Start)
			if err != nil {
				problems["quiet_hours.start"] = err.Error()
			}
			s.QuietHours.Start = m
		}
		if q.End != nil {
			m, err := parseClock(*q.End)
			if err != nil {
				problems["quiet_hours.end"] = err.Error()
			}
			s.QuietHours.End = m
		}
	}
	return s, problems
}

func parseOffsets(in []string) ([]Duration, string) {
	if len(in) > MaxOffsets {
		return nil, fmt.Sprintf("at most %d offsets", MaxOffsets)
	}
	out := make([]Duration, 0, len(in))
	for _, v := range in {
		d, err := ParseDuration(v)
		if err != nil {
			return nil, fmt.Sprintf("%q: %v", v, err)
		}
		if d < time.Minute || d > MaxOffset {
			return nil, fmt.Sprintf("%q: between 1m and 60d", v)
		}
		if slices.Contains(out, Duration(d)) {
			return nil, fmt.Sprintf("%q is given twice", v)
		}
		out = append(out, Duration(d))
	}
	// Furthest first: the order reminders go out in.
	slices.SortFunc(out, func(a, b Duration) int { return int(b - a) })
	return out, ""
}

// Duration is a time span written like "24h", "90m", "1h30m" or "7d".
type Duration time.Duration

// ParseDuration reads a Duration: Go's syntax, plus whole days ("7d").
func ParseDuration(s string) (time.Duration, error) {
	s = strings.TrimSpace(s)
	if days, ok := strings.CutSuffix(s, "d"); ok {
		n, err := strconv.Atoi(days)
		if err != nil {
			return 0, fmt.Errorf("not a duration; write it like 24h, 90m or 7d")
		}
		return time.Duration(n) * 24 * time.Hour, nil
	}
	d, err := time.ParseDuration(s)
	if err != nil {
		return 0, fmt.Errorf("not a duration; write it like 24h, 90m or 7d")
	}
	return d, nil
}

// String writes the span in hours and minutes ("24h", "1h30m", "45m").
func (d Duration) String() string {
	td := time.Duration(d)
	if td == 0 {
		return "0s"
	}
	var b strings.Builder
	if h := td / time.Hour; h > 0 {
		fmt.Fprintf(&b, "%dh", h)
		td -= h * time.Hour
	}
	if m := td / time.Minute; m > 0 {
		fmt.Fprintf(&b, "%dm", m)
		td -= m * time.Minute
	}
	if td > 0 {
		fmt.Fprintf(&b, "%ds", td/time.Second)
	}
	return b.String()
}

// MarshalJSON writes the span as a string.
func (d Duration) MarshalJSON() ([]byte, error) { return json.Marshal(d.String()) }

// UnmarshalJSON reads a span written as a string.
func (d *Duration) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		return err
	}
	v, err := ParseDuration(s)
	if err != nil {
		return err
	}
	*d = Duration(v)
	return nil
}

// EventLabel names an event's messages in reasons people read.
func EventLabel(event string) string {
	switch event {
	case Confirmation:
		return "confirmations"
	case Reminder:
		return "reminders"
	case OnTheWay:
		return "on-the-way messages"
	case FollowUp:
		return "follow-ups"
	}
	return event
}

// SwitchedOff is the reason recorded on a message that is not sent
// because its location does not notify about its event on its channel.
func SwitchedOff(event, channel string) string {
	return EventLabel(event) + " by " + channel + " are switched off for this location"
}

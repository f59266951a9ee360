package notify

import (
	"fmt"
	"regexp"
	"slices"
	"strings"
	"time"
)

// Template is the wording of one event on one channel: plain text with
// named placeholders in braces ("{business}: see you {date} at {time}").
// Subject is for email only.
type Template struct {
	Subject string
	Body    string
}

// Placeholders are the names a template may use.
var Placeholders = []string{"business", "customer", "technician", "date", "time", "address", "location"}

// placeholder matches one {name}; a brace without its pair is literal text.
var placeholder = regexp.MustCompile(`\{([^{}]*)\}`)

// Validate checks that text uses only known placeholders.
func Validate(text string) error {
	for _, m := range placeholder.FindAllStringSubmatch(text, -1) {
		name := strings.TrimSpace(m[1])
		if !slices.Contains(Placeholders, name) {
			return fmt.Errorf("unknown placeholder {%s}; known: {%s}", m[1], strings.Join(Placeholders, "}, {"))
		}
	}
	return nil
}

// Values are what the placeholders stand for in one message.
type Values struct {
	Business   string
	Customer   string
	Technician string
	Date       string
	Time       string
	Address    string
	Location   string
}

func (v Values) get(name string) string {
	switch name {
	case "business":
		return v.Business
	case "customer":
		return v.Customer
	case "technician":
		return v.Technician
	case "date":
		return v.Date
	case "time":
		return v.Time
	case "address":
		return v.Address
	case "location":
		return v.Location
	}
	return ""
}

// Render fills the placeholders of text. Unknown ones (which Validate
// keeps out) are left as written.
func Render(text string, v Values) string {
	return placeholder.ReplaceAllStringFunc(text, func(m string) string {
		name := strings.TrimSpace(m[1 : len(m)-1])
		if !slices.Contains(Placeholders, name) {
			return m
		}
		return v.get(name)
	})
}

// Appointment describes an appointment for its messages.
type Appointment struct {
	Business   string
	Customer   string
	Technician string
	Address    string
	Location   string
	StartsAt   time.Time
}

// ValuesFor renders an appointment's placeholders for a recipient in loc:
// the time is the recipient's wall clock, with its zone's abbreviation.
// Missing details read naturally ("our technician", "the address on file").
func ValuesFor(a Appointment, loc *time.Location) Values {
	local := a.StartsAt.In(loc)
	v := Values{
		Business:   a.Business,
		Customer:   a.Customer,
		Technician: a.Technician,
		Date:       local.Format("Mon, Jan 2"),
		Time:       local.Format("3:04 PM MST"),
		Address:    a.Address,
		Location:   a.Location,
	}
	if v.Technician == "" {
		v.Technician = "our technician"
	}
	if v.Address == "" {
		v.Address = "the address on file"
	}
	if v.Customer == "" {
		v.Customer = "there"
	}
	return v
}

// Builtin is Errand's own wording for an event on a channel. Texts end
// with how to opt out.
func Builtin(event, channel string) Template {
	if channel == "sms" {
		switch event {
		case Confirmation:
			return Template{Body: "{business}: your appointment is confirmed for {date} at {time} at {address}. Reply STOP to opt out."}
		case Reminder:
			return Template{Body: "{business}: reminder of your appointment on {date} at {time} at {address} with {technician}. Reply STOP to opt out."}
		case OnTheWay:
			return Template{Body: "{business}: {technician} is on the way to {address}. Reply STOP to opt out."}
		case FollowUp:
			return Template{Body: "{business}: thank you for your visit on {date}. Reply to this text if anything is not right. Reply STOP to opt out."}
		}
	}
	switch event {
	case Confirmation:
		return Template{Subject: "Your appointment with {business} is confirmed",
			Body: "Hello {customer},\n\nYour appointment with {business} is confirmed for {date} at {time} at {address}.\n\n{business}"}
	case Reminder:
		return Template{Subject: "Reminder: {business} on {date} at {time}",
			Body: "Hello {customer},\n\nA reminder of your appointment with {business} on {date} at {time} at {address}. {technician} will see you then.\n\n{business}"}
	case OnTheWay:
		return Template{Subject: "{technician} is on the way",
			Body: "Hello {customer},\n\n{technician} from {business} is on the way to {address}.\n\n{business}"}
	case FollowUp:
		return Template{Subject: "Thank you for your visit — {business}",
			Body: "Hello {customer},\n\nThank you for your visit on {date}. If anything is not right, reply to this email.\n\n{business}"}
	}
	return Template{}
}

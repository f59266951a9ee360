package fakes

import (
	"net/http"
	"regexp"
	"strconv"
	"time"
)

const twilioAPIVersion = "2010-04-01"

// e164 matches the numbers Twilio accepts as a destination.
var e164 = regexp.MustCompile(`^\+[1-9][0-9]{6,14}$`)

func (f *Twilio) createMessage(w http.ResponseWriter, r *http.Request) {
	f.requests.Add(1)
	if !f.authorized(r) {
		writeTwilioError(w, http.StatusUnauthorized, 20003, "", "")
		return
	}
	if err := r.ParseForm(); err != nil {
		writeTwilioError(w, http.StatusBadRequest, 20001, "", "")
		return
	}
	fault, faulted := f.faults.next()
	if faulted && (fault.Delay > 0 || fault.Hold != nil) {
		pause(r.Context(), f.closing, fault.Delay, fault.Hold)
	}
	if faulted && fault.fails() && !fault.AcceptThenFail && !fault.Hang {
		writeTwilioFault(w, fault, r.PostForm.Get("To"))
		return
	}
	msg := TwilioMessage{
		SID:            "SM" + randomHex(16),
		AccountSID:     f.AccountSID,
		To:             r.PostForm.Get("To"),
		From:           r.PostForm.Get("From"),
		Body:           r.PostForm.Get("Body"),
		StatusCallback: r.PostForm.Get("StatusCallback"),
	}
	if code := f.validate(msg); code != 0 {
		writeTwilioError(w, http.StatusBadRequest, code, "", msg.To)
		return
	}
	msg.Created, msg.Body = f.stamp(msg.Body)
	f.accept(msg)
	switch {
	case faulted && fault.Hang:
		hang(r.Context(), f.closing)
	case faulted && fault.AcceptThenFail:
		writeTwilioFault(w, fault, msg.To)
	default:
		writeJSON(w, http.StatusCreated, messageJSON(msg, "queued", nil))
	}
}

// validate returns the Twilio error code for an unacceptable message, or 0.
func (f *Twilio) validate(m TwilioMessage) int {
	switch {
	case m.To == "":
		return 21604
	case !e164.MatchString(m.To):
		return 21211
	case m.From == "":
		return 21603
	case m.Body == "":
		return 21602
	case len([]rune(m.Body)) > 1600:
		return 21617
	case f.isOptedOut(m.To):
		return 21610
	default:
		return 0
	}
}

func (f *Twilio) listMessages(w http.ResponseWriter, r *http.Request) {
	f.requests.Add(1)
	if !f.authorized(r) {
		writeTwilioError(w, http.StatusUnauthorized, 20003, "", "")
		return
	}
	q := r.URL.Query()
	filter, err := parseTwilioFilter(q)
	if err != nil {
		writeTwilioError(w, http.StatusBadRequest, 20001, "Invalid DateSent filter", "")
		return
	}
	pageSize := 50
	if v := q.Get("PageSize"); v != "" {
		if pageSize, err = strconv.Atoi(v); err != nil || pageSize < 1 || pageSize > 1000 {
			writeTwilioError(w, http.StatusBadRequest, 20001, "Invalid PageSize", "")
			return
		}
	}
	page, _ := strconv.Atoi(q.Get("Page"))
	page = max(page, 0)

	var matched []TwilioMessage
	for _, m := range f.Messages() {
		if filter.match(m) {
			matched = append(matched, m)
		}
	}
	// Twilio lists newest first.
	for i, j := 0, len(matched)-1; i < j; i, j = i+1, j-1 {
		matched[i], matched[j] = matched[j], matched[i]
	}
	start := min(page*pageSize, len(matched))
	end := min(start+pageSize, len(matched))

	path := "/" + twilioAPIVersion + "/Accounts/" + f.AccountSID + "/Messages.json"
	pageURI := func(p int) string {
		v := filter.query()
		v.Set("PageSize", strconv.Itoa(pageSize))
		v.Set("Page", strconv.Itoa(p))
		return path + "?" + v.Encode()
	}
	out := twilioListJSON{
		FirstPageURI: pageURI(0),
		Page:         page,
		PageSize:     pageSize,
		Start:        start,
		End:          max(end-1, start),
		URI:          pageURI(page),
		Messages:     make([]twilioMessageJSON, 0, end-start),
	}
	if end < len(matched) {
		next := pageURI(page + 1)
		out.NextPageURI = &next
	}
	if page > 0 {
		prev := pageURI(page - 1)
		out.PreviousPageURI = &prev
	}
	for _, m := range matched[start:end] {
		sent := m.Created.Format(time.RFC1123Z)
		out.Messages = append(out.Messages, messageJSON(m, "sent", &sent))
	}
	writeJSON(w, http.StatusOK, out)
}

func (f *Twilio) notFound(w http.ResponseWriter, r *http.Request) {
	f.requests.Add(1)
	writeTwilioError(w, http.StatusNotFound, 20404, "", "")
}

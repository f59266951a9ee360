package fakes

import (
	"strconv"
	"time"
)

// twilioMessageJSON is Twilio's Message resource as the SDK's
// ApiV2010Message decodes it. Nullable fields are pointers.
type twilioMessageJSON struct {
	AccountSID          string            `json:"account_sid"`
	APIVersion          string            `json:"api_version"`
	Body                string            `json:"body"`
	DateCreated         string            `json:"date_created"`
	DateSent            *string           `json:"date_sent"`
	DateUpdated         string            `json:"date_updated"`
	Direction           string            `json:"direction"`
	ErrorCode           *int              `json:"error_code"`
	ErrorMessage        *string           `json:"error_message"`
	From                string            `json:"from"`
	MessagingServiceSID *string           `json:"messaging_service_sid"`
	NumMedia            string            `json:"num_media"`
	NumSegments         string            `json:"num_segments"`
	Price               *string           `json:"price"`
	PriceUnit           string            `json:"price_unit"`
	SID                 string            `json:"sid"`
	Status              string            `json:"status"`
	SubresourceURIs     map[string]string `json:"subresource_uris"`
	To                  string            `json:"to"`
	URI                 string            `json:"uri"`
}

// twilioListJSON is a page of Twilio's Messages list.
type twilioListJSON struct {
	End             int                 `json:"end"`
	FirstPageURI    string              `json:"first_page_uri"`
	NextPageURI     *string             `json:"next_page_uri"`
	Page            int                 `json:"page"`
	PageSize        int                 `json:"page_size"`
	PreviousPageURI *string             `json:"previous_page_uri"`
	Start           int                 `json:"start"`
	URI             string              `json:"uri"`
	Messages        []twilioMessageJSON `json:"messages"`
}

func messageJSON(m TwilioMessage, status string, dateSent *string) twilioMessageJSON {
	created := m.Created.Format(time.RFC1123Z)
	uri := "/" + twilioAPIVersion + "/Accounts/" + m.AccountSID + "/Messages/" + m.SID
	return twilioMessageJSON{
		AccountSID:      m.AccountSID,
		APIVersion:      twilioAPIVersion,
		Body:            m.Body,
		DateCreated:     created,
		DateSent:        dateSent,
		DateUpdated:     created,
		Direction:       "outbound-api",
		From:            m.From,
		NumMedia:        "0",
		NumSegments:     strconv.Itoa(segments(m.Body)),
		PriceUnit:       "USD",
		SID:             m.SID,
		Status:          status,
		SubresourceURIs: map[string]string{"media": uri + "/Media.json"},
		To:              m.To,
		URI:             uri + ".json",
	}
}

// segments approximates Twilio's segment count for a GSM-7 body.
func segments(body string) int {
	n := len([]rune(body))
	if n <= 160 {
		return 1
	}
	return (n + 152) / 153
}

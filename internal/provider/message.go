package provider

import "time"

// Receipt is what a provider returns on acceptance.
type Receipt struct {
	// ProviderID is the provider's identifier for the accepted message:
	// a Twilio message SID, a Resend email id or an outbox id.
	ProviderID string
}

// SMS is one text message to send. The sender comes from configuration.
type SMS struct {
	To             string
	Body           string
	StatusCallback string
}

// Email is one plain-text email to send. The sender comes from configuration.
type Email struct {
	To      string
	Subject string
	Text    string
	// IdempotencyKey, when set, makes the provider return the first receipt
	// again instead of sending a second email.
	IdempotencyKey string
}

// SentSMS is a text the provider accepted from us, as it lists it.
type SentSMS struct {
	ProviderID string
	// Body is the text as the provider stored it, which may differ from
	// what we sent (MatchSMS).
	Body string
	// Created is when the provider accepted it; zero if it did not say.
	Created time.Time
}

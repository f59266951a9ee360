// Package provider is the only code in Errand that talks to the SMS (Twilio)
// and email (Resend) providers. It turns a provider call into a Receipt or a
// classified *Error, so that jobs can decide between retrying and giving up
// from Error.Kind alone. Outbox stands in for both providers in development.
//
// This package must never put a destination, a subject or a message body into
// an error string or a log record: Error.Message and Error.Error are built
// from fixed text and provider codes only. It must never retry on its own
// either; retry policy belongs to the jobs that call it.
package provider

// Package fakes runs local HTTP servers that speak the parts of the Twilio
// and Resend APIs Errand uses, with the real request and response shapes,
// so the real provider SDKs can be exercised without the network. Tests and
// `errand bench` use them; faults (errors, delays, lost responses, hangs) can
// be injected.
//
// This package must never import testing (it ships in the errand binary),
// never log per request and never sleep unless a fault asks for it: it is on
// the hot path of the throughput benchmark. It must never contact the real
// providers.
package fakes

package intake

import (
	"net/http"

	"github.com/errandhq/errand/internal/ops"
)

// routes is the whole API surface on one screen. Tenant routes take a
// tenant API key; admin routes the admin token; webhooks check their own
// signatures.
func (s *Server) routes() {
	m := s.mux
	m.HandleFunc("GET /healthz", ops.Healthz)
	m.Handle("GET /readyz", ops.Ready(s.pingPostgres, s.pingRedis))
	m.Handle("GET /metrics", ops.Metrics(s.Metrics.Registry))
	m.HandleFunc("GET /openapi.yaml", s.handleOpenAPI)
	if s.Console != nil {
		m.Handle("/monitoring/", s.Console)
		m.Handle("/monitoring", http.RedirectHandler("/monitoring/", http.StatusMovedPermanently))
	}

	// Admin.
	m.Handle("POST /admin/v1/tenants", s.admin(s.idempotent(s.handleTenantCreate)))
	m.Handle("GET /admin/v1/tenants/{id}", s.admin(s.handleTenantGet))
	m.Handle("POST /admin/v1/tenants/{id}/api-keys", s.admin(s.idempotent(s.handleAPIKeyCreate)))
	m.Handle("DELETE /admin/v1/api-keys/{prefix}", s.admin(s.handleAPIKeyRevoke))
	m.Handle("GET /admin/v1/security-events", s.admin(s.handleSecurityEvents))

	// Tenant resources.
	m.Handle("PUT /v1/contacts/{external_id}", s.tenant(s.handleContactPut))
	m.Handle("GET /v1/contacts/{external_id}", s.tenant(s.handleContactGet))
	m.Handle("GET /v1/contacts/{external_id}/messages", s.tenant(s.handleContactMessages))
	m.Handle("POST /v1/messages", s.tenant(s.idempotent(s.handleMessageCreate)))
	m.Handle("GET /v1/messages/{id}", s.tenant(s.handleMessageGet))
	m.Handle("DELETE /v1/messages/{id}", s.tenant(s.handleMessageCancel))

	// Appointment notifications and client texting (issue 3): locations and
	// their settings and wording, appointments and their messages, bulk
	// batches, provider webhooks, account notices.
	m.Handle("PUT /v1/locations/{external_id}", s.tenant(s.handleLocationPut))
	m.Handle("GET /v1/locations/{external_id}", s.tenant(s.handleLocationGet))
	m.Handle("GET /v1/locations/{external_id}/templates/{event}/{channel}", s.tenant(s.handleTemplateGet))
	m.Handle("PUT /v1/locations/{external_id}/templates/{event}/{channel}", s.tenant(s.handleTemplatePut))
	m.Handle("DELETE /v1/locations/{external_id}/templates/{event}/{channel}", s.tenant(s.handleTemplateDelete))
	m.Handle("PUT /v1/appointments/{external_id}", s.tenant(s.handleAppointmentPut))
	m.Handle("GET /v1/appointments/{external_id}", s.tenant(s.handleAppointmentGet))
	m.Handle("GET /v1/appointments/{external_id}/messages", s.tenant(s.handleAppointmentMessages))
	m.Handle("POST /v1/appointments/{external_id}/on-the-way", s.tenant(s.idempotent(s.handleAppointmentOnTheWay)))
	m.Handle("GET /v1/message-batches/{id}", s.tenant(s.handleBatchGet))
	m.Handle("DELETE /v1/message-batches/{id}", s.tenant(s.handleBatchCancel))
	m.Handle("GET /v1/message-batches/{id}/messages", s.tenant(s.handleBatchMessages))
	m.Handle("POST /webhooks/twilio/inbound", s.serve(s.handleTwilioInbound))
	m.Handle("POST /webhooks/twilio/status", s.serve(s.handleTwilioStatus))
	m.Handle("POST /webhooks/resend", s.serve(s.handleResend))
	m.Handle("PUT /admin/v1/tenants/{id}/owner", s.admin(s.handleTenantOwnerPut))
	m.Handle("POST /admin/v1/notices", s.admin(s.idempotent(s.handleNoticeCreate)))
	m.Handle("GET /admin/v1/notices/{id}", s.admin(s.handleNoticeGet))

	// Verifications: one-time codes and credentials of professionals (issue 4).
	m.Handle("POST /v1/verifications", s.tenant(s.idempotent(s.handleVerificationCreate)))
	m.Handle("GET /v1/verifications/{id}", s.tenant(s.handleVerificationGet))
	m.Handle("POST /v1/verifications/{id}/check", s.tenant(s.idempotent(s.handleVerificationCheck)))
	m.Handle("POST /v1/pros/{external_id}/credentials", s.tenant(withBodyLimit(s.credentialBodyLimit, s.idempotent(s.handleCredentialUpload))))
	m.Handle("GET /v1/pros/{external_id}/credentials", s.tenant(s.handleCredentialList))
	m.Handle("DELETE /v1/pros/{external_id}", s.tenant(s.handleProDelete))
	m.Handle("GET /admin/v1/credentials", s.admin(s.handleCredentialReviewQueue))
	m.Handle("GET /admin/v1/credentials/{id}", s.admin(s.handleAdminCredentialGet))
	m.Handle("GET /admin/v1/credentials/{id}/document", s.admin(s.handleAdminCredentialDocument))
	m.Handle("POST /admin/v1/credentials/{id}/review", s.admin(s.idempotent(s.handleCredentialReview)))

	// Imports of client lists (issue 5): the upload streams under its own
	// limit (ERRAND_IMPORT_MAX_BYTES).
	m.Handle("POST /v1/imports", s.tenant(withBodyLimit(s.importBodyLimit, s.idempotent(s.handleImportCreate))))
	m.Handle("GET /v1/imports", s.tenant(s.handleImportList))
	m.Handle("GET /v1/imports/{id}", s.tenant(s.handleImportGet))
	m.Handle("GET /v1/imports/{id}/errors", s.tenant(s.handleImportErrors))
	m.Handle("DELETE /v1/imports/{id}", s.tenant(s.handleImportCancel))

	// Exports and privacy requests. A cancelled tenant can still export
	// everything; the download link needs no API key, only its signature.
	m.Handle("POST /v1/exports", s.tenant(s.idempotent(s.handleExportCreate), allowCancelled))
	m.Handle("GET /v1/exports", s.tenant(s.handleExportList, allowCancelled))
	m.Handle("GET /v1/exports/{id}", s.tenant(s.handleExportGet, allowCancelled))
	m.Handle("GET /v1/exports/{id}/download", s.serve(s.handleExportDownload))
	m.Handle("POST /v1/privacy-requests", s.tenant(s.idempotent(s.handlePrivacyRequestCreate)))
	// A cancelled tenant can still read its requests (a deletion request
	// cancels the account and is fulfilled by the purge).
	m.Handle("GET /v1/privacy-requests", s.tenant(s.handlePrivacyRequestList, allowCancelled))
	m.Handle("GET /v1/privacy-requests/{id}", s.tenant(s.handlePrivacyRequestGet, allowCancelled))
	m.Handle("POST /v1/privacy-requests/{id}/transitions", s.tenant(s.idempotent(s.handlePrivacyRequestTransition)))
	m.Handle("GET /admin/v1/privacy-requests", s.admin(s.handleAdminPrivacyRequests))
	m.Handle("PUT /admin/v1/tenants/{id}/privacy-settings", s.admin(s.handleAdminPrivacySettings))

	// Deletions and retention (issue 7). A cancelled tenant can still read
	// and cancel its deletion (the restore).
	m.Handle("POST /v1/deletions", s.tenant(s.idempotent(s.handleDeletionCreate)))
	m.Handle("GET /v1/deletions", s.tenant(s.handleDeletionList, allowCancelled))
	m.Handle("GET /v1/deletions/{id}", s.tenant(s.handleDeletionGet, allowCancelled))
	m.Handle("DELETE /v1/deletions/{id}", s.tenant(s.handleDeletionCancel, allowCancelled))
	m.Handle("POST /admin/v1/legal-holds", s.admin(s.idempotent(s.handleLegalHoldPlace)))
	m.Handle("DELETE /admin/v1/legal-holds/{id}", s.admin(s.handleLegalHoldRelease))
	m.Handle("GET /admin/v1/tenants/{id}/retention-policies", s.admin(s.handleRetentionPoliciesGet))
	m.Handle("PUT /admin/v1/tenants/{id}/retention-policies/{what}", s.admin(s.handleRetentionPolicyPut))
	m.Handle("DELETE /admin/v1/tenants/{id}/retention-policies/{what}", s.admin(s.handleRetentionPolicyDelete))
}

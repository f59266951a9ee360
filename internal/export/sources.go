package export

// A Source is one file of an export: a query, what the file is called and
// what the README inside the zip says about it. Each query runs inside the
// export's snapshot, a transaction scoped to the tenant (row-level security
// applies), and may use these placeholders, which Errand replaces with
// literals it generates itself (never with text a caller sent):
//
//	{{tenant_id}}           the tenant's ID (uuid)
//	{{contact_id}}          the person's contact row ID (uuid; contact exports)
//	{{contact_sms_hash}}    pseudonym of the person's phone number (bytea, or NULL)
//	{{contact_email_hash}}  pseudonym of the person's email address (bytea, or NULL)
//	{{contact_phone_digits}} the person's phone as digit strings (text[]: with and
//	                        without the country code; empty without a phone)
//
// Opt-out records are kept by pseudonym (internal/pseudonym), so a contact
// export matches them through the pseudonyms of the contact's phone and
// email.
//
// A row source's columns become the file's columns (CSV header, JSON keys).
// Times come out in UTC, ISO 8601. Never select secrets (key hashes,
// verification code hashes): the README promises they are left out.
//
// A Documents source lists stored files instead: its query returns two
// columns, the file store key and a file name, and each file is copied
// into the zip under documents/<File>/<name>.
type Source struct {
	Name        string // the table, as the manifest names it
	File        string // file name without extension
	Description string // one line for the README inside the zip
	// Large sources (unbounded tables) are written as JSON Lines in JSON
	// exports; the others as one JSON array.
	Large     bool
	Documents bool
	Tenant    string // query for a whole-tenant export; "" = not part of it
	Contact   string // query for one person's export; "" = not part of it
}

// Sources lists what an export contains, in the order the files are
// written. Features that add tables add their entries here (locations,
// appointments, imports, credentials and their documents, verifications,
// deletions).
func Sources() []Source {
	return []Source{
		{
			Name: "tenants", File: "account",
			Description: "Your account: name, time zone, default phone region, status, owner email.",
			Tenant: `SELECT id, name, timezone, default_region, status, owner_email, created_at, updated_at
				FROM tenants WHERE id = {{tenant_id}}`,
		},
		{
			Name: "api_keys", File: "api_keys",
			Description: "Your API keys: public prefix, when created and revoked (the secrets are never stored).",
			Tenant: `SELECT prefix, created_at, revoked_at FROM api_keys
				WHERE tenant_id = {{tenant_id}} ORDER BY created_at`,
		},
		{
			Name: "contacts", File: "contacts", Large: true,
			Description: "Contacts (your customers): id is the ID you gave each contact (import-… when an import " +
				"made it); phones in E.164.",
			Tenant: `SELECT external_id AS id, name, phone, email, timezone, address, property_type, closing_date, notes,
					created_at, updated_at
				FROM contacts WHERE tenant_id = {{tenant_id}}`,
			Contact: `SELECT external_id AS id, name, phone, email, timezone, address, property_type, closing_date, notes,
					created_at, updated_at
				FROM contacts WHERE tenant_id = {{tenant_id}} AND id = {{contact_id}}`,
		},
		{
			Name: "messages", File: "messages", Large: true,
			Description: "Every text and email sent or scheduled, with its delivery status, " +
				"provider message ID and error; contact_id is empty for messages to you (the account owner) " +
				"and for messages sent to an address rather than a contact (verification codes).",
			Tenant: `SELECT m.id, c.external_id AS contact_id, m.kind, m.channel, m.status, m.subject, m.body,
					m.destination, m.send_at, m.sent_at, m.delivered_at, m.provider_message_id, m.error, m.attempts,
					m.created_at, m.updated_at
				FROM messages m LEFT JOIN contacts c ON c.id = m.contact_id
				WHERE m.tenant_id = {{tenant_id}}`,
			// A person's messages are those of their contact and those
			// sent to their phone or email without one (verification
			// codes). There is no index on destination (it would cost every
			// send), so an access request reads the tenant's messages once,
			// as a tenant export does.
			Contact: `SELECT m.id, c.external_id AS contact_id, m.kind, m.channel, m.status, m.subject, m.body,
					m.destination, m.send_at, m.sent_at, m.delivered_at, m.provider_message_id, m.error, m.attempts,
					m.created_at, m.updated_at
				FROM messages m LEFT JOIN contacts c ON c.id = m.contact_id
				WHERE m.tenant_id = {{tenant_id}} AND (m.contact_id = {{contact_id}} OR m.destination IN (
					SELECT a FROM contacts p CROSS JOIN LATERAL (VALUES (p.phone), (p.email)) AS v(a)
					WHERE p.tenant_id = {{tenant_id}} AND p.id = {{contact_id}} AND a IS NOT NULL))`,
		},
		{
			Name: "locations", File: "locations",
			Description: "Locations with their time zone and notification settings (which events and channels fire, reminder offsets, quiet hours).",
			Tenant: `SELECT external_id AS id, name, timezone, settings, created_at, updated_at
				FROM locations WHERE tenant_id = {{tenant_id}} ORDER BY created_at`,
		},
		{
			Name: "location_templates", File: "location_templates",
			Description: "Your own wording per location, event and channel (built-in wording is used where there is none).",
			Tenant: `SELECT l.external_id AS location_id, t.event, t.channel, t.subject, t.body, t.updated_at
				FROM location_templates t JOIN locations l ON l.id = t.location_id
				WHERE t.tenant_id = {{tenant_id}} ORDER BY l.external_id, t.event, t.channel`,
		},
		{
			Name: "appointments", File: "appointments", Large: true,
			Description: "Appointments: contact and location by your IDs, start time, address, technician, status.",
			Tenant: `SELECT a.external_id AS id, c.external_id AS contact_id, l.external_id AS location_id, a.starts_at,
					a.address, a.technician, a.status, a.created_at, a.updated_at
				FROM appointments a JOIN contacts c ON c.id = a.contact_id JOIN locations l ON l.id = a.location_id
				WHERE a.tenant_id = {{tenant_id}}`,
			Contact: `SELECT a.external_id AS id, c.external_id AS contact_id, l.external_id AS location_id, a.starts_at,
					a.address, a.technician, a.status, a.created_at, a.updated_at
				FROM appointments a JOIN contacts c ON c.id = a.contact_id JOIN locations l ON l.id = a.location_id
				WHERE a.tenant_id = {{tenant_id}} AND a.contact_id = {{contact_id}}`,
		},
		{
			Name: "suppressions", File: "opt_outs",
			Description: "Addresses that receive nothing (opted out, bounced, complained), by pseudonym: " +
				"addresses are kept only as keyed hashes so the opt-out outlives the contact.",
			Tenant: `SELECT channel, encode(address_hash, 'hex') AS address_pseudonym, reason, source, created_at
				FROM suppressions WHERE tenant_id = {{tenant_id}}`,
			Contact: `SELECT channel, encode(address_hash, 'hex') AS address_pseudonym, reason, source, created_at
				FROM suppressions WHERE tenant_id = {{tenant_id}}
				  AND ((channel = 'sms' AND address_hash = {{contact_sms_hash}})
				    OR (channel = 'email' AND address_hash = {{contact_email_hash}}))`,
		},
		{
			Name: "suppression_events", File: "opt_out_history", Large: true,
			Description: "Every opt-out and opt-in (STOP, START, bounces, complaints) with its keyword, " +
				"source and time: the record kept for TCPA compliance.",
			Tenant: `SELECT id, channel, encode(address_hash, 'hex') AS address_pseudonym, action, keyword, source,
					reference, occurred_at
				FROM suppression_events WHERE tenant_id = {{tenant_id}}`,
			Contact: `SELECT id, channel, encode(address_hash, 'hex') AS address_pseudonym, action, keyword, source,
					reference, occurred_at
				FROM suppression_events WHERE tenant_id = {{tenant_id}}
				  AND ((channel = 'sms' AND address_hash = {{contact_sms_hash}})
				    OR (channel = 'email' AND address_hash = {{contact_email_hash}}))`,
		},
		{
			Name: "verifications", File: "verifications", Large: true,
			Description: "One-time code requests: channel, destination, status, attempts, times (codes are never stored, only a keyed hash, which is left out).",
			Tenant: `SELECT id, channel, destination, status, attempts, max_attempts, reason, expires_at, approved_at, created_at
				FROM verifications WHERE tenant_id = {{tenant_id}}`,
			// Codes sent to the person's phone or email, matched through
			// the pseudonym each verification keeps of its destination.
			Contact: `SELECT id, channel, destination, status, attempts, max_attempts, reason, expires_at, approved_at, created_at
				FROM verifications WHERE tenant_id = {{tenant_id}}
				  AND ((channel = 'sms' AND destination_hash = {{contact_sms_hash}})
				    OR (channel = 'email' AND destination_hash = {{contact_email_hash}}))
				ORDER BY created_at`,
		},
		{
			Name: "credentials", File: "credentials",
			Description: "Credentials of your professionals: kind, number, issuer, expiry, the document's type, size and SHA-256, " +
				"status and the reason of each check; the documents are in documents/credentials/.",
			Tenant: `SELECT c.id, p.external_id AS pro_id, c.kind, c.number, c.issuer, c.expires_on, c.file_type, c.file_size,
					c.file_sha256, c.status, c.checks, c.checked_at, c.reviewed_at, c.expired_at, c.created_at, c.updated_at
				FROM credentials c JOIN pros p ON p.id = c.pro_id
				WHERE c.tenant_id = {{tenant_id}} ORDER BY c.created_at`,
		},
		{
			Name: "credential_documents", File: "credentials", Documents: true,
			Description: "Credential documents as uploaded, named by professional, kind and credential ID.",
			Tenant: `SELECT c.file_key, p.external_id || '-' || c.kind || '-' || c.id ||
					CASE c.file_type WHEN 'application/pdf' THEN '.pdf' WHEN 'image/jpeg' THEN '.jpg' ELSE '.png' END
				FROM credentials c JOIN pros p ON p.id = c.pro_id
				WHERE c.tenant_id = {{tenant_id}} ORDER BY c.created_at`,
		},
		{
			Name: "credential_reviews", File: "credential_reviews",
			Description: "The review trail of credentials: who approved or rejected which, when, and their note.",
			Tenant: `SELECT credential_id, reviewer, decision, note, from_status, to_status, created_at
				FROM credential_reviews WHERE tenant_id = {{tenant_id}} ORDER BY id`,
		},
		{
			Name: "deletions", File: "deletions",
			Description: "Deletions requested (account cancellation, erasure of a person): status, when the purge is due, " +
				"what was removed per table, and any legal hold it waited for.",
			Tenant: `SELECT id, scope, contact_id, reason, minor, status, purge_after, privacy_request_id, counts,
					hold_reason, held_since, held_until, started_at, completed_at, cancelled_at, created_at
				FROM deletions WHERE tenant_id = {{tenant_id}} ORDER BY created_at`,
		},
		{
			Name: "imports", File: "imports",
			Description: "Client-list imports: status, options, the header found and the columns ignored, and the " +
				"counts (the uploaded files and rejected rows themselves are not included; they are deleted " +
				"7 days after each import ends).",
			Tenant: `SELECT id, status, dry_run, file_bytes, file_sha256, encoding, delimiter, mapping, header,
					unknown_columns, rows_total, rows_created, rows_updated, rows_rejected, rows_duplicates, progress,
					error, created_at, finished_at, files_expire_at
				FROM imports WHERE tenant_id = {{tenant_id}} ORDER BY created_at`,
		},
		{
			// A person's export only: the rows of client-list imports that
			// were rejected and name them — a cell that is their name (case
			// and spacing aside), their email, or their phone as typed
			// (its digits). Whole cells, not substrings: what another
			// person's row holds must not reach this one's export.
			// Rejected rows are kept 7 days after each import.
			Name: "import_errors", File: "rejected_import_rows",
			Description: "Rows of client-list imports that were rejected and name this person: the import, " +
				"the line, why it was rejected, and the cells as uploaded.",
			Contact: `SELECT e.import_id, e.line, e.reason, e.raw
				FROM import_errors e JOIN contacts c ON c.tenant_id = e.tenant_id AND c.id = {{contact_id}}
				WHERE e.tenant_id = {{tenant_id}}
				  AND EXISTS (SELECT FROM jsonb_array_elements_text(e.raw) cell
				    WHERE (length(btrim(c.name)) >= 3
				           AND lower(regexp_replace(btrim(cell), '\s+', ' ', 'g')) = lower(regexp_replace(btrim(c.name), '\s+', ' ', 'g')))
				       OR lower(btrim(cell)) = lower(c.email)
				       OR regexp_replace(cell, '\D', '', 'g') = ANY({{contact_phone_digits}}))
				ORDER BY e.import_id, e.line`,
		},
		{
			Name: "exports", File: "exports",
			Description: "Exports requested (this one included), with their status, size and checksum.",
			Tenant: `SELECT e.id, e.scope, c.external_id AS contact_id, e.format, e.status, e.privacy_request_id,
					e.rows_done AS rows, e.bytes, e.sha256, e.error, e.created_at, e.finished_at, e.file_expires_at
				FROM exports e LEFT JOIN contacts c ON c.id = e.contact_id
				WHERE e.tenant_id = {{tenant_id}} ORDER BY e.created_at`,
			Contact: `SELECT e.id, e.scope, c.external_id AS contact_id, e.format, e.status, e.privacy_request_id,
					e.rows_done AS rows, e.bytes, e.sha256, e.error, e.created_at, e.finished_at, e.file_expires_at
				FROM exports e JOIN contacts c ON c.id = e.contact_id
				WHERE e.tenant_id = {{tenant_id}} AND e.contact_id = {{contact_id}} ORDER BY e.created_at`,
		},
		{
			Name: "privacy_requests", File: "privacy_requests",
			Description: "Privacy requests (access, deletion, correction): received, due and closed times, " +
				"and the export or deletion that fulfilled each.",
			Tenant: `SELECT r.id, r.type, r.subject, c.external_id AS contact_id, r.status, r.received_at, r.due_at,
					r.export_id, r.deletion_id, r.overdue_at, r.closed_at, r.created_at
				FROM privacy_requests r LEFT JOIN contacts c ON c.id = r.contact_id
				WHERE r.tenant_id = {{tenant_id}} ORDER BY r.created_at`,
			Contact: `SELECT r.id, r.type, r.subject, c.external_id AS contact_id, r.status, r.received_at, r.due_at,
					r.export_id, r.deletion_id, r.overdue_at, r.closed_at, r.created_at
				FROM privacy_requests r JOIN contacts c ON c.id = r.contact_id
				WHERE r.tenant_id = {{tenant_id}} AND r.contact_id = {{contact_id}} ORDER BY r.created_at`,
		},
		{
			Name: "privacy_request_events", File: "privacy_request_history",
			Description: "The audit trail of every privacy request: each state change, who made it, when, and why.",
			Tenant: `SELECT request_id, action, actor, from_status, to_status, note, occurred_at
				FROM privacy_request_events WHERE tenant_id = {{tenant_id}} ORDER BY id`,
			Contact: `SELECT e.request_id, e.action, e.actor, e.from_status, e.to_status, e.note, e.occurred_at
				FROM privacy_request_events e JOIN privacy_requests r ON r.id = e.request_id
				WHERE e.tenant_id = {{tenant_id}} AND r.contact_id = {{contact_id}} ORDER BY e.id`,
		},
		{
			Name: "security_events", File: "security_log", Large: true,
			Description: "Security log of your account: failed authentications, key creation and revocation, " +
				"downloads of exports (kept one year).",
			Tenant: `SELECT occurred_at, kind, actor, remote_addr, request_id, detail
				FROM security_events WHERE tenant_id = {{tenant_id}}`,
		},
	}
}

package intake_test

import (
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/errandhq/errand/internal/testapp"
)

// Every change made through the admin API leaves an entry in the security
// log naming the admin, the tenant, the request and what was done.
func TestAdminAPIWritesTheSecurityLog(t *testing.T) {
	app := testapp.New(t)
	admin := func(method, path, requestID string, body any) testapp.Response {
		t.Helper()
		resp := app.Do(method, path, app.AdminToken, body, "X-Request-Id", requestID)
		require.Less(t, resp.Status, 300, "%s %s: %s", method, path, resp.Body)
		return resp
	}
	resp := admin("POST", "/admin/v1/tenants", "sec-tenant", map[string]any{"name": "Logged Co", "timezone": "America/Chicago"})
	tenant := resp.JSON()["id"].(string)
	resp = admin("POST", "/admin/v1/tenants/"+tenant+"/api-keys", "sec-key", nil)
	prefix := resp.JSON()["prefix"].(string)
	admin("DELETE", "/admin/v1/api-keys/"+prefix, "sec-revoke", nil)
	admin("PUT", "/admin/v1/tenants/"+tenant+"/owner", "sec-owner", map[string]any{"email": "owner@logged.example"})
	admin("PUT", "/admin/v1/tenants/"+tenant+"/privacy-settings", "sec-privacy", map[string]any{"response_days": 20})
	policy := "/admin/v1/tenants/" + tenant + "/retention-policies/message_logs"
	admin("PUT", policy, "sec-retention-set", map[string]any{"days": 30})
	admin("DELETE", policy, "sec-retention-drop", nil)
	resp = admin("POST", "/admin/v1/legal-holds", "sec-hold", map[string]any{"tenant_id": tenant, "reason": "litigation"})
	hold := resp.JSON()["id"].(string)
	admin("DELETE", "/admin/v1/legal-holds/"+hold, "sec-release", nil)

	for _, want := range []struct{ requestID, kind, action string }{
		{"sec-tenant", "tenant_created", ""},
		{"sec-key", "api_key_created", ""},
		{"sec-revoke", "api_key_revoked", ""},
		{"sec-owner", "admin_action", "set_owner_email"},
		{"sec-privacy", "admin_action", "privacy_settings"},
		{"sec-retention-set", "admin_action", "retention_override_set"},
		{"sec-retention-drop", "admin_action", "retention_override_dropped"},
		{"sec-hold", "legal_hold_placed", ""},
		{"sec-release", "legal_hold_released", ""},
	} {
		e, ok := findSecurityEvent(t, app, want.kind, want.requestID)
		require.True(t, ok, "no %s event for request %s", want.kind, want.requestID)
		require.Equal(t, "admin", e.Actor, want.requestID)
		require.NotNil(t, e.TenantID, want.requestID)
		require.Equal(t, tenant, *e.TenantID, want.requestID)
		if want.action != "" {
			require.Equal(t, want.action, e.Detail["action"], want.requestID)
		}
	}
}

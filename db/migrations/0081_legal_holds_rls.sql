-- Legal holds are read per tenant by application code (a deletion's run
-- checks, in the tenant's scope, between every batch whether a hold has
-- been placed), so they get the same row-level security as every other
-- tenant table: a tenant-scoped transaction sees only its tenant's holds.
-- The admin API and the retention sweep read and write them as the system.
--
-- retention_policies also has a tenant_id but stays without row-level
-- security: no tenant-scoped code reads it (only the admin API and the
-- sweep, both cross-tenant), its NULL-tenant rows are the platform
-- defaults every tenant's policy is judged against, and a tenant can
-- never write it. retention_runs has no tenant at all.

-- +goose Up
ALTER TABLE legal_holds ENABLE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON legal_holds
    USING (tenant_id = errand_tenant() OR errand_system())
    WITH CHECK (tenant_id = errand_tenant() OR errand_system());

-- +goose Down
DROP POLICY tenant_isolation ON legal_holds;
ALTER TABLE legal_holds DISABLE ROW LEVEL SECURITY;

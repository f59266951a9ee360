#!/bin/sh
# Run once by the postgres image on a fresh volume (docker-entrypoint-initdb.d):
# the login the errand roles use. It is a member of errand_app, the role the
# migrations grant table privileges to and row-level security applies to; it
# is no superuser and owns nothing, so not even RESET ROLE reaches past the
# policies. The migrate service logs in as the owner ($POSTGRES_USER).
set -eu
psql -v ON_ERROR_STOP=1 --username "$POSTGRES_USER" --dbname "$POSTGRES_DB" \
	-v app_password="${ERRAND_APP_DB_PASSWORD:-errand-app}" <<'SQL'
CREATE ROLE errand_app NOLOGIN;
CREATE ROLE errand_login LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE IN ROLE errand_app PASSWORD :'app_password';
SQL

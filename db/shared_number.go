package db

import "github.com/google/uuid"

// SharedNumberTenant is the tenant ID under which opt-outs texted to the
// shared sending number are kept (suppressions and suppression_events):
// Twilio blocks that number pair for every tenant alike, so every tenant's
// send checks them (SuppressionGet; migration 0070 lets tenants read
// them). Only system scope writes them.
var SharedNumberTenant = uuid.Nil

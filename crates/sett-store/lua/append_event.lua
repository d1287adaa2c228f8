-- Appends one event (not tied to another atomic write) and extends the ledger chain.
-- KEYS[1] events stream   KEYS[2] ledger head hash
-- ARGV[1] kind   ARGV[2] ts (ms)   ARGV[3] data (JSON)   ARGV[4] content digest (hex)
-- Returns the stream entry id.
return ledger_append(KEYS[1], KEYS[2], ARGV[1], ARGV[2], ARGV[3], ARGV[4])

-- Records that an output of a cancelled grant arrived after the cancellation: turns its fence
-- entry from `expected:<goal>` into `late:<goal>` and appends `output_late`, once (a redelivered
-- event finds `late:` and appends nothing).
-- KEYS[1] cancel fence hash   KEYS[2] events stream   KEYS[3] ledger head
-- ARGV[1] artifact id   ARGV[2] goal id   ARGV[3] now (ms)   ARGV[4] output_late data
-- ARGV[5] its content digest
-- Returns {"ok", event id} | {"not_expected", fence entry or ""}
local entry = redis.call('HGET', KEYS[1], ARGV[1])
if entry ~= 'expected:' .. ARGV[2] then
  return {'not_expected', entry or ''}
end
redis.call('HSET', KEYS[1], ARGV[1], 'late:' .. ARGV[2])
return {'ok', ledger_append(KEYS[2], KEYS[3], 'output_late', ARGV[3], ARGV[4], ARGV[5])}

-- Records one budget decision in one atomic step: its action record (checked by `sett verify`)
-- and its `budget_decided` event; for a reached budget also opens its question (asked by Sett
-- itself, no claim waits for it), unless that question was answered already. A decision whose
-- action id is recorded already writes nothing (the caller repeats a step after a crash).
-- KEYS[1] events stream   KEYS[2] ledger head   KEYS[3] actions hash   KEYS[4] question answers
-- KEYS[5] open questions zset
-- ARGV[1] now (ms)   ARGV[2] budget_decided data   ARGV[3] its content digest
-- ARGV[4] action id   ARGV[5] action record   ARGV[6] question id to open, or ""
-- Returns {"ok", event id} | {"exists"}
if redis.call('HEXISTS', KEYS[3], ARGV[4]) == 1 then
  return {'exists'}
end
if ARGV[6] ~= '' and redis.call('HEXISTS', KEYS[4], ARGV[6]) == 0 then
  redis.call('ZADD', KEYS[5], 'NX', ARGV[1], ARGV[6])
end
redis.call('HSET', KEYS[3], ARGV[4], ARGV[5])
local event = ledger_append(KEYS[1], KEYS[2], 'budget_decided', ARGV[1], ARGV[2], ARGV[3])
return {'ok', event}

-- Records an operator's retry of a workflow's failed step in one atomic step: the retry entry
-- (failed claim -> the new attempt's claim id, so a failed claim is retried once), the action
-- record and the `workflow_retried` event. The orchestrator creates the new attempt's claim on
-- that event (its id is in the event, so creating it twice is refused as a duplicate).
-- Refused when the failed claim is still open (not failed), when its workflow was cancelled, or
-- when it was retried already.
-- KEYS[1] events stream   KEYS[2] ledger head   KEYS[3] retries hash   KEYS[4] actions hash
-- KEYS[5] the failed claim's hash   KEYS[6] cancel fence hash
-- ARGV[1] failed claim id   ARGV[2] now (ms)   ARGV[3] workflow_retried data   ARGV[4] its digest
-- ARGV[5] action id   ARGV[6] action record   ARGV[7] the new claim id   ARGV[8] goal id
-- Returns {"ok", event id} | {"open", status} | {"cancelled", fence entry} | {"already", claim id}
local status = redis.call('HGET', KEYS[5], 'status')
if status ~= 'terminated' and status ~= 'dormant' then
  return {'open', status or ''}
end
local fenced = redis.call('HGET', KEYS[6], ARGV[1]) or redis.call('HGET', KEYS[6], ARGV[8])
if fenced then
  return {'cancelled', fenced}
end
local previous = redis.call('HGET', KEYS[3], ARGV[1])
if previous then
  return {'already', previous}
end
redis.call('HSET', KEYS[3], ARGV[1], ARGV[7])
redis.call('HSET', KEYS[4], ARGV[5], ARGV[6])
local event = ledger_append(KEYS[1], KEYS[2], 'workflow_retried', ARGV[2], ARGV[3], ARGV[4])
return {'ok', event}

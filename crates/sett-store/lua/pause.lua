-- Pauses the instance or one workflow in one atomic step: the pause record, for a workflow the
-- fence over every known member and every output its running grants may still write (a claim
-- write that grants is refused for them: write_claim.lua), the action record and the `paused`
-- event. Refused when it is paused already, or when a workflow's claim moved on (or an output
-- was claimed by a claim the caller did not see) since the caller read them.
-- KEYS[1] events stream   KEYS[2] ledger head   KEYS[3] pauses hash   KEYS[4] pause fence hash
-- KEYS[5] actions hash   KEYS[6] claim-by-artifact hash   KEYS[7 .. 6+n] the open claims' hashes
-- KEYS[7+n ..] the artifact hashes of the expected outputs (in ARGV[10] order)
-- ARGV[1] scope (`instance` or goal id)   ARGV[2] now (ms)   ARGV[3] pause record (JSON)
-- ARGV[4] paused data   ARGV[5] its content digest   ARGV[6] action id   ARGV[7] action record
-- ARGV[8] claims: JSON list of [id, expected revision] (n entries, in KEYS order)
-- ARGV[9] JSON list of member ids   ARGV[10] JSON list of expected output ids
-- Returns {"ok", event id} | {"already", record} | {"conflict", claim id} | {"stale", artifact id}
local previous = redis.call('HGET', KEYS[3], ARGV[1])
if previous then
  return {'already', previous}
end
local claims = cjson.decode(ARGV[8])
local n = #claims
local known = {}
local members = cjson.decode(ARGV[9])
for _, id in ipairs(members) do
  known[id] = true
end
for i, c in ipairs(claims) do
  if redis.call('HGET', KEYS[6 + i], 'revision') ~= c[2] then
    return {'conflict', c[1]}
  end
end
local outputs = cjson.decode(ARGV[10])
for i, id in ipairs(outputs) do
  if redis.call('EXISTS', KEYS[6 + n + i]) == 1 then
    local claim = redis.call('HGET', KEYS[6], id)
    if claim and not known[claim] then
      return {'stale', id}
    end
  end
end
if ARGV[1] ~= 'instance' then
  for _, id in ipairs(members) do
    redis.call('HSET', KEYS[4], id, ARGV[1])
  end
  for _, id in ipairs(outputs) do
    redis.call('HSET', KEYS[4], id, ARGV[1])
  end
end
redis.call('HSET', KEYS[3], ARGV[1], ARGV[3])
redis.call('HSET', KEYS[5], ARGV[6], ARGV[7])
local event = ledger_append(KEYS[1], KEYS[2], 'paused', ARGV[2], ARGV[4], ARGV[5])
return {'ok', event}

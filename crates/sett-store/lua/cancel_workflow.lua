-- Cancels one workflow in one atomic step: records the cancellation, terminates every open
-- claim (compare-and-set on each revision), closes the open questions, fences every known
-- member and every output a cancelled grant may still write (no claim is ever created for a
-- fenced artifact: write_claim.lua), and appends `workflow_cancelled` then each claim's
-- `claim_terminated` (each binding its claim record, as every claim write does).
-- Refused when the workflow was cancelled before, when a claim moved on since the caller read
-- it, or when an output of an open claim already ended the workflow (a Terminal or Failure):
-- of a cancellation racing the workflow's own end, exactly one wins.
-- KEYS[1] events stream   KEYS[2] ledger head   KEYS[3] cancelled workflows hash
-- KEYS[4] cancel fence hash   KEYS[5] deadlines zset   KEYS[6] open questions zset
-- KEYS[7] claim-by-artifact hash   KEYS[8 .. 7+n] the open claims' hashes
-- KEYS[8+n ..] the artifact hashes of the open claims' grant outputs (in ARGV[9] order)
-- ARGV[1] goal id   ARGV[2] now (ms)   ARGV[3] cancellation record (JSON)
-- ARGV[4] workflow_cancelled data   ARGV[5] its content digest
-- ARGV[6] claims: JSON list of [id, expected revision, claim_terminated data, digest, binding,
--         [field, value, ...]] (n entries, in KEYS order)
-- ARGV[7] JSON list of member ids (artifacts and claims) to fence
-- ARGV[8] JSON list of open question ids to close
-- ARGV[9] JSON list of grant output ids
-- Returns {"ok", event id} | {"already", record} | {"conflict", claim id}
--       | {"ended", artifact id, structural type} | {"stale", artifact id}
local previous = redis.call('HGET', KEYS[3], ARGV[1])
if previous then
  return {'already', previous}
end
local claims = cjson.decode(ARGV[6])
local n = #claims
local members = cjson.decode(ARGV[7])
local known = {}
for _, id in ipairs(members) do
  known[id] = true
end
for i, c in ipairs(claims) do
  if redis.call('HGET', KEYS[7 + i], 'revision') ~= c[2] then
    return {'conflict', c[1]}
  end
end
local outputs = cjson.decode(ARGV[9])
local written = {}
for i, id in ipairs(outputs) do
  local st = redis.call('HGET', KEYS[7 + n + i], 'structural_type')
  if st then
    if st == 'Terminal' or st == 'Failure' then
      return {'ended', id, st}
    end
    -- Written already and claimed by a claim the caller did not see: read again.
    local claim = redis.call('HGET', KEYS[7], id)
    if claim and not known[claim] then
      return {'stale', id}
    end
    written[id] = true
  end
end
local member = 'member:' .. ARGV[1]
for _, id in ipairs(members) do
  redis.call('HSET', KEYS[4], id, member)
end
for _, id in ipairs(outputs) do
  if written[id] then
    redis.call('HSET', KEYS[4], id, member)
  else
    redis.call('HSETNX', KEYS[4], id, 'expected:' .. ARGV[1])
  end
end
for _, q in ipairs(cjson.decode(ARGV[8])) do
  redis.call('ZREM', KEYS[6], q)
end
local event = ledger_append(KEYS[1], KEYS[2], 'workflow_cancelled', ARGV[2], ARGV[4], ARGV[5])
for i, c in ipairs(claims) do
  local key = KEYS[7 + i]
  redis.call('DEL', key)
  redis.call('HSET', key, unpack(c[6]))
  redis.call('ZREM', KEYS[5], c[1])
  local id = ledger_append(KEYS[1], KEYS[2], 'claim_terminated', ARGV[2], c[3], c[4], c[5])
  redis.call('HSET', key, 'event', id)
end
redis.call('HSET', KEYS[3], ARGV[1], ARGV[3])
return {'ok', event}

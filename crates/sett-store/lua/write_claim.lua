-- Creates a claim, or applies one compare-and-set transition to it, atomically with its
-- deadline, its open-question index entries and its ledger events.
-- KEYS[1] claim hash   KEYS[2] deadlines zset   KEYS[3] events stream
-- KEYS[4] open questions zset   KEYS[5] claim-by-artifact hash   KEYS[6] claims index zset
-- KEYS[7] outbox hash   KEYS[8] ledger head hash   KEYS[9] cancel fence hash
-- KEYS[10] pauses hash   KEYS[11] pause fence hash
-- KEYS[12] (optional, create only) the claim's bids hash: its entries are returned after "ok"
-- KEYS[13] (with KEYS[12]) the key registry: the bids hash leaves it (index:claims reaches it now)
-- ARGV[1] claim id
-- ARGV[2] expected revision ("0" = create: the claim must not exist)
-- ARGV[3] next deadline in ms, or "" for none
-- ARGV[4] now (ms)
-- ARGV[5] events: JSON list of [kind, data-json, content digest, claim binding] (at least one:
--         the last one's id is recorded in the claim's `event` field)
-- ARGV[6] open-question ops: JSON list of ["add", id, score] / ["rem", id]
-- ARGV[7] artifact id to index this claim under (create only), or ""
-- ARGV[8] outbox entry (JSON follow-up effects, stored under "<claim id>:<new revision>"), or ""
-- ARGV[9] the claim's artifact id (checked against the cancel fence on a create)
-- ARGV[10] "1" when the write grants (a `claim_granted` among its events), else "0"
-- ARGV[11..] field, value pairs (the full record: the hash is replaced)
-- Returns {"ok"} (on a create with KEYS[12]: {"ok", agent, bid, ...}) | {"exists", other_claim_id}
--   | {"conflict", current_revision} | {"cancelled", fence entry} | {"paused", scope}
if ARGV[10] == '1' then
  -- Nothing is granted while the instance or the claim's workflow is paused (pause.lua): the
  -- caller holds the claim and applies it again on resume.
  if redis.call('HEXISTS', KEYS[10], 'instance') == 1 then
    return {'paused', 'instance'}
  end
  -- The claim's own fence entry, else its artifact's (one read for both).
  local fence = redis.call('HMGET', KEYS[11], ARGV[1], ARGV[9])
  local goal = fence[1] or fence[2]
  if goal then
    return {'paused', goal}
  end
end
if ARGV[2] == '0' then
  -- An artifact of a cancelled workflow never gets a claim (cancel_workflow.lua fences them).
  local fenced = redis.call('HGET', KEYS[9], ARGV[9])
  if fenced then
    return {'cancelled', fenced}
  end
  if redis.call('EXISTS', KEYS[1]) == 1 then
    return {'exists', ARGV[1]}
  end
  if ARGV[7] ~= '' then
    if redis.call('HSETNX', KEYS[5], ARGV[7], ARGV[1]) == 0 then
      return {'exists', redis.call('HGET', KEYS[5], ARGV[7])}
    end
  end
  redis.call('ZADD', KEYS[6], ARGV[4], ARGV[1])
else
  local current = redis.call('HGET', KEYS[1], 'revision')
  if current ~= ARGV[2] then
    return {'conflict', current or ''}
  end
  redis.call('DEL', KEYS[1])
end
if ARGV[3] == '' then
  redis.call('ZREM', KEYS[2], ARGV[1])
else
  redis.call('ZADD', KEYS[2], ARGV[3], ARGV[1])
end
for _, op in ipairs(cjson.decode(ARGV[6])) do
  if op[1] == 'add' then
    redis.call('ZADD', KEYS[4], op[3], op[2])
  else
    redis.call('ZREM', KEYS[4], op[2])
  end
end
-- The events first, so the record is written once, with the id of the last one in `event`; the
-- chain head once after them (ledger_defer), not once per event.
local events = cjson.decode(ARGV[5])
ledger_defer(KEYS[8])
local last
for _, ev in ipairs(events) do
  last = ledger_append(KEYS[3], KEYS[8], ev[1], ARGV[4], ev[2], ev[3], ev[4])
end
ledger_flush()
local fields = {}
local revision
for i = 11, #ARGV, 2 do
  fields[#fields + 1] = ARGV[i]
  fields[#fields + 1] = ARGV[i + 1]
  if ARGV[i] == 'revision' then
    revision = ARGV[i + 1]
  end
end
if last then
  fields[#fields + 1] = 'event'
  fields[#fields + 1] = last
end
redis.call('HSET', KEYS[1], unpack(fields))
if ARGV[8] ~= '' then
  redis.call('HSET', KEYS[7], ARGV[1] .. ':' .. (revision or redis.call('HGET', KEYS[1], 'revision')), ARGV[8])
end
if KEYS[12] and ARGV[2] == '0' then
  -- Bids recorded before the claim existed (cubs bid from the artifact's event): the caller
  -- decides with them at once instead of waiting for their events.
  redis.call('SREM', KEYS[13], string.sub(KEYS[12], #KEYS[13] - 9))
  local reply = redis.call('HGETALL', KEYS[12])
  table.insert(reply, 1, 'ok')
  return reply
end
return {'ok'}

-- Creates a claim, or applies one compare-and-set transition to it, atomically with its
-- deadline, its open-question index entries and its ledger events.
-- KEYS[1] claim hash   KEYS[2] deadlines zset   KEYS[3] events stream
-- KEYS[4] open questions zset   KEYS[5] claim-by-artifact hash   KEYS[6] claims index zset
-- KEYS[7] outbox hash   KEYS[8] ledger head hash   KEYS[9] cancel fence hash
-- KEYS[10] pauses hash   KEYS[11] pause fence hash
-- KEYS[12] (optional, create only) the claim's bids hash: standing bids are recorded in it, and
--          with ARGV[11] = "1" its entries are returned after "ok"
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
-- ARGV[11] "1": return the claim's bids after "ok" (create with KEYS[12] only); "2": do not, but
--          a cub bid before the claim existed (its bids hash is in the key registry); else "0"
-- ARGV[12] standing bids to record with a create (KEYS[12]): JSON list of
--          [agent, bid, presence channel], or "". The writer decided the claim with them and
--          lists them in its `claim_created` (the ledger's record of them): each agent's cub must
--          still be subscribed to its presence channel (presence.rs; else nothing is written:
--          "offer_gone"), and no cub may have recorded a bid of its own already: a different one
--          refuses the write ("bids_changed"), the same one too ("bid_held": the writer creates
--          the claim again without that standing bid, since the cub's bid and its event stand).
-- ARGV[13] "1" when the stored record (at the expected revision) has no field the new one lacks,
--          so it is overwritten in place (one DEL less; issue 29); else "" (it is deleted first)
-- ARGV[14] the bells to ring once written: JSON list of [sharded channel, message] (presence.rs:
--          the presence channel of each agent granted to, with the grant; the instance's
--          `cubs:bell` after a claim that waits for bids), or "". A refused publish (an ACL
--          without `spublish`) is ignored: a ring is a hint, and cubs read the stream within
--          their fallback anyway.
-- ARGV[15..] field, value pairs (the full record: the hash is replaced)
-- Returns {"ok"} (with ARGV[11] = "1": {"ok", agent, bid, ...}) | {"exists", other_claim_id}
--   | {"conflict", current_revision} | {"cancelled", fence entry} | {"paused", scope}
--   | {"bids_changed", agent, bid held} | {"bid_held", agent} | {"offer_gone", agent}
-- The standing bids to record (create only).
local standing
-- Most instances are never paused and never cancel a workflow, and a lifted pause leaves no key
-- behind (its hashes empty out): one EXISTS over the fence keys this write would read spares
-- those reads (two or three commands less in a write that creates and grants; issue 29).
local creates = ARGV[2] == '0'
local fenced = true
if ARGV[10] == '1' then
  if creates then
    fenced = redis.call('EXISTS', KEYS[9], KEYS[10], KEYS[11]) > 0
  else
    fenced = redis.call('EXISTS', KEYS[10], KEYS[11]) > 0
  end
end
if ARGV[10] == '1' and fenced then
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
if creates then
  -- An artifact of a cancelled workflow never gets a claim (cancel_workflow.lua fences them).
  if fenced then
    local entry = redis.call('HGET', KEYS[9], ARGV[9])
    if entry then
      return {'cancelled', entry}
    end
  end
  -- A claim indexed under its artifact is found by the HSETNX below (its id is derived from
  -- the artifact's, and the index entry is written with it); any other by its hash.
  if ARGV[7] == '' and redis.call('EXISTS', KEYS[1]) == 1 then
    return {'exists', ARGV[1]}
  end
  if ARGV[12] ~= '' then
    standing = cjson.decode(ARGV[12])
    local agents, channels = {}, {}
    for i, s in ipairs(standing) do
      agents[i] = s[1]
      channels[i] = s[3]
    end
    -- The cubs that offered these bids still run: a dead cub's connection, and with it its
    -- subscription, is gone. A refused count (an ACL without `pubsub|shardnumsub`) counts as
    -- gone: the claim is then created without standing bids.
    local present = redis.pcall('PUBSUB', 'SHARDNUMSUB', unpack(channels))
    for i, s in ipairs(standing) do
      if type(present) ~= 'table' or present.err or tonumber(present[2 * i]) == 0 then
        return {'offer_gone', s[1]}
      end
    end
    local held = redis.call('HMGET', KEYS[12], unpack(agents))
    for i, s in ipairs(standing) do
      if held[i] then
        if held[i] ~= s[2] then
          return {'bids_changed', s[1], held[i]}
        end
        return {'bid_held', s[1]}
      end
    end
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
  -- The record is replaced: without the writer's word that the stored one has no field the new
  -- one lacks (ARGV[13]), the old one goes first.
  if ARGV[13] ~= '1' then
    redis.call('DEL', KEYS[1])
  end
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
if standing and #standing > 0 then
  local bids = {}
  for _, s in ipairs(standing) do
    bids[#bids + 1] = s[1]
    bids[#bids + 1] = s[2]
  end
  redis.call('HSET', KEYS[12], unpack(bids))
end
for _, ev in ipairs(events) do
  last = ledger_append(KEYS[3], KEYS[8], ev[1], ARGV[4], ev[2], ev[3], ev[4])
end
ledger_flush()
local fields = {}
local revision
for i = 15, #ARGV, 2 do
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
-- After the events: a cub woken by its bell reads them with its next command.
if ARGV[14] ~= '' then
  for _, bell in ipairs(cjson.decode(ARGV[14])) do
    redis.pcall('SPUBLISH', bell[1], bell[2])
  end
end
if KEYS[12] and ARGV[2] == '0' then
  if ARGV[11] ~= '0' then
    redis.call('SREM', KEYS[13], string.sub(KEYS[12], #KEYS[13] - 9))
  end
  if ARGV[11] == '1' then
    -- Bids recorded before the claim existed (cubs bid from the artifact's event): the caller
    -- decides with them at once instead of waiting for their events.
    local reply = redis.call('HGETALL', KEYS[12])
    table.insert(reply, 1, 'ok')
    return reply
  end
end
return {'ok'}

-- Creates an immutable artifact: hash + thread entry + index entry + ledger event, atomically.
-- Optionally closes a question in the same step (an Answer): a second answer is refused.
-- Refuses an artifact whose sources are missing or whose sources' hashes are not the ones its
-- own hash was computed over (the writer computed it; see docs/architecture.md, "Ledger").
-- KEYS[1] artifact hash      KEYS[2] thread zset        KEYS[3] events stream
-- KEYS[4] artifacts index    KEYS[5] question answers   KEYS[6] open questions zset
-- KEYS[7] ledger head hash   KEYS[8] cancel fence hash   KEYS[9] actions hash
-- KEYS[10] key registry (a later version's thread joins it)
-- KEYS[11] the hash of the thread's first artifact (the one whose id is the thread's)
-- KEYS[12..] source artifact hashes, in source order
-- An artifact that starts its thread (its id is the thread's) gets no thread set: alone, it is
-- its thread's only version (one sorted set, ~150 bytes, and two commands less per artifact;
-- docs/benchmarks.md, issue 29). The thread's set is made by its second version, with the first
-- in it at the first's version; a set written by an older Sett for a first version is used as is.
-- ARGV[1] artifact id        ARGV[2] version            ARGV[3] created_at_ms
-- ARGV[4] artifact_created event data (JSON)
-- ARGV[5] question id this artifact answers, or ""     ARGV[6] answer record (JSON) or ""
-- ARGV[7] question_answered event data (JSON) or ""
-- ARGV[8] artifact_created content digest   ARGV[9] question_answered content digest or ""
-- ARGV[10] JSON list of the sources' hashes the writer used ("-" = a source without a hash)
-- ARGV[11] an operator's action written with it (`sett fork`: its `artifact_forked` event after
--          `artifact_created`), JSON [kind, data, digest, action id, action record], or ""
-- ARGV[12..] field, value pairs
-- Returns {"ok", event_id} | {"exists"} | {"version_taken", other_id} | {"answered", record}
--       | {"source_missing", index} | {"source_changed", index}   (index is 1-based)
--       | {"cancelled", fence entry}   (an answer to a question of a cancelled workflow)
if redis.call('EXISTS', KEYS[1]) == 1 then
  return {'exists'}
end
local expected = cjson.decode(ARGV[10])
for i = 12, #KEYS do
  local h = redis.call('HGET', KEYS[i], 'hash')
  if not h then
    if redis.call('EXISTS', KEYS[i]) == 0 then
      return {'source_missing', tostring(i - 11)}
    end
    h = '-'
  end
  if h ~= expected[i - 11] then
    return {'source_changed', tostring(i - 11)}
  end
end
local starts_thread = string.sub(KEYS[2], -#ARGV[1] - 7) == 'thread:' .. ARGV[1]
-- The thread's id: its first artifact's id.
local thread_id = string.match(KEYS[2], '.*thread:(.*)$')
-- The first artifact's version, when this write makes the thread's set and puts it in.
local first_version = nil
if not starts_thread then
  local taken = redis.call('ZRANGEBYSCORE', KEYS[2], ARGV[2], ARGV[2], 'LIMIT', 0, 1)
  if #taken > 0 then
    return {'version_taken', taken[1]}
  end
  if redis.call('EXISTS', KEYS[2]) == 0 then
    first_version = redis.call('HGET', KEYS[11], 'version')
    if first_version == ARGV[2] then
      return {'version_taken', thread_id}
    end
  end
end
if ARGV[5] ~= '' then
  local previous = redis.call('HGET', KEYS[5], ARGV[5])
  if previous then
    return {'answered', previous}
  end
  -- Its workflow was cancelled (cancel_workflow.lua closed the question): nobody waits.
  local fenced = redis.call('HGET', KEYS[8], ARGV[5])
  if fenced then
    return {'cancelled', fenced}
  end
  redis.call('HSET', KEYS[5], ARGV[5], ARGV[6])
  redis.call('ZREM', KEYS[6], ARGV[5])
end
local fields = {}
for i = 12, #ARGV do
  fields[#fields + 1] = ARGV[i]
end
redis.call('HSET', KEYS[1], unpack(fields))
if not starts_thread then
  if first_version then
    redis.call('ZADD', KEYS[2], first_version, thread_id, ARGV[2], ARGV[1])
  else
    redis.call('ZADD', KEYS[2], ARGV[2], ARGV[1])
  end
  redis.call('SADD', KEYS[10], string.sub(KEYS[2], #KEYS[10] - 9))
end
redis.call('ZADD', KEYS[4], ARGV[3], ARGV[1])
local id = ledger_append(KEYS[3], KEYS[7], 'artifact_created', ARGV[3], ARGV[4], ARGV[8])
if ARGV[5] ~= '' then
  id = ledger_append(KEYS[3], KEYS[7], 'question_answered', ARGV[3], ARGV[7], ARGV[9])
end
if ARGV[11] ~= '' then
  local action = cjson.decode(ARGV[11])
  redis.call('HSET', KEYS[9], action[4], action[5])
  id = ledger_append(KEYS[3], KEYS[7], action[1], ARGV[3], action[2], action[3])
end
return {'ok', id}

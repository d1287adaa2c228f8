-- Creates an immutable artifact: hash + thread entry + index entry + ledger event, atomically.
-- Optionally closes a question in the same step (an Answer): a second answer is refused.
-- KEYS[1] artifact hash      KEYS[2] thread zset        KEYS[3] events stream
-- KEYS[4] artifacts index    KEYS[5] question answers   KEYS[6] open questions zset
-- ARGV[1] artifact id        ARGV[2] version            ARGV[3] created_at_ms
-- ARGV[4] artifact_created event data (JSON)
-- ARGV[5] question id this artifact answers, or ""     ARGV[6] answer record (JSON) or ""
-- ARGV[7] question_answered event data (JSON) or ""
-- ARGV[8..] field, value pairs
-- Returns {"ok", event_id} | {"exists"} | {"version_taken", other_id} | {"answered", record}
if redis.call('EXISTS', KEYS[1]) == 1 then
  return {'exists'}
end
local taken = redis.call('ZRANGEBYSCORE', KEYS[2], ARGV[2], ARGV[2], 'LIMIT', 0, 1)
if #taken > 0 then
  return {'version_taken', taken[1]}
end
if ARGV[5] ~= '' then
  local previous = redis.call('HGET', KEYS[5], ARGV[5])
  if previous then
    return {'answered', previous}
  end
  redis.call('HSET', KEYS[5], ARGV[5], ARGV[6])
  redis.call('ZREM', KEYS[6], ARGV[5])
end
local fields = {}
for i = 8, #ARGV do
  fields[#fields + 1] = ARGV[i]
end
redis.call('HSET', KEYS[1], unpack(fields))
redis.call('ZADD', KEYS[2], ARGV[2], ARGV[1])
redis.call('ZADD', KEYS[4], ARGV[3], ARGV[1])
local id = redis.call('XADD', KEYS[3], '*', 'kind', 'artifact_created', 'ts', ARGV[3], 'data', ARGV[4])
if ARGV[5] ~= '' then
  id = redis.call('XADD', KEYS[3], '*', 'kind', 'question_answered', 'ts', ARGV[3], 'data', ARGV[7])
end
return {'ok', id}

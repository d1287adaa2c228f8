-- Lifts a pause in one atomic step: the `resumed` event, then each listed claim rewritten with
-- its deadlines moved later (compare-and-set on its revision, its deadline index entry, its
-- `claim_updated` binding the new record), the pause record and a workflow's fence removed, and
-- the action record. Refused when the scope is not paused, when the pause is not the one the
-- caller read, or when a claim moved on since the caller read it.
-- KEYS[1] events stream   KEYS[2] ledger head   KEYS[3] pauses hash   KEYS[4] pause fence hash
-- KEYS[5] actions hash   KEYS[6] deadlines zset   KEYS[7 ..] the claims' hashes (ARGV[8] order)
-- ARGV[1] scope (`instance` or goal id)   ARGV[2] now (ms)   ARGV[3] the pause's action id
-- ARGV[4] resumed data   ARGV[5] its content digest   ARGV[6] action id   ARGV[7] action record
-- ARGV[8] claims: JSON list of [id, expected revision, claim_updated data, digest, binding,
--         [field, value, ...], next deadline or ""]
-- Returns {"ok", event id} | {"not_paused"} | {"stale"} | {"conflict", claim id}
local record = redis.call('HGET', KEYS[3], ARGV[1])
if not record then
  return {'not_paused'}
end
if cjson.decode(record)['action_id'] ~= ARGV[3] then
  return {'stale'}
end
local claims = cjson.decode(ARGV[8])
for i, c in ipairs(claims) do
  if redis.call('HGET', KEYS[6 + i], 'revision') ~= c[2] then
    return {'conflict', c[1]}
  end
end
local event = ledger_append(KEYS[1], KEYS[2], 'resumed', ARGV[2], ARGV[4], ARGV[5])
for i, c in ipairs(claims) do
  local key = KEYS[6 + i]
  redis.call('DEL', key)
  redis.call('HSET', key, unpack(c[6]))
  if c[7] == '' then
    redis.call('ZREM', KEYS[6], c[1])
  else
    redis.call('ZADD', KEYS[6], c[7], c[1])
  end
  local id = ledger_append(KEYS[1], KEYS[2], 'claim_updated', ARGV[2], c[3], c[4], c[5])
  redis.call('HSET', key, 'event', id)
end
redis.call('HDEL', KEYS[3], ARGV[1])
if ARGV[1] ~= 'instance' then
  local fence = redis.call('HGETALL', KEYS[4])
  for i = 1, #fence, 2 do
    if fence[i + 1] == ARGV[1] then
      redis.call('HDEL', KEYS[4], fence[i])
    end
  end
end
redis.call('HSET', KEYS[5], ARGV[6], ARGV[7])
return {'ok', event}

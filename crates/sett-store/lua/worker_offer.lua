-- Offers a grant to an agent's worker pool: takes a slot when one is free and nobody waits
-- (FIFO is never skipped), otherwise appends to the queue (once).
-- KEYS[1] queue list   KEYS[2] running hash   KEYS[3] key registry (both names join it)
-- ARGV[1] max concurrent   ARGV[2] grant key   ARGV[3] worker record (JSON)
-- Returns {"launch"} | {"queued"} | {"running", holder record}: the grant already holds a slot,
-- taken by the run the record names (it may be this caller's own earlier offer, whose reply was
-- lost to a dropped connection, so the caller needs the record to tell).
local holder = redis.call('HGET', KEYS[2], ARGV[2])
if holder then
  return {'running', holder}
end
-- The registry holds names relative to the instance prefix (the registry key minus `index:keys`).
local from = #KEYS[3] - 9
redis.call('SADD', KEYS[3], string.sub(KEYS[1], from), string.sub(KEYS[2], from))
if redis.call('LLEN', KEYS[1]) == 0 and redis.call('HLEN', KEYS[2]) < tonumber(ARGV[1]) then
  redis.call('HSET', KEYS[2], ARGV[2], ARGV[3])
  return {'launch'}
end
if not redis.call('LPOS', KEYS[1], ARGV[2]) then
  redis.call('RPUSH', KEYS[1], ARGV[2])
end
return {'queued'}

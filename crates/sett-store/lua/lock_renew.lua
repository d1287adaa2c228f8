-- Extends the instance lock only if `run_id` still holds it (compare-and-renew).
-- KEYS[1] lock   ARGV[1] run_id   ARGV[2] ttl (ms)
-- Returns 1 when renewed, 0 when the lock is gone or held by another run.
local v = redis.call('GET', KEYS[1])
if not v then return 0 end
local ok, holder = pcall(cjson.decode, v)
if not ok or holder.run_id ~= ARGV[1] then return 0 end
redis.call('PEXPIRE', KEYS[1], ARGV[2])
return 1

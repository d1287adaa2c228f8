-- Deletes the instance lock only if `run_id` holds it.
-- KEYS[1] lock   ARGV[1] run_id
-- Returns 1 when released, 0 otherwise.
local v = redis.call('GET', KEYS[1])
if not v then return 0 end
local ok, holder = pcall(cjson.decode, v)
if not ok or holder.run_id ~= ARGV[1] then return 0 end
redis.call('DEL', KEYS[1])
return 1

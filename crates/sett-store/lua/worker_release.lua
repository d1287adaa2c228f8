-- Frees a worker slot (if `grant` held one) and hands free slots to the queue's head, in order.
-- KEYS[1] queue list   KEYS[2] running hash (both named in the key registry by worker_offer.lua,
-- which every grant in the queue went through)
-- ARGV[1] max concurrent   ARGV[2] grant key being released, or ""   ARGV[3] record for new holders
-- Returns the list of grant keys that now hold a slot and must be launched.
if ARGV[2] ~= '' then
  redis.call('HDEL', KEYS[2], ARGV[2])
end
local started = {}
while redis.call('HLEN', KEYS[2]) < tonumber(ARGV[1]) do
  local next = redis.call('LPOP', KEYS[1])
  if not next then break end
  redis.call('HSET', KEYS[2], next, ARGV[3])
  started[#started + 1] = next
end
return started

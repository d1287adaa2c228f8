-- Offers a grant to an agent's worker pool: takes a slot when one is free and nobody waits
-- (FIFO is never skipped), otherwise appends to the queue (once).
-- KEYS[1] queue list   KEYS[2] running hash
-- ARGV[1] max concurrent   ARGV[2] grant key   ARGV[3] worker record (JSON)
-- Returns "launch" | "queued" | "running" (already holding a slot)
if redis.call('HEXISTS', KEYS[2], ARGV[2]) == 1 then
  return 'running'
end
if redis.call('LLEN', KEYS[1]) == 0 and redis.call('HLEN', KEYS[2]) < tonumber(ARGV[1]) then
  redis.call('HSET', KEYS[2], ARGV[2], ARGV[3])
  return 'launch'
end
if not redis.call('LPOS', KEYS[1], ARGV[2]) then
  redis.call('RPUSH', KEYS[1], ARGV[2])
end
return 'queued'

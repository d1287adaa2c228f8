-- Records the outcome of one delivery attempt and its endpoint's state in one step: a delivery
-- marked delivered leaves the queue in the same write, so it is never attempted again.
-- KEYS[1] deliveries hash   KEYS[2] the webhook's queue zset (named in the key registry by
-- notify_enqueue.lua, which queued the delivery)   KEYS[3] webhooks hash
-- ARGV[1] delivery id   ARGV[2] JSON record   ARGV[3] next attempt (ms), or "" when final
-- ARGV[4] webhook name   ARGV[5] JSON endpoint state
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
if ARGV[3] == '' then
  redis.call('ZREM', KEYS[2], ARGV[1])
else
  redis.call('ZADD', KEYS[2], ARGV[3], ARGV[1])
end
redis.call('HSET', KEYS[3], ARGV[4], ARGV[5])
return 1

-- Records notification deliveries for one ledger event, at most once each (the delivery id is
-- `<event id>:<webhook>`), so re-reading an event after a crash never queues a second copy, and
-- a delivery already made is never queued again.
-- KEYS[1] deliveries hash   KEYS[2] workflows hash (goal -> notified outcome)
-- KEYS[3] key registry (each queue's name joins it)
-- KEYS[4..] the queue zset of each delivery's webhook, in the order of the ARGV pairs
-- ARGV[1] goal id, or "" when the event is not a workflow outcome   ARGV[2] outcome artifact id
-- ARGV[3] due time (ms)   then per delivery: ARGV[4+2k] delivery id, ARGV[5+2k] JSON record
-- Returns how many deliveries were queued (0 when a workflow already had its outcome notified).
if ARGV[1] ~= '' then
  local prev = redis.call('HGET', KEYS[2], ARGV[1])
  if prev and prev ~= ARGV[2] then return 0 end
  redis.call('HSET', KEYS[2], ARGV[1], ARGV[2])
end
local queued = 0
local from = #KEYS[3] - 9
for i = 4, #KEYS do
  local k = i - 4
  local id = ARGV[4 + 2 * k]
  if redis.call('HSETNX', KEYS[1], id, ARGV[5 + 2 * k]) == 1 then
    redis.call('SADD', KEYS[3], string.sub(KEYS[i], from))
    redis.call('ZADD', KEYS[i], ARGV[3], id)
    queued = queued + 1
  end
end
return queued

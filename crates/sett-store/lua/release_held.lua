-- Forgets a held claim unless a pause held it again after the caller read its score.
-- KEYS[1] held zset   ARGV[1] claim id   ARGV[2] the score the caller read
-- Returns 1 when it was removed, else 0.
local score = redis.call('ZSCORE', KEYS[1], ARGV[1])
if score and tonumber(score) == tonumber(ARGV[2]) then
  return redis.call('ZREM', KEYS[1], ARGV[1])
end
return 0

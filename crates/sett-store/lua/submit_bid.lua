-- Records one agent's bid on a claim, once, with its ledger event.
-- KEYS[1] claim hash   KEYS[2] bids hash   KEYS[3] events stream
-- ARGV[1] agent   ARGV[2] bid   ARGV[3] now (ms)   ARGV[4] event data (JSON)
-- Returns {"ok"} | {"duplicate", existing_bid} | {"no_claim"}
if redis.call('EXISTS', KEYS[1]) == 0 then
  return {'no_claim'}
end
if redis.call('HSETNX', KEYS[2], ARGV[1], ARGV[2]) == 0 then
  return {'duplicate', redis.call('HGET', KEYS[2], ARGV[1])}
end
redis.call('XADD', KEYS[3], '*', 'kind', 'bid_submitted', 'ts', ARGV[3], 'data', ARGV[4])
return {'ok'}

-- Records one agent's bid on a claim, once, with its ledger event.
-- KEYS[1] claim hash   KEYS[2] bids hash   KEYS[3] events stream   KEYS[4] ledger head hash
-- KEYS[5] key registry (an early bid's hash joins it until its claim exists: no index reaches it)
-- ARGV[1] agent   ARGV[2] bid   ARGV[3] now (ms)   ARGV[4] event data (JSON)
-- ARGV[5] event content digest (hex)
-- ARGV[6] "early": a bid on a claim the orchestrator is about to create for a new artifact. The
--         claim may not exist yet (the bid waits for it in the bids hash); if it exists, it must
--         still wait for bids (an old artifact re-read by a late cub gets no bid).
-- Returns {"ok"} | {"duplicate", existing_bid} | {"no_claim"} | {"closed", status}
local status = redis.call('HGET', KEYS[1], 'status')
if ARGV[6] == 'early' then
  if status and status ~= 'pending_consensus' then
    return {'closed', status}
  end
elseif not status then
  return {'no_claim'}
end
if redis.call('HSETNX', KEYS[2], ARGV[1], ARGV[2]) == 0 then
  return {'duplicate', redis.call('HGET', KEYS[2], ARGV[1])}
end
if not status then
  redis.call('SADD', KEYS[5], string.sub(KEYS[2], #KEYS[5] - 9))
end
ledger_append(KEYS[3], KEYS[4], 'bid_submitted', ARGV[3], ARGV[4], ARGV[5])
return {'ok'}

-- Benchmark baseline only (cargo feature `bench-unchained-ledger`): the same `ledger_append`
-- contract as ledger_chain.lua, but the event is appended without seq/hash and no head is
-- kept, so `cargo xtask bench --only ledger` measures what the chain costs. `sett verify`
-- rejects a stream written this way.
local function ledger_append(stream, head_key, kind, ts, data, digest, claim)
  -- The same field set as a chained entry's, less the chain's `seq` and `hash`.
  return redis.call('XADD', stream, '*', 'kind', kind, 'ts', ts, 'data', data, 'claim', claim or '')
end

-- No head to write (see ledger_chain.lua).
local function ledger_defer(head_key) end
local function ledger_flush() end

-- Shared ledger chain code, prepended (by scripts.rs) to every script that appends events to an
-- instance's event stream, so every append extends the hash chain in the same atomic call and
-- concurrent writers cannot fork it. The writer sends each event's content digest (SHA-256 of
-- kind, ts, data and claim binding; see docs/architecture.md); this code computes only the link
--   hash = SHA-1("sett-link-v2\n" .. prev .. "\n" .. digest .. "\n" .. seq)
-- with Redis's native sha1hex (about a microsecond; a SHA-256 written in Lua cost ~130 µs per
-- event, a third of the engine's throughput: docs/security.md weighs the choice).
local LEDGER_GENESIS = string.rep('0', 40)
-- The chain head of this call: loaded once from the head key, advanced by each append, saved by
-- each append, or, between `ledger_defer()` and `ledger_flush()`, once after the last one (a
-- script appending several events in a row writes the head once: one command per event less).
local ledger_state = nil
-- Set by `ledger_defer()`: the head key whose write waits for `ledger_flush()`.
local ledger_deferred = nil

-- Defers the head's write of the appends to `head_key` that follow until `ledger_flush()`. The
-- script must call `ledger_flush()` after its last append, before it returns. Redis does not roll
-- a failing script back, so nothing that may fail may run between the two (the digest check of
-- `ledger_append` flushes before it fails).
local function ledger_defer(head_key)
  ledger_deferred = head_key
end

-- Writes the head once for the appends since `ledger_defer()` (nothing when none happened).
local function ledger_flush()
  if ledger_deferred and ledger_state and ledger_state.id then
    redis.call('HSET', ledger_deferred, 'seq', string.format('%d', ledger_state.seq), 'hash', ledger_state.hash,
      'id', ledger_state.id)
  end
  ledger_deferred = nil
end

-- Appends one event to `stream` and extends the chain whose head is the hash at `head_key`
-- (fields `seq`, `hash` and `id`). An instance whose stream predates the ledger starts its chain
-- at seq = (events already there) + 1, linked to prev = 40 zeros; verify reports the earlier
-- events as unverified. `digest` is the event's content digest (64 hex digits) computed by the
-- writer; `claim` ("<claim id>:<revision>:<claim hash>", or nil/"") binds the claim record a
-- claim write leaves behind, and is covered by the digest (an empty claim digests as none).
local function ledger_append(stream, head_key, kind, ts, data, digest, claim)
  if ledger_state == nil then
    local head = redis.call('HMGET', head_key, 'seq', 'hash')
    if head[1] then
      ledger_state = {seq = tonumber(head[1]), hash = head[2]}
    else
      ledger_state = {seq = redis.call('XLEN', stream), hash = LEDGER_GENESIS}
      if ledger_state.seq == 0 then
        -- The instance's first event: everything it writes from now on is reachable from its
        -- indexes and key registry (index:keys), every thread set from the registry, so destroy
        -- may enumerate instead of scanning (purge.rs reads the mark; an older Sett wrote
        -- 'indexed', when each first version had its own thread set).
        redis.call('HSET', head_key, 'keys', 'indexed:threads-registered')
      end
    end
  end
  if type(digest) ~= 'string' or #digest ~= 64 or string.find(digest, '[^0-9a-f]') then
    -- A script's writes are not rolled back by an error: the head must cover what it appended.
    ledger_flush()
    error('ledger: event content digest must be 64 lowercase hex digits')
  end
  local seq = ledger_state.seq + 1
  local seqtext = string.format('%d', seq)
  local prev = ledger_state.hash
  local hash = redis.sha1hex('sett-link-v2\n' .. prev .. '\n' .. digest .. '\n' .. seqtext)
  -- `prev` is not stored: it is the previous entry's `hash`, which verify has in hand from the
  -- entry it walked before (~56 bytes an entry). Every entry has the same fields in the same
  -- order (`claim` empty when none), so a stream node's listpack stores the names once, in its
  -- master entry, not in each entry (docs/benchmarks.md, issue 29).
  local id = redis.call('XADD', stream, '*', 'kind', kind, 'ts', ts, 'data', data,
    'claim', claim or '', 'seq', seqtext, 'hash', hash)
  ledger_state.seq = seq
  ledger_state.hash = hash
  ledger_state.id = id
  if ledger_deferred ~= head_key then
    redis.call('HSET', head_key, 'seq', seqtext, 'hash', hash, 'id', id)
  end
  return id
end

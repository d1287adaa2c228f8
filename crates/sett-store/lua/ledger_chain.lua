-- Shared ledger chain code, prepended (by scripts.rs) to every script that appends events to an
-- instance's event stream, so every append extends the hash chain in the same atomic call and
-- concurrent writers cannot fork it. Redis's Lua has only sha1hex built in: SHA-256 is
-- implemented here with Redis's `bit` library (LuaBitOp, 32-bit signed results).
-- The writer sends each event's content digest (SHA-256 of kind, ts and data; see
-- docs/architecture.md); this code computes only the fixed-size link
--   hash = SHA-256(prev (32 bytes) || content digest (32 bytes) || seq (8 bytes, big-endian))
-- which is two compression blocks whatever the event's size.
local ledger_band, ledger_bor, ledger_bxor, ledger_bnot = bit.band, bit.bor, bit.bxor, bit.bnot
local ledger_ror, ledger_rshift, ledger_lshift, ledger_tobit = bit.ror, bit.rshift, bit.lshift, bit.tobit
local LEDGER_K = {
  0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1, 0x923f82a4, 0xab1c5ed5,
  0xd807aa98, 0x12835b01, 0x243185be, 0x550c7dc3, 0x72be5d74, 0x80deb1fe, 0x9bdc06a7, 0xc19bf174,
  0xe49b69c1, 0xefbe4786, 0x0fc19dc6, 0x240ca1cc, 0x2de92c6f, 0x4a7484aa, 0x5cb0a9dc, 0x76f988da,
  0x983e5152, 0xa831c66d, 0xb00327c8, 0xbf597fc7, 0xc6e00bf3, 0xd5a79147, 0x06ca6351, 0x14292967,
  0x27b70a85, 0x2e1b2138, 0x4d2c6dfc, 0x53380d13, 0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85,
  0xa2bfe8a1, 0xa81a664b, 0xc24b8b70, 0xc76c51a3, 0xd192e819, 0xd6990624, 0xf40e3585, 0x106aa070,
  0x19a4c116, 0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a, 0x5b9cca4f, 0x682e6ff3,
  0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208, 0x90befffa, 0xa4506ceb, 0xbef9a3f7, 0xc67178f2,
}

-- SHA-256 of a byte string, as 64 lowercase hex digits.
local function ledger_sha256(msg)
  local ml = #msg
  local bits = ml * 8
  local tail = ''
  for _ = 1, 8 do
    tail = string.char(bits % 256) .. tail
    bits = math.floor(bits / 256)
  end
  msg = msg .. '\128' .. string.rep('\0', (55 - ml) % 64) .. tail
  local h0, h1, h2, h3 = 0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a
  local h4, h5, h6, h7 = 0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19
  local w = {}
  for i = 1, #msg, 64 do
    for j = 0, 15 do
      local a, b, c, d = string.byte(msg, i + j * 4, i + j * 4 + 3)
      w[j] = ledger_bor(ledger_lshift(a, 24), ledger_lshift(b, 16), ledger_lshift(c, 8), d)
    end
    for j = 16, 63 do
      local v, u = w[j - 15], w[j - 2]
      local s0 = ledger_bxor(ledger_ror(v, 7), ledger_ror(v, 18), ledger_rshift(v, 3))
      local s1 = ledger_bxor(ledger_ror(u, 17), ledger_ror(u, 19), ledger_rshift(u, 10))
      w[j] = ledger_tobit(w[j - 16] + s0 + w[j - 7] + s1)
    end
    local a, b, c, d, e, f, g, h = h0, h1, h2, h3, h4, h5, h6, h7
    for j = 0, 63 do
      local S1 = ledger_bxor(ledger_ror(e, 6), ledger_ror(e, 11), ledger_ror(e, 25))
      local ch = ledger_bxor(ledger_band(e, f), ledger_band(ledger_bnot(e), g))
      local t1 = h + S1 + ch + LEDGER_K[j + 1] + w[j]
      local S0 = ledger_bxor(ledger_ror(a, 2), ledger_ror(a, 13), ledger_ror(a, 22))
      local maj = ledger_bxor(ledger_band(a, b), ledger_band(a, c), ledger_band(b, c))
      h = g
      g = f
      f = e
      e = ledger_tobit(d + t1)
      d = c
      c = b
      b = a
      a = ledger_tobit(t1 + S0 + maj)
    end
    h0 = ledger_tobit(h0 + a)
    h1 = ledger_tobit(h1 + b)
    h2 = ledger_tobit(h2 + c)
    h3 = ledger_tobit(h3 + d)
    h4 = ledger_tobit(h4 + e)
    h5 = ledger_tobit(h5 + f)
    h6 = ledger_tobit(h6 + g)
    h7 = ledger_tobit(h7 + h)
  end
  return bit.tohex(h0, 8) .. bit.tohex(h1, 8) .. bit.tohex(h2, 8) .. bit.tohex(h3, 8)
    .. bit.tohex(h4, 8) .. bit.tohex(h5, 8) .. bit.tohex(h6, 8) .. bit.tohex(h7, 8)
end

local function ledger_unhex(hex)
  return (string.gsub(hex, '..', function(x) return string.char(tonumber(x, 16)) end))
end

local LEDGER_GENESIS = string.rep('0', 64)
-- The chain head of this call: loaded once from the head key, advanced by each append, saved by
-- each append (so a script that appends several events writes the head once per event, cheap).
local ledger_state = nil

-- Appends one event to `stream` and extends the chain whose head is the hash at `head_key`
-- (fields `seq` and `hash`). An instance whose stream predates the ledger starts its chain at
-- seq = (events already there) + 1, with prev = 64 zeros; verify reports the earlier events as
-- unverified. `digest` is the event's content digest (64 hex digits) computed by the writer;
-- `claim` ("<claim id>:<revision>:<claim hash>", or nil/"") binds the claim record a claim
-- write leaves behind, and is covered by the digest.
local function ledger_append(stream, head_key, kind, ts, data, digest, claim)
  if ledger_state == nil then
    local head = redis.call('HMGET', head_key, 'seq', 'hash')
    if head[1] then
      ledger_state = {seq = tonumber(head[1]), hash = head[2]}
    else
      ledger_state = {seq = redis.call('XLEN', stream), hash = LEDGER_GENESIS}
    end
  end
  if type(digest) ~= 'string' or #digest ~= 64 or string.find(digest, '[^0-9a-f]') then
    error('ledger: event content digest must be 64 lowercase hex digits')
  end
  local seq = ledger_state.seq + 1
  local s, seqbytes = seq, ''
  for _ = 1, 8 do
    seqbytes = string.char(s % 256) .. seqbytes
    s = math.floor(s / 256)
  end
  local prev = ledger_state.hash
  local hash = ledger_sha256(ledger_unhex(prev) .. ledger_unhex(digest) .. seqbytes)
  local id
  if claim and claim ~= '' then
    id = redis.call('XADD', stream, '*', 'kind', kind, 'ts', ts, 'data', data, 'claim', claim,
      'seq', tostring(seq), 'prev', prev, 'hash', hash)
  else
    id = redis.call('XADD', stream, '*', 'kind', kind, 'ts', ts, 'data', data,
      'seq', tostring(seq), 'prev', prev, 'hash', hash)
  end
  ledger_state.seq = seq
  ledger_state.hash = hash
  redis.call('HSET', head_key, 'seq', tostring(seq), 'hash', hash, 'id', id)
  return id
end

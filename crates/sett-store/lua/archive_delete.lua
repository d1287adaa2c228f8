-- Deletes the records of archived workflows (`sett archive`, after their segment was read back
-- and recorded) in one atomic step, and drops from the key registry each key it emptied that the
-- registry may name (a later version's `thread:<logical_id>`, an early bid's hash), so a bounded
-- Redis does not keep one registry entry per archived rework for ever. Deleting what is already
-- gone is a no-op: a pass that died repeats this safely.
-- KEYS[1] key registry   KEYS[2..] the keys the records live in
-- ARGV: triples (op, index into KEYS, argument): 'D' deletes the key; 'H' deletes hash field
--       <argument>; 'Z' removes sorted-set member <argument>; 'R' removes <argument> (the key's
--       name relative to the instance prefix) from the registry when the key no longer exists.
for i = 1, #ARGV, 3 do
  local op, key, arg = ARGV[i], KEYS[tonumber(ARGV[i + 1])], ARGV[i + 2]
  if op == 'D' then
    redis.call('DEL', key)
  elseif op == 'H' then
    redis.call('HDEL', key, arg)
  elseif op == 'Z' then
    redis.call('ZREM', key, arg)
  elseif op == 'R' then
    if redis.call('EXISTS', key) == 0 then
      redis.call('SREM', KEYS[1], arg)
    end
  end
end
return 1

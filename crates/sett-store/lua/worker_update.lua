-- Updates the record of a running worker slot (e.g. with the launched pid). The running hash
-- may be gone (its last slot released meanwhile), so its name joins the key registry in the
-- same step, as every writer of a registered key does.
-- KEYS[1] running hash   KEYS[2] key registry
-- ARGV[1] grant key   ARGV[2] worker record (JSON)
redis.call('SADD', KEYS[2], string.sub(KEYS[1], #KEYS[2] - 9))
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
return 1
